/**
 * `CacheRegistry`: every `AuthCache` in the process, by name. It enforces the global budget
 * (`cache.max_bytes`: each cache reserves its `reservedBytes` when created and releases it when
 * disposed), lets metrics read every cache's stats, and lets a rule reload keep the caches whose
 * (handler, config) did not change: `create()` returns the existing cache for a name it already
 * holds, and `retainOnly()` disposes the ones the new rule set no longer uses.
 *
 * Names are bounded by construction (`cacheName`: handler id + 12 hex chars of the config hash), so
 * the registry holds at most one cache per distinct handler configuration in use.
 * @module
 */
import { AuthCache, cacheReservation, DEFAULT_MAX_INFLIGHT, type CacheOptions, type CacheStats } from './auth-cache.js'
import type { CacheBudget } from './budget.js'

export class CacheRegistry {
  readonly #budget: CacheBudget
  readonly #now: (() => number) | undefined
  readonly #caches = new Map<string, { readonly cache: AuthCache<unknown>; readonly options: CacheOptions }>()

  /** `now` is the wall clock (epoch ms) handed to every cache; inject it in tests. */
  constructor(budget: CacheBudget, opts: { readonly now?: () => number } = {}) {
    this.#budget = budget
    this.#now = opts.now
  }

  /**
   * The cache named `o.name`: the existing one if it was created with the same options, else a new
   * one reserving `reservedBytes` from the budget. Throws `CacheBudgetError` when the budget cannot
   * hold it, and an `Error` when the name exists with different options (a name must identify one
   * configuration; see `cacheName`).
   */
  create<V>(o: CacheOptions): AuthCache<V> {
    const existing = this.#caches.get(o.name)
    if (existing !== undefined) {
      if (!sameOptions(existing.options, o)) {
        throw new Error(`cache "${o.name}" already exists with different options; derive names with cacheName()`)
      }
      return existing.cache as unknown as AuthCache<V>
    }
    const name = o.name
    // Reserve before constructing: lru-cache allocates its slots in the constructor.
    this.#budget.reserve(name, cacheReservation(o))
    let cache: AuthCache<V>
    try {
      cache = new AuthCache<V>(o, {
        ...(this.#now === undefined ? {} : { now: this.#now }),
        onDispose: () => {
          if (this.#caches.get(name)?.cache === cache) this.#caches.delete(name)
          this.#budget.release(name)
        },
      })
    } catch (err) {
      this.#budget.release(name)
      throw err
    }
    // Stored type-erased: a name belongs to one handler, which always asks for the same V.
    this.#caches.set(name, {
      cache: cache as unknown as AuthCache<unknown>,
      options: { ...o, maxInflight: o.maxInflight ?? DEFAULT_MAX_INFLIGHT },
    })
    return cache
  }

  /** The cache named `name`, if any. */
  get<V>(name: string): AuthCache<V> | undefined {
    return this.#caches.get(name)?.cache as unknown as AuthCache<V> | undefined
  }

  /** Names of the caches held, in creation order. */
  names(): string[] {
    return [...this.#caches.keys()]
  }

  /** Disposes (and releases the budget of) the cache named `name`; false if there was none. */
  delete(name: string): boolean {
    const entry = this.#caches.get(name)
    entry?.cache.dispose()
    return entry !== undefined
  }

  /** Disposes every cache whose name is not in `keep` (after a reload); returns the names disposed. */
  retainOnly(keep: Iterable<string>): string[] {
    const wanted = new Set(keep)
    const dropped = [...this.#caches.keys()].filter((name) => !wanted.has(name))
    for (const name of dropped) this.delete(name)
    return dropped
  }

  /** Stats of every cache, in creation order. */
  stats(): CacheStats[] {
    return [...this.#caches.values()].map(({ cache }) => cache.stats())
  }

  /** Disposes every cache; the budget is then entirely released (by these caches). */
  dispose(): void {
    for (const { cache } of [...this.#caches.values()]) cache.dispose()
  }
}

function sameOptions(a: CacheOptions, b: CacheOptions): boolean {
  return (
    a.ttlMs === b.ttlMs &&
    a.maxBytes === b.maxBytes &&
    a.maxEntries === b.maxEntries &&
    a.cleanupIntervalMs === b.cleanupIntervalMs &&
    a.negativeTtlMs === b.negativeTtlMs &&
    a.negativeMaxBytes === b.negativeMaxBytes &&
    (a.maxInflight ?? DEFAULT_MAX_INFLIGHT) === (b.maxInflight ?? DEFAULT_MAX_INFLIGHT)
  )
}
