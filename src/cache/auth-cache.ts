/**
 * `AuthCache`: the one cache every credential check in Portcullis goes through (jwt, introspection,
 * session checks, client-credentials tokens). Its contract, in the order a lookup sees it:
 *
 * - **Keys** are `credentialKey(...)` digests (src/cache/key.ts); anything else is rejected, so a raw
 *   token can never become a key.
 * - **Hits** come from two bounded lru-caches: positives (valid credentials) and, separately,
 *   negatives (definitive "no": inactive token, bad signature), so a flood of distinct invalid
 *   tokens can only evict other negatives, never a valid session.
 * - **Misses** are coalesced: concurrent lookups of one key share one `load()` call through an
 *   in-flight map kept *outside* lru-cache (its `fetch()` aborts in-flight loads when they are
 *   evicted; security.md §5.4 measured 901 spurious rejections). The map holds at most
 *   `maxInflight` keys; past that, a lookup still loads, it just is not shared. Entries are deleted
 *   when the load settles, whatever the outcome. A caller's `AbortSignal` only stops that caller
 *   waiting; the shared load goes on for the others.
 * - **Errors** thrown by `load()` (transport, timeout, 5xx) are never cached: every waiting caller
 *   gets the rejection and the next lookup loads again.
 *
 * Memory is bounded by configuration whatever the number of distinct credentials:
 * - bytes: each entry counts `ENTRY_OVERHEAD_BYTES + key length + sizeBytes` (the loader's estimate
 *   of the value, see `estimateBytes`), given to lru-cache as the entry's `size`, against its
 *   `maxSize` = `maxBytes` / `negativeMaxBytes`; an entry larger than that is not stored;
 * - entries: at most `maxEntries` per lru-cache (lower if the byte limit could not hold that many);
 * - time: an entry lives `min(ttlMs, expiresAtMs − now)`, counted from when it was stored. Reads never
 *   extend it (no `updateAgeOnGet`/`updateAgeOnHas`, no `allowStale*`), and an entry that would
 *   expire on arrival is not stored. Expired entries are removed on read and by a periodic
 *   `purgeStale()` every `cleanupIntervalMs` (an unref'd timer, stopped by `dispose()`), not by
 *   lru-cache's per-entry `ttlAutopurge` timers.
 *
 * Cached values are shared by every caller that hits them: treat them as immutable.
 *
 * Clocks: `now()` (default `Date.now`) is the wall clock that credential expiry (`expiresAtMs`,
 * epoch ms) is compared with. lru-cache ages entries by `performance.now()` by default, which is
 * monotonic, and every hit is also checked against the entry's wall-clock deadline, so an entry
 * expires at the earlier of the two and a clock step backwards cannot extend it. When a test
 * injects `now`, lru-cache is given a `perf` object reading that same clock (shifted so it is never
 * 0, which lru-cache treats as "no start time": such an entry would never go stale), and its
 * `ttlResolution` is 0 so it never reuses a reading.
 * @module
 */
import { LRUCache } from 'lru-cache'
import { CREDENTIAL_KEY_LENGTH, isCredentialKey } from './key.js'

/**
 * Heap bytes one stored entry costs beyond its key's characters and the value's `sizeBytes`: the
 * key string's header, lru-cache's `Map` entry (amortised over the table's doublings), the
 * `PositiveEntry`/`NegativeEntry` object and its boxed numbers. Measured on Node 20.20 (x64, no
 * pointer compression) by test/unit/cache/memory.test.ts: fill a cache with N entries of fresh
 * 43-char keys and a shared value, `heapUsed` after GC minus before (empty cache), divided by N,
 * minus 43. For N from 30 000 to 270 000 (either side of the `Map`'s doublings) that is 145–176
 * bytes. Rounded up to 256 for headroom across V8 versions; the test fails if a measurement ever
 * exceeds the constant.
 */
export const ENTRY_OVERHEAD_BYTES = 256

