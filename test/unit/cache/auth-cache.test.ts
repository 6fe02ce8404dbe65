import { getEventListeners } from 'node:events'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  AuthCache,
  CacheAbortError,
  ENTRY_OVERHEAD_BYTES,
  type CacheOptions,
  type LoadResult,
} from '../../../src/cache/auth-cache.js'
import { CREDENTIAL_KEY_LENGTH } from '../../../src/cache/key.js'
import { baseOptions, cacheFactory, deferred, key, KiB, manualClock, MiB, negative, positive, random } from './helpers.js'

const caches = cacheFactory()
afterEach(() => {
  caches.disposeAll()
  vi.useRealTimers()
})

describe('AuthCache bounds', () => {
  it('keeps bytes (keys and overhead included) within maxBytes after every insert of 100 000 random-size entries', async () => {
    const cache = caches.make<string>({ maxBytes: 1 * MiB })
    const rnd = random(42)
    for (let i = 0; i < 100_000; i++) {
      const sizeBytes = Math.floor(rnd() * 20 * KiB)
      await cache.lookup(key(i), async () => positive('v', { sizeBytes }))
      const s = cache.stats()
      if (s.bytes > s.maxBytes) throw new Error(`bytes ${s.bytes} > maxBytes ${s.maxBytes} after insert ${i}`)
    }
    const s = cache.stats()
    expect(s.loads).toBe(100_000)
    expect(s.evictions).toBeGreaterThan(90_000)
    expect(s.entries + s.evictions).toBe(100_000)
    expect(s.bytes).toBeLessThanOrEqual(1 * MiB)
  })

  it('counts the key and the per-entry overhead, not just the value', async () => {
    const cache = caches.make<string>()
    await cache.lookup(key(1), async () => positive('v', { sizeBytes: 1000 }))
    expect(cache.stats().bytes).toBe(ENTRY_OVERHEAD_BYTES + CREDENTIAL_KEY_LENGTH + 1000)
  })

  it('holds even tiny entries to the overhead, so a 1 MiB cache never holds more than 1 MiB / 299 B entries', async () => {
    const cache = caches.make<string>({ maxBytes: 1 * MiB })
    for (let i = 0; i < 20_000; i++) await cache.lookup(key(i), async () => positive('v', { sizeBytes: 0 }))
    expect(cache.stats().entries).toBe(Math.floor(MiB / (ENTRY_OVERHEAD_BYTES + CREDENTIAL_KEY_LENGTH)))
  })

  it('caps the number of entries at maxEntries, evicting the least recently used', async () => {
    const cache = caches.make<number>({ maxEntries: 100, maxBytes: 64 * MiB })
    for (let i = 0; i < 1_000; i++) {
      await cache.lookup(key(i), async () => positive(i))
      expect(cache.stats().entries).toBeLessThanOrEqual(100)
    }
    expect(cache.stats()).toMatchObject({ entries: 100, evictions: 900 })
    expect(cache.peek(key(999))).toMatchObject({ value: 999 })
    expect(cache.peek(key(0))).toBeUndefined()
  })

  it('does not store a value larger than maxBytes, but still answers with it', async () => {
    const cache = caches.make<string>({ maxBytes: 64 * KiB })
    const r = await cache.lookup(key(1), async () => positive('huge', { sizeBytes: 65 * KiB }))
    expect(r).toMatchObject({ kind: 'positive', value: 'huge', hit: false })
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 })
  })

  it('rejects keys that are not credentialKey digests, such as a raw token', async () => {
    const cache = caches.make<string>()
    const load = vi.fn(async () => positive('v'))
    await expect(cache.lookup('eyJhbGciOiJIUzI1NiJ9.e30.'.padEnd(8 * KiB, 'x'), load)).rejects.toThrow(/credentialKey/)
    expect(load).not.toHaveBeenCalled()
  })
})

