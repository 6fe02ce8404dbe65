/** Shared fixtures for the cache tests: options, a hand-driven clock, deferred loads. */
import { AuthCache, type CacheOptions, type LoadResult } from '../../../src/cache/auth-cache.js'
import { credentialKey } from '../../../src/cache/key.js'

export const KiB = 1024
export const MiB = 1024 * KiB

export const baseOptions: CacheOptions = {
  name: 'test:cache',
  ttlMs: 1_000,
  maxBytes: 1 * MiB,
  maxEntries: 100_000,
  cleanupIntervalMs: 60_000,
  negativeTtlMs: 500,
  negativeMaxBytes: 256 * KiB,
}

/** A clock the test moves by hand; starts at a realistic epoch time. */
export function manualClock(start = 1_700_000_000_000) {
  let t = start
  return {
    now: (): number => t,
    advance(ms: number): void {
      t += ms
    },
  }
}

/** `key(i)`: a distinct credentialKey per number. */
export const key = (i: number | string): string => credentialKey(`token-${i}`)

export function positive<V>(value: V, extra: { sizeBytes?: number; expiresAtMs?: number } = {}): LoadResult<V> {
  return { kind: 'positive', value, sizeBytes: 64, ...extra }
}

export function negative(reason = 'token_inactive'): LoadResult<never> {
  return { kind: 'negative', reason }
}

/** A promise the test settles by hand. */
export function deferred<T>() {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Creates caches and disposes all of them in `afterEach`. */
export function cacheFactory() {
  const made: AuthCache<unknown>[] = []
  return {
    make<V>(overrides: Partial<CacheOptions> = {}, now?: () => number): AuthCache<V> {
      const cache = new AuthCache<V>({ ...baseOptions, ...overrides }, now === undefined ? {} : { now })
      made.push(cache as unknown as AuthCache<unknown>)
      return cache
    },
    disposeAll(): void {
      for (const c of made.splice(0)) c.dispose()
    },
  }
}

/** Deterministic PRNG (mulberry32) so size-distribution tests are reproducible. */
export function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