/**
 * Heap bytes lru-cache allocates up front per `max` slot, used or not (value array, next/prev
 * links, free stack, sizes, TTLs and start times). Measured the same way on empty caches with `max`
 * 100 000 and 1 000 000: 40 bytes; rounded up to 64. Counted in `AuthCache.reservedBytes`.
 */
export const SLOT_BYTES = 64

/** Default cap of the in-flight (coalescing) map, in keys. */
export const DEFAULT_MAX_INFLIGHT = 10_000

/** Smallest entry possible: overhead plus key, value of 0 bytes. Caps the slots lru-cache pre-allocates. */
const MIN_ENTRY_BYTES = ENTRY_OVERHEAD_BYTES + CREDENTIAL_KEY_LENGTH

/** Names appear in metrics labels and error messages: short, printable, no credentials. */
const NAME_SHAPE = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,79}$/

/** Node clamps timer delays above this to 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Limits of one cache; `cacheOptionsFrom` builds it from configuration. All sizes in bytes, times in ms. */
export interface CacheOptions {
  /** Bounded identifier, e.g. `oauth2_introspection:3f9a1c2b` (see `cacheName`). */
  readonly name: string
  /** Upper bound of a positive entry's lifetime (credential expiry may shorten it). Integer ≥ 1. */
  readonly ttlMs: number
  /** Bytes the positive entries may count in total, keys and overhead included. */
  readonly maxBytes: number
  /** Entries each of the positive and negative caches may hold. */
  readonly maxEntries: number
  /** Period of `purgeStale()`. */
  readonly cleanupIntervalMs: number
  /** Lifetime of a negative entry; 0 disables negative caching. */
  readonly negativeTtlMs: number
  /** Bytes the negative entries may count in total; 0 disables negative caching. */
  readonly negativeMaxBytes: number
  /** Keys the in-flight map may hold (default `DEFAULT_MAX_INFLIGHT`). */
  readonly maxInflight?: number
}

/** Injected dependencies. */
export interface CacheDeps {
  /** Wall clock in epoch milliseconds (default `Date.now`). */
  readonly now?: () => number
  /** Called once by `dispose()` (the registry releases the budget reservation here). */
  readonly onDispose?: () => void
}

/** A definitive "valid": cached until `min(ttl, expiresAtMs)`. */
export interface PositiveResult<V> {
  readonly kind: 'positive'
  readonly value: V
  /** Estimated heap bytes of `value` (see `estimateBytes`); the cache adds key and overhead. */
  readonly sizeBytes: number
  /** When the credential stops being valid (epoch ms, e.g. JWT `exp` × 1000). */
  readonly expiresAtMs?: number
}

/** A definitive "invalid" (inactive token, bad signature): cached for `negativeTtlMs`. */
export interface NegativeResult {
  readonly kind: 'negative'
  /** A stable, bounded reason id for logs and metrics; never a credential. */
  readonly reason: string
  /** Estimated heap bytes of `reason` if it is not a shared constant (default: 2 × length). */
  readonly sizeBytes?: number
}

/** What `load()` resolves with. Throw instead for anything that must not be cached. */
export type LoadResult<V> = PositiveResult<V> | NegativeResult

/** What `lookup()` resolves with; `hit` is true when no `load()` was awaited. */
export type Lookup<V> =
  | { readonly kind: 'positive'; readonly value: V; readonly expiresAtMs: number | undefined; readonly hit: boolean }
  | { readonly kind: 'negative'; readonly reason: string; readonly hit: boolean }