describe('AuthCache lifetimes', () => {
  const lifetimes: { name: string; ttlMs: number; expiresInMs?: number; lifeMs: number }[] = [
    { name: 'the configured ttl without a credential expiry', ttlMs: 1_000, lifeMs: 1_000 },
    { name: 'the configured ttl when the credential outlives it', ttlMs: 1_000, expiresInMs: 60_000, lifeMs: 1_000 },
    { name: 'the credential expiry when it comes first', ttlMs: 60_000, expiresInMs: 5_000, lifeMs: 5_000 },
    { name: 'the credential expiry rounded down to the millisecond', ttlMs: 60_000, expiresInMs: 2_500.9, lifeMs: 2_500 },
  ]

  it.each(lifetimes)('keeps an entry for $name', async ({ ttlMs, expiresInMs, lifeMs }) => {
    const clock = manualClock()
    const cache = caches.make<string>({ ttlMs }, clock.now)
    const expiresAtMs = expiresInMs === undefined ? undefined : clock.now() + expiresInMs
    const load = vi.fn(async () => positive('v', expiresAtMs === undefined ? {} : { expiresAtMs }))
    await cache.lookup(key(1), load)
    clock.advance(lifeMs - 1)
    expect(await cache.lookup(key(1), load)).toMatchObject({ hit: true, expiresAtMs })
    clock.advance(1)
    expect(await cache.lookup(key(1), load)).toMatchObject({ hit: false })
    expect(load).toHaveBeenCalledTimes(2)
    expect(cache.stats().expirations).toBe(1)
  })

  it.each([
    { name: 'already expired', expiresInMs: -1 },
    { name: 'expiring now', expiresInMs: 0 },
    { name: 'expiring within the millisecond', expiresInMs: 0.5 },
  ])('does not store a credential $name, but answers with it', async ({ expiresInMs }) => {
    const clock = manualClock()
    const cache = caches.make<string>({}, clock.now)
    const load = vi.fn(async () => positive('v', { expiresAtMs: clock.now() + expiresInMs }))
    expect(await cache.lookup(key(1), load)).toMatchObject({ kind: 'positive', value: 'v', hit: false })
    expect(cache.stats().entries).toBe(0)
    await cache.lookup(key(1), load)
    expect(load).toHaveBeenCalledTimes(2)
  })

  it('never slides: an entry with a 100 ms ttl read every 60 ms still expires at 100 ms', async () => {
    const clock = manualClock()
    const cache = caches.make<string>({ ttlMs: 100 }, clock.now)
    const load = vi.fn(async () => positive('v'))
    await cache.lookup(key(1), load)
    const hits: boolean[] = []
    for (let t = 60; t <= 360; t += 60) {
      clock.advance(60)
      cache.peek(key(1))
      hits.push((await cache.lookup(key(1), load)).hit)
    }
    // 60: hit; 120: expired → load (stored at 120); 180: hit; 240: expired → load; 300: hit; 360: expired.
    expect(hits).toEqual([true, false, true, false, true, false])
    expect(load).toHaveBeenCalledTimes(4)
  })

  it('never slides with the real clock either (lru-cache reads performance.now)', async () => {
    const cache = caches.make<string>({ ttlMs: 100 })
    const load = vi.fn(async () => positive('v'))
    await cache.lookup(key(1), load)
    const started = performance.now()
    while (performance.now() - started < 240) {
      await new Promise((r) => setTimeout(r, 60))
      await cache.lookup(key(1), load)
    }
    expect(load.mock.calls.length).toBeGreaterThanOrEqual(2)
  })

  it.each([
    { name: 'NaN', value: Number.NaN },
    { name: 'Infinity', value: Number.POSITIVE_INFINITY },
    { name: 'a negative ttl', value: -1 },
    { name: 'zero', value: 0 },
    { name: 'a fraction', value: 1.5 },
    { name: 'more than 2^53', value: 2 ** 60 },
  ])('refuses a ttlMs of $name', ({ value }) => {
    expect(() => caches.make({ ttlMs: value })).toThrow(/ttlMs must be an integer/)
  })

  it.each([
    { name: 'a negative negativeTtlMs', o: { negativeTtlMs: -5 } },
    { name: 'a NaN maxBytes', o: { maxBytes: Number.NaN } },
    { name: 'an Infinity maxEntries', o: { maxEntries: Number.POSITIVE_INFINITY } },
    { name: 'a cleanup interval Node would clamp to 1 ms', o: { cleanupIntervalMs: 2 ** 31 } },
    { name: 'a negativeMaxBytes too small for one entry', o: { negativeMaxBytes: 10 } },
    { name: 'a name with a space', o: { name: 'my cache' } },
    { name: 'an empty name', o: { name: '' } },
    { name: 'a name longer than 80 characters', o: { name: 'a'.repeat(81) } },
  ])('refuses $name', ({ o }) => {
    expect(() => caches.make(o as Partial<CacheOptions>)).toThrow(RangeError)
  })

  it.each([
    { name: 'a NaN expiresAtMs', r: positive('v', { expiresAtMs: Number.NaN }), message: /expiresAtMs/ },
    { name: 'an Infinity expiresAtMs', r: positive('v', { expiresAtMs: Number.POSITIVE_INFINITY }), message: /expiresAtMs/ },
    { name: 'a NaN sizeBytes', r: positive('v', { sizeBytes: Number.NaN }), message: /sizeBytes/ },
    { name: 'a negative sizeBytes', r: positive('v', { sizeBytes: -1 }), message: /sizeBytes/ },
    { name: 'an unknown kind', r: { kind: 'maybe' } as unknown as LoadResult<string>, message: /must resolve/ },
    { name: 'null', r: null as unknown as LoadResult<string>, message: /must resolve/ },
  ])('fails closed on a load result with $name: rejects, counts a load error, stores nothing', async ({ r, message }) => {
    const cache = caches.make<string>()
    await expect(cache.lookup(key(1), async () => r)).rejects.toThrow(message)
    expect(cache.stats()).toMatchObject({ loadErrors: 1, entries: 0, negativeEntries: 0, inflight: 0 })
  })

  it('purges expired entries every cleanupIntervalMs without any read, and stops on dispose', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    const clock = manualClock()
    const cache = caches.make<string>({ ttlMs: 1_000, cleanupIntervalMs: 5_000, negativeTtlMs: 1_000 }, clock.now)
    for (let i = 0; i < 50; i++) await cache.lookup(key(i), async () => positive('v'))
    for (let i = 50; i < 60; i++) await cache.lookup(key(i), async () => negative())
    expect(cache.stats()).toMatchObject({ entries: 50, negativeEntries: 10 })
    clock.advance(2_000)
    vi.advanceTimersByTime(4_999)
    expect(cache.stats()).toMatchObject({ entries: 50, negativeEntries: 10 })
    vi.advanceTimersByTime(1)
    expect(cache.stats()).toMatchObject({ entries: 0, negativeEntries: 0, bytes: 0, negativeBytes: 0, expirations: 50 })
    expect(vi.getTimerCount()).toBe(1)
    cache.dispose()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('purges with the real clock and a short real interval', async () => {
    const cache = caches.make<string>({ ttlMs: 20, cleanupIntervalMs: 10 })
    for (let i = 0; i < 10; i++) await cache.lookup(key(i), async () => positive('v'))
    await new Promise((r) => setTimeout(r, 100))
    expect(cache.stats()).toMatchObject({ entries: 0, expirations: 10 })
  })

  it('expires entries stored while an injected clock reads 0 (lru-cache would treat start 0 as "no ttl")', async () => {
    let t = 0
    const cache = caches.make<string>({ ttlMs: 100 }, () => t)
    await cache.lookup(key(1), async () => positive('v'))
    t = 101
    cache.purgeStale()
    expect(cache.stats().entries).toBe(0)
  })

  it('treats an entry as expired at its wall-clock deadline even if lru-cache still has it', async () => {
    const clock = manualClock()
    const cache = caches.make<string>({ ttlMs: 100 }, clock.now)
    await cache.lookup(key(1), async () => positive('v'))
    clock.advance(100) // lru-cache: stale only once age > ttl; the deadline: now >= stored + ttl
    expect(cache.peek(key(1))).toBeUndefined()
    expect((await cache.lookup(key(1), async () => positive('w'))).hit).toBe(false)
  })
})

describe('AuthCache coalescing', () => {
  it('makes exactly one load() call for 1 000 concurrent lookups of one key, and all get the same result', async () => {
    const cache = caches.make<{ sub: string }>()
    const gate = deferred<LoadResult<{ sub: string }>>()
    const load = vi.fn(() => gate.promise)
    const pending = Array.from({ length: 1_000 }, () => cache.lookup(key(1), load))
    expect(cache.stats().inflight).toBe(1)
    gate.resolve(positive({ sub: 'alice' }))
    const results = await Promise.all(pending)
    expect(load).toHaveBeenCalledTimes(1)
    expect(new Set(results).size).toBe(1)
    expect(results[0]).toMatchObject({ kind: 'positive', value: { sub: 'alice' }, hit: false })
    expect(cache.stats()).toMatchObject({ loads: 1, misses: 1_000, coalesced: 999, inflight: 0, entries: 1 })
    expect(await cache.lookup(key(1), load)).toMatchObject({ hit: true, value: { sub: 'alice' } })
  })

  it('rejects all 1 000 waiters when the load fails, caches nothing, and loads again next time', async () => {
    const cache = caches.make<string>()
    const gate = deferred<LoadResult<string>>()
    const load = vi.fn(() => gate.promise)
    const pending = Array.from({ length: 1_000 }, () => cache.lookup(key(1), load))
    const failure = new Error('introspection endpoint returned 503')
    gate.reject(failure)
    const settled = await Promise.allSettled(pending)
    expect(settled.every((s) => s.status === 'rejected' && s.reason === failure)).toBe(true)
    expect(cache.stats()).toMatchObject({ loads: 1, loadErrors: 1, entries: 0, negativeEntries: 0, inflight: 0 })
    const retry = vi.fn(async () => positive('ok'))
    expect(await cache.lookup(key(1), retry)).toMatchObject({ value: 'ok', hit: false })
    expect(retry).toHaveBeenCalledTimes(1)
  })

  it('turns a load() that throws synchronously into a rejection', async () => {
    const cache = caches.make<string>()
    const load = (): Promise<LoadResult<string>> => {
      throw new Error('sync boom')
    }
    await expect(cache.lookup(key(1), load)).rejects.toThrow('sync boom')
    expect(cache.stats()).toMatchObject({ loadErrors: 1, inflight: 0 })
  })

  it('empties the in-flight map after every settle, success or failure', async () => {
    const cache = caches.make<string>()
    const gates = Array.from({ length: 100 }, () => deferred<LoadResult<string>>())
    const pending = gates.map((g, i) => cache.lookup(key(i), () => g.promise))
    expect(cache.stats().inflight).toBe(100)
    gates.forEach((g, i) => (i % 2 === 0 ? g.resolve(positive('v')) : g.reject(new Error('down'))))
    await Promise.allSettled(pending)
    expect(cache.stats().inflight).toBe(0)
  })

  it('never aborts an in-flight load for key A while 10 000 other keys are inserted into a 100-entry cache', async () => {
    const cache = caches.make<string>({ maxEntries: 100 })
    const gate = deferred<LoadResult<string>>()
    const waiters = Array.from({ length: 10 }, () => cache.lookup(key('A'), () => gate.promise))
    for (let i = 0; i < 10_000; i++) await cache.lookup(key(i), async () => positive('other'))
    expect(cache.stats()).toMatchObject({ evictions: 9_900, inflight: 1 })
    gate.resolve(positive('a'))
    const results = await Promise.allSettled(waiters)
    expect(results.every((r) => r.status === 'fulfilled' && r.value.kind === 'positive' && r.value.value === 'a')).toBe(true)
    expect(cache.peek(key('A'))).toMatchObject({ value: 'a' })
  })

  it("stops only the aborting caller's wait; the shared load goes on and is cached", async () => {
    const cache = caches.make<string>()
    const gate = deferred<LoadResult<string>>()
    const load = vi.fn(() => gate.promise)
    const controller = new AbortController()
    const aborted = cache.lookup(key(1), load, controller.signal)
    const other = cache.lookup(key(1), load)
    const third = cache.lookup(key(1), load, new AbortController().signal)
    controller.abort(new Error('client went away'))
    await expect(aborted).rejects.toBeInstanceOf(CacheAbortError)
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError', cause: new Error('client went away') })
    gate.resolve(positive('v'))
    expect(await other).toMatchObject({ value: 'v' })
    expect(await third).toMatchObject({ value: 'v' })
    expect(load).toHaveBeenCalledTimes(1)
    expect(await cache.lookup(key(1), load)).toMatchObject({ hit: true })
  })

  it('does not load at all for an already-aborted signal, and leaves no listener behind', async () => {
    const cache = caches.make<string>()
    const load = vi.fn(async () => positive('v'))
    await expect(cache.lookup(key(1), load, AbortSignal.abort())).rejects.toBeInstanceOf(CacheAbortError)
    expect(load).not.toHaveBeenCalled()
    const signal = new AbortController().signal
    await cache.lookup(key(2), load, signal)
    await expect(cache.lookup(key(3), async () => Promise.reject(new Error('x')), signal)).rejects.toThrow('x')
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })

  it('does not raise an unhandled rejection when every waiter aborted before the load failed', async () => {
    const unhandled = vi.fn()
    process.on('unhandledRejection', unhandled)
    try {
      const cache = caches.make<string>()
      const gate = deferred<LoadResult<string>>()
      const controller = new AbortController()
      const p = cache.lookup(key(1), () => gate.promise, controller.signal)
      controller.abort()
      await expect(p).rejects.toBeInstanceOf(CacheAbortError)
      gate.reject(new Error('late failure'))
      await new Promise((r) => setTimeout(r, 10))
      expect(unhandled).not.toHaveBeenCalled()
      expect(cache.stats()).toMatchObject({ loadErrors: 1, inflight: 0 })
    } finally {
      process.off('unhandledRejection', unhandled)
    }
  })

  it('bounds the in-flight map: past maxInflight a new key still loads, just without sharing', async () => {
    const cache = caches.make<string>({ maxInflight: 2 })
    const gates = [deferred<LoadResult<string>>(), deferred<LoadResult<string>>()]
    const first = [cache.lookup(key(1), () => gates[0]!.promise), cache.lookup(key(2), () => gates[1]!.promise)]
    const overflow = vi.fn(async () => positive('three'))
    const third = [cache.lookup(key(3), overflow), cache.lookup(key(3), overflow)]
    expect(cache.stats().inflight).toBe(2)
    expect(await Promise.all(third)).toMatchObject([{ value: 'three' }, { value: 'three' }])
    expect(overflow).toHaveBeenCalledTimes(2)
    gates[0]!.resolve(positive('one'))
    gates[1]!.resolve(positive('two'))
    await Promise.all(first)
    expect(cache.stats().inflight).toBe(0)
  })
})

describe('AuthCache negative results', () => {
  it('answers a cached negative without loading, until negativeTtlMs is over', async () => {
    const clock = manualClock()
    const cache = caches.make<string>({ negativeTtlMs: 500 }, clock.now)
    const load = vi.fn(async () => negative('token_inactive'))
    expect(await cache.lookup(key(1), load)).toEqual({ kind: 'negative', reason: 'token_inactive', hit: false })
    clock.advance(499)
    expect(await cache.lookup(key(1), load)).toMatchObject({ kind: 'negative', reason: 'token_inactive', hit: true })
    clock.advance(1)
    await cache.lookup(key(1), load)
    expect(load).toHaveBeenCalledTimes(2)
    expect(cache.stats()).toMatchObject({ negativeHits: 1, hits: 0 })
  })

  it('keeps every positive entry through a flood of 100 000 distinct negatives', async () => {
    const clock = manualClock() // frozen: the flood takes longer than the ttl in real time
    const cache = caches.make<string>({ maxBytes: 64 * KiB, negativeMaxBytes: 64 * KiB }, clock.now)
    const positives = 100
    for (let i = 0; i < positives; i++) await cache.lookup(key(`valid-${i}`), async () => positive('v', { sizeBytes: 0 }))
    for (let i = 0; i < 100_000; i++) {
      await cache.lookup(key(`forged-${i}`), async () => negative('bad_signature'))
    }
    const s = cache.stats()
    expect(s.entries).toBe(positives)
    expect(s.evictions).toBe(0)
    expect(s.negativeEvictions).toBeGreaterThan(99_000)
    expect(s.negativeBytes).toBeLessThanOrEqual(64 * KiB)
    for (let i = 0; i < positives; i++) expect(cache.peek(key(`valid-${i}`))).toMatchObject({ kind: 'positive' })
  })

  it.each([
    { name: 'negativeTtlMs is 0', o: { negativeTtlMs: 0 } },
    { name: 'negativeMaxBytes is 0', o: { negativeMaxBytes: 0 } },
  ])('does not cache negatives when $name', async ({ o }) => {
    const cache = caches.make<string>(o)
    const load = vi.fn(async () => negative())
    await cache.lookup(key(1), load)
    await cache.lookup(key(1), load)
    expect(load).toHaveBeenCalledTimes(2)
    expect(cache.stats()).toMatchObject({ negativeEntries: 0, negativeMaxBytes: 0 })
    expect(cache.reservedBytes).toBeLessThan(baseOptions.maxBytes + baseOptions.negativeMaxBytes)
  })

  it('replaces a positive entry when a later load says the credential is now invalid', async () => {
    const clock = manualClock()
    const cache = caches.make<string>({ ttlMs: 10_000 }, clock.now)
    await cache.lookup(key(1), async () => positive('v'))
    cache.delete(key(1)) // e.g. the caller saw the cached token fail a re-check
    await cache.lookup(key(1), async () => negative('token_revoked'))
    expect(cache.peek(key(1))).toMatchObject({ kind: 'negative', reason: 'token_revoked' })
    expect(cache.stats()).toMatchObject({ entries: 0, negativeEntries: 1 })
  })
})

describe('AuthCache lifecycle', () => {
  it('does not store results of loads started before clear(), but still answers their callers', async () => {
    const cache = caches.make<string>()
    const gate = deferred<LoadResult<string>>()
    const before = cache.lookup(key(1), () => gate.promise)
    cache.clear()
    expect(cache.stats().inflight).toBe(0)
    const after = vi.fn(async () => positive('fresh'))
    expect(await cache.lookup(key(1), after)).toMatchObject({ value: 'fresh' })
    gate.resolve(positive('stale'))
    expect(await before).toMatchObject({ value: 'stale' })
    expect(cache.peek(key(1))).toMatchObject({ value: 'fresh' })
  })

  it('after dispose(), answers every lookup by loading and stores nothing', async () => {
    const onDispose = vi.fn()
    const cache = new AuthCache<string>(baseOptions, { onDispose })
    await cache.lookup(key(1), async () => positive('v'))
    cache.dispose()
    cache.dispose()
    expect(onDispose).toHaveBeenCalledTimes(1)
    expect(cache.disposed).toBe(true)
    const load = vi.fn(async () => positive('v'))
    await cache.lookup(key(1), load)
    await cache.lookup(key(1), load)
    expect(load).toHaveBeenCalledTimes(2)
    expect(cache.stats()).toMatchObject({ entries: 0, inflight: 0 })
  })

  it('reports every stat', async () => {
    const cache = caches.make<string>({ name: 'jwt:0123456789ab' })
    await cache.lookup(key(1), async () => positive('v', { sizeBytes: 10 }))
    await cache.lookup(key(1), async () => positive('v'))
    await cache.lookup(key(2), async () => negative())
    expect(cache.stats()).toEqual({
      name: 'jwt:0123456789ab',
      hits: 1,
      negativeHits: 0,
      misses: 2,
      loads: 2,
      loadErrors: 0,
      coalesced: 0,
      evictions: 0,
      negativeEvictions: 0,
      expirations: 0,
      entries: 1,
      bytes: ENTRY_OVERHEAD_BYTES + CREDENTIAL_KEY_LENGTH + 10,
      maxBytes: baseOptions.maxBytes,
      negativeEntries: 1,
      negativeBytes: ENTRY_OVERHEAD_BYTES + CREDENTIAL_KEY_LENGTH + 2 * 'token_inactive'.length,
      negativeMaxBytes: baseOptions.negativeMaxBytes,
      inflight: 0,
    })
  })
})

describe('AuthCache.get (the synchronous hit)', () => {
  it('answers a live entry without a promise, counts it as a hit and refreshes its LRU position', async () => {
    const cache = caches.make<number>({ maxEntries: 2, maxBytes: 64 * MiB })
    await cache.lookup(key(1), async () => positive(1))
    await cache.lookup(key(2), async () => positive(2))
    const r = cache.get(key(1))
    expect(r).toMatchObject({ kind: 'positive', value: 1, hit: true })
    expect(typeof (r as { then?: unknown }).then).toBe('undefined')
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2 })
    // key(1) was used last, so the third entry evicts key(2).
    await cache.lookup(key(3), async () => positive(3))
    expect(cache.peek(key(1))).toMatchObject({ value: 1 })
    expect(cache.peek(key(2))).toBeUndefined()
  })

  it('answers negatives, counts nothing on a miss, and drops an expired entry', async () => {
    const clock = manualClock()
    const cache = caches.make<number>({ ttlMs: 100 }, clock.now)
    expect(cache.get(key(1))).toBeUndefined()
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 0 })
    await cache.lookup(key(2), async () => negative('jwt_signature'))
    expect(cache.get(key(2))).toMatchObject({ kind: 'negative', reason: 'jwt_signature' })
    expect(cache.stats().negativeHits).toBe(1)
    await cache.lookup(key(3), async () => positive(3))
    clock.advance(100)
    expect(cache.get(key(3))).toBeUndefined()
    expect(cache.stats()).toMatchObject({ entries: 0, expirations: 1 })
  })

  it('refuses a key that is not a credentialKey digest', () => {
    const cache = caches.make<number>()
    expect(() => cache.get('Bearer eyJhbGciOi.raw.token')).toThrow(/credentialKey/)
  })
})
