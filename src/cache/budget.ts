/**
 * The global cache budget, `cache.max_bytes`: the sum of what every cache may hold. Each cache
 * reserves its whole worst case when it is created (its byte limits plus the slots lru-cache
 * allocates up front, see `AuthCache.reservedBytes`) and releases it when disposed, so a
 * configuration that could exceed the budget fails at load, naming the caches, instead of growing
 * into it at runtime.
 * @module
 */

/** Thrown by `CacheBudget.reserve` when a reservation would exceed the budget. */
export class CacheBudgetError extends Error {
  readonly code = 'ERR_CACHE_BUDGET'
  /** The budget, in bytes. */
  readonly maxBytes: number
  /** The cache that asked, and how much. */
  readonly requested: { readonly name: string; readonly bytes: number }
  /** Reservations held when it asked (name → bytes). */
  readonly reservations: ReadonlyMap<string, number>

  constructor(maxBytes: number, name: string, bytes: number, reservations: ReadonlyMap<string, number>) {
    const held = [...reservations].reduce((sum, [, b]) => sum + b, 0)
    const list = [...reservations, [name, bytes] as const]
      .map(([n, b]) => `${n} ${formatBytes(b)}`)
      .join(', ')
    super(
      `cache budget exceeded: cache "${name}" needs ${formatBytes(bytes)}, which would bring the total to ` +
        `${formatBytes(held + bytes)} of cache.max_bytes ${formatBytes(maxBytes)} (caches: ${list}). ` +
        'Lower the caches\' max_cost / negative_max_cost / max_entries, disable some, or raise cache.max_bytes.',
    )
    this.name = 'CacheBudgetError'
    this.maxBytes = maxBytes
    this.requested = { name, bytes }
    this.reservations = new Map(reservations)
  }
}

/** Byte reservations against one fixed budget. Not thread-safe; there is one per process. */
export class CacheBudget {
  readonly maxBytes: number
  readonly #reservations = new Map<string, number>()
  #used = 0

  constructor(maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new RangeError(`cache budget must be a positive integer number of bytes, got ${maxBytes}`)
    }
    this.maxBytes = maxBytes
  }

  /** Bytes reserved by all caches. */
  get used(): number {
    return this.#used
  }

  /** Reserves `bytes` for cache `name`; throws `CacheBudgetError` if the total would exceed the budget. */
  reserve(name: string, bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`cache "${name}": reservation must be a non-negative integer number of bytes, got ${bytes}`)
    }
    if (this.#reservations.has(name)) throw new Error(`cache "${name}" already holds a budget reservation`)
    if (this.#used + bytes > this.maxBytes) throw new CacheBudgetError(this.maxBytes, name, bytes, this.#reservations)
    this.#reservations.set(name, bytes)
    this.#used += bytes
  }

  /** Releases the reservation of cache `name` (no-op if it holds none). */
  release(name: string): void {
    const bytes = this.#reservations.get(name)
    if (bytes === undefined) return
    this.#reservations.delete(name)
    this.#used -= bytes
  }

  /** Current reservations (name → bytes), for diagnostics. */
  reservations(): ReadonlyMap<string, number> {
    return new Map(this.#reservations)
  }
}

/** "16 MiB", "1.5 KiB", "512 B": for messages only. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : +value.toFixed(2)} ${units[unit]}`
}