/** Counters since creation (monotonic) and current gauges of one cache. */
export interface CacheStats {
  readonly name: string
  /** Lookups answered by a positive entry. */
  readonly hits: number
  /** Lookups answered by a negative entry. */
  readonly negativeHits: number
  /** Lookups that had to wait for a load (`loads` + `coalesced`). */
  readonly misses: number
  /** `load()` calls. */
  readonly loads: number
  /** `load()` calls that threw or resolved with an invalid result. */
  readonly loadErrors: number
  /** Lookups that joined a load already in flight. */
  readonly coalesced: number
  /** Positive entries removed to make room. */
  readonly evictions: number
  /** Negative entries removed to make room. */
  readonly negativeEvictions: number
  /** Positive entries removed because their lifetime was over (on read or by purge). */
  readonly expirations: number
  /** Positive entries held now (expired ones included until read or purged). */
  readonly entries: number
  /** Bytes the positive entries count now. */
  readonly bytes: number
  readonly maxBytes: number
  readonly negativeEntries: number
  readonly negativeBytes: number
  readonly negativeMaxBytes: number
  /** Keys in the in-flight map now. */
  readonly inflight: number
}

/** Rejection of a `lookup()` whose caller's signal fired; the shared load is not cancelled. */
export class CacheAbortError extends Error {
  readonly code = 'ABORT_ERR'
  constructor(cause: unknown) {
    super('The cache lookup was aborted', { cause })
    this.name = 'AbortError'
  }
}

/**
 * A bounded, coalescing cache of credential-check results. Create it through `CacheRegistry` so it
 * is counted in the global budget; direct construction is for tests.
 */
export class AuthCache<V> {
  readonly name: string
  /** Worst-case bytes this cache can hold: byte limits plus lru-cache's pre-allocated slots. */
  readonly reservedBytes: number

  readonly #opts: Required<CacheOptions>
  readonly #now: () => number
  readonly #onDispose: (() => void) | undefined
  readonly #positive: LRUCache<string, PositiveEntry<V>>
  readonly #negative: LRUCache<string, NegativeEntry> | undefined
  readonly #inflight = new Map<string, Promise<Lookup<V>>>()
  readonly #timer: NodeJS.Timeout
  /** Bumped by `clear()`: loads started before it do not store their result. */
  #generation = 0
  #disposed = false
  #hits = 0
  #negativeHits = 0
  #misses = 0
  #loads = 0
  #loadErrors = 0
  #coalesced = 0
  #evictions = 0
  #negativeEvictions = 0
  #expirations = 0

  constructor(options: CacheOptions, deps: CacheDeps = {}) {
    const { opts, positiveSlots, negativeSlots, reservedBytes } = plan(options)
    this.#opts = opts
    this.name = opts.name
    this.reservedBytes = reservedBytes
    this.#now = deps.now ?? Date.now
    this.#onDispose = deps.onDispose
    const perf = deps.now === undefined ? undefined : shiftedPerf(deps.now)
    const { ttlMs, maxBytes, negativeTtlMs, negativeMaxBytes, cleanupIntervalMs } = opts

    this.#positive = new LRUCache<string, PositiveEntry<V>>({
      max: positiveSlots,
      maxSize: maxBytes,
      ttl: ttlMs,
      ttlResolution: 0,
      ...(perf === undefined ? {} : { perf }),
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') this.#evictions++
        else if (reason === 'expire') this.#expirations++
      },
    })

    this.#negative =
      negativeSlots === 0
        ? undefined
        : new LRUCache<string, NegativeEntry>({
            max: negativeSlots,
            maxSize: negativeMaxBytes,
            ttl: negativeTtlMs,
            ttlResolution: 0,
            ...(perf === undefined ? {} : { perf }),
            dispose: (_v, _k, reason) => {
              if (reason === 'evict') this.#negativeEvictions++
            },
          })

    this.#timer = setInterval(() => this.purgeStale(), cleanupIntervalMs)
    this.#timer.unref()
  }

  /**
   * The cached result for `key`, or the result of `load()`, shared with every concurrent lookup of
   * the same key. Rejects with `load()`'s error (nothing cached), with a `TypeError` if `key` is not
   * a `credentialKey` or the result is malformed, and with `CacheAbortError` if `signal` fires first
   * (the load goes on for the other callers, and its result is still cached).
   *
   * Concurrent lookups of one key run only the first caller's `load`: that is why the key must
   * carry every input the result depends on (`credentialKey(token, endpoint, …)`).
   */
  lookup(key: string, load: () => Promise<LoadResult<V>>, signal?: AbortSignal): Promise<Lookup<V>> {
    if (!isCredentialKey(key)) {
      return Promise.reject(new TypeError(`cache "${this.name}": keys must come from credentialKey()`))
    }
    if (signal?.aborted === true) return Promise.reject(new CacheAbortError(signal.reason))

    const cached = this.#get(key)
    if (cached !== undefined) return Promise.resolve(cached)

    this.#misses++
    let shared = this.#inflight.get(key)
    if (shared !== undefined) {
      this.#coalesced++
    } else {
      shared = this.#load(key, load)
      if (!this.#disposed && this.#inflight.size < this.#opts.maxInflight) this.#inflight.set(key, shared)
    }
    return signal === undefined ? shared : waitUnlessAborted(shared, signal)
  }

  /**
   * The live cached result for `key`, counted as a hit and refreshed in the LRU order, or
   * undefined (nothing counted: the caller goes on to `lookup()`, which counts the miss). The
   * synchronous form of a `lookup()` hit, so a handler answers a hit without a promise.
   */
  get(key: string): Lookup<V> | undefined {
    if (!isCredentialKey(key)) throw new TypeError(`cache "${this.name}": keys must come from credentialKey()`)
    return this.#get(key)
  }

  /** The cached result for `key` without loading, counting, or refreshing its LRU position. */
  peek(key: string): Lookup<V> | undefined {
    const now = this.#now()
    const positive = this.#positive.peek(key)
    if (positive !== undefined && now < positive.deadline) return positive
    const negative = this.#negative?.peek(key)
    if (negative !== undefined && now < negative.deadline) return negative
    return undefined
  }

  /** Forgets `key` (e.g. a caller found the cached credential revoked). */
  delete(key: string): void {
    this.#positive.delete(key)
    this.#negative?.delete(key)
  }

  /** Removes expired entries now; also runs every `cleanupIntervalMs`. */
  purgeStale(): void {
    this.#positive.purgeStale()
    this.#negative?.purgeStale()
  }

  /**
   * Forgets every entry and every in-flight load: lookups after `clear()` load again, and loads
   * started before it still answer their callers but store nothing.
   */
  clear(): void {
    this.#generation++
    this.#inflight.clear()
    this.#positive.clear()
    this.#negative?.clear()
  }

  /**
   * Stops the purge timer, drops every entry and calls `onDispose` (once). Later lookups still work,
   * so requests that raced a reload are answered, but they load every time and store nothing.
   */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    clearInterval(this.#timer)
    this.clear()
    this.#onDispose?.()
  }

  get disposed(): boolean {
    return this.#disposed
  }

  stats(): CacheStats {
    return {
      name: this.name,
      hits: this.#hits,
      negativeHits: this.#negativeHits,
      misses: this.#misses,
      loads: this.#loads,
      loadErrors: this.#loadErrors,
      coalesced: this.#coalesced,
      evictions: this.#evictions,
      negativeEvictions: this.#negativeEvictions,
      expirations: this.#expirations,
      entries: this.#positive.size,
      bytes: this.#positive.calculatedSize,
      maxBytes: this.#opts.maxBytes,
      negativeEntries: this.#negative?.size ?? 0,
      negativeBytes: this.#negative?.calculatedSize ?? 0,
      negativeMaxBytes: this.#negative === undefined ? 0 : this.#opts.negativeMaxBytes,
      inflight: this.#inflight.size,
    }
  }

  /** A live entry for `key`, counting the hit; expired entries are removed and counted. */
  #get(key: string): Lookup<V> | undefined {
    const now = this.#now()
    const positive = this.#positive.get(key)
    if (positive !== undefined) {
      if (now < positive.deadline) {
        this.#hits++
        return positive
      }
      this.#positive.delete(key)
      this.#expirations++
    }
    const negative = this.#negative?.get(key)
    if (negative !== undefined) {
      if (now < negative.deadline) {
        this.#negativeHits++
        return negative
      }
      this.#negative?.delete(key)
    }
    return undefined
  }

  /** One `load()` call, its result stored (unless cleared or disposed meanwhile) before callers see it. */
  #load(key: string, load: () => Promise<LoadResult<V>>): Promise<Lookup<V>> {
    this.#loads++
    const generation = this.#generation
    const settled = new Promise<LoadResult<V>>((resolve) => resolve(load()))
      .then((result) => this.#store(key, result, generation))
      .catch((err: unknown) => {
        this.#loadErrors++
        throw err
      })
    // Deleted before any caller sees the outcome, so a lookup after a failure never joins it.
    const shared: Promise<Lookup<V>> = settled.finally(() => {
      if (this.#inflight.get(key) === shared) this.#inflight.delete(key)
    })
    // Every caller may have aborted: the shared rejection must not become an unhandled one.
    shared.catch(() => {})
    return shared
  }

  #store(key: string, result: LoadResult<V>, generation: number): Lookup<V> {
    const store = !this.#disposed && generation === this.#generation
    const now = this.#now()
    if (isPositive(result)) {
      const { value, sizeBytes, expiresAtMs } = result
      checkBytes(this.name, sizeBytes)
      if (expiresAtMs !== undefined && !Number.isFinite(expiresAtMs)) {
        throw new TypeError(`cache "${this.name}": expiresAtMs must be a finite number, got ${expiresAtMs}`)
      }
      const ttl =
        expiresAtMs === undefined ? this.#opts.ttlMs : Math.min(this.#opts.ttlMs, Math.floor(expiresAtMs - now))
      if (store) {
        this.#negative?.delete(key)
        // Expired on arrival (or within the millisecond): not stored, and no older entry kept either.
        if (ttl >= 1) {
          const size = ENTRY_OVERHEAD_BYTES + key.length + Math.ceil(sizeBytes)
          this.#positive.set(key, new PositiveEntry(value, expiresAtMs, now + ttl), { ttl, size })
        } else {
          this.#positive.delete(key)
        }
      }
      return { kind: 'positive', value, expiresAtMs, hit: false }
    }
    if (isNegative(result)) {
      const { reason } = result
      const sizeBytes = result.sizeBytes ?? 2 * reason.length
      checkBytes(this.name, sizeBytes)
      if (store) {
        this.#positive.delete(key)
        if (this.#negative !== undefined) {
          const ttl = this.#opts.negativeTtlMs
          const size = ENTRY_OVERHEAD_BYTES + key.length + Math.ceil(sizeBytes)
          this.#negative.set(key, new NegativeEntry(reason, now + ttl), { ttl, size })
        }
      }
      return { kind: 'negative', reason, hit: false }
    }
    throw new TypeError(`cache "${this.name}": load() must resolve { kind: 'positive' | 'negative', … }`)
  }
}

/** A stored positive entry; returned as-is on a hit (no allocation per hit). */
class PositiveEntry<V> {
  readonly kind = 'positive' as const
  readonly hit = true
  constructor(
    readonly value: V,
    readonly expiresAtMs: number | undefined,
    /** `now()` after which the entry is expired, whatever lru-cache's clock says. */
    readonly deadline: number,
  ) {}
}

/** A stored negative entry. */
class NegativeEntry {
  readonly kind = 'negative' as const
  readonly hit = true
  constructor(
    readonly reason: string,
    readonly deadline: number,
  ) {}
}

/** A malformed `sizeBytes` is a loader bug: the lookup rejects (fail closed) and it counts as a load error. */
function checkBytes(name: string, sizeBytes: unknown): void {
  if (typeof sizeBytes !== 'number' || !Number.isFinite(sizeBytes) || sizeBytes < 0) {
    throw new TypeError(`cache "${name}": sizeBytes must be a finite, non-negative number, got ${String(sizeBytes)}`)
  }
}

function isPositive<V>(r: LoadResult<V>): r is PositiveResult<V> {
  return typeof r === 'object' && r !== null && r.kind === 'positive'
}

function isNegative<V>(r: LoadResult<V>): r is NegativeResult {
  return typeof r === 'object' && r !== null && r.kind === 'negative' && typeof r.reason === 'string'
}

/** Waits for `shared` unless `signal` fires first; the listener is removed either way. */
function waitUnlessAborted<T>(shared: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new CacheAbortError(signal.reason))
    signal.addEventListener('abort', onAbort, { once: true })
    shared.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

/**
 * lru-cache's clock for an injected `now`: the same rate, shifted so the first reading is 1. A
 * start time of exactly 0 would make lru-cache treat an entry as having no TTL at all.
 */
function shiftedPerf(now: () => number): { now: () => number } {
  const origin = now() - 1
  return { now: () => now() - origin }
}

/**
 * The bytes a cache with options `o` reserves from the global budget (its `reservedBytes`):
 * `maxBytes`, plus `negativeMaxBytes` when negative caching is on, plus `SLOT_BYTES` per slot
 * lru-cache pre-allocates. Throws `RangeError` on invalid options.
 */
export function cacheReservation(o: CacheOptions): number {
  return plan(o).reservedBytes
}

function plan(o: CacheOptions) {
  const opts = validateOptions(o)
  const positiveSlots = slotsFor(opts.maxBytes, opts.maxEntries)
  const negativeOn = opts.negativeTtlMs > 0 && opts.negativeMaxBytes > 0
  const negativeSlots = negativeOn ? slotsFor(opts.negativeMaxBytes, opts.maxEntries) : 0
  const reservedBytes =
    opts.maxBytes + (negativeOn ? opts.negativeMaxBytes : 0) + SLOT_BYTES * (positiveSlots + negativeSlots)
  return { opts, positiveSlots, negativeSlots, reservedBytes }
}

/** Slots worth pre-allocating: no more than the byte limit could ever hold. */
function slotsFor(maxBytes: number, maxEntries: number): number {
  return Math.max(1, Math.min(maxEntries, Math.floor(maxBytes / MIN_ENTRY_BYTES)))
}

function validateOptions(o: CacheOptions): Required<CacheOptions> {
  const fail = (what: string): never => {
    throw new RangeError(`cache "${String(o.name)}": ${what}`)
  }
  if (typeof o.name !== 'string' || !NAME_SHAPE.test(o.name)) {
    fail('name must be 1-80 characters of [A-Za-z0-9_.:/-] (use cacheName(handlerId, config))')
  }
  const int = (key: keyof CacheOptions, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      fail(`${key} must be an integer between ${min} and ${max}, got ${String(value)}`)
    }
  }
  int('ttlMs', o.ttlMs, 1)
  int('maxBytes', o.maxBytes, MIN_ENTRY_BYTES)
  int('maxEntries', o.maxEntries, 1, 2 ** 32)
  int('cleanupIntervalMs', o.cleanupIntervalMs, 1, MAX_TIMER_MS)
  int('negativeTtlMs', o.negativeTtlMs, 0)
  int('negativeMaxBytes', o.negativeMaxBytes, 0)
  const maxInflight = o.maxInflight ?? DEFAULT_MAX_INFLIGHT
  int('maxInflight', maxInflight, 1)
  if (o.negativeMaxBytes > 0 && o.negativeMaxBytes < MIN_ENTRY_BYTES) {
    fail(`negativeMaxBytes must be 0 (off) or at least ${MIN_ENTRY_BYTES}, got ${o.negativeMaxBytes}`)
  }
  return { ...o, maxInflight }
}
