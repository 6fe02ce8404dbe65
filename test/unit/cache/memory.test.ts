/**
 * Heap measurements behind ENTRY_OVERHEAD_BYTES, SLOT_BYTES and estimateBytes (security.md §7.3,
 * in-process method): `heapUsed` after a forced GC, before and after filling a cache.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { ENTRY_OVERHEAD_BYTES, SLOT_BYTES } from '../../../src/cache/auth-cache.js'
import { credentialKey } from '../../../src/cache/key.js'
import { estimateBytes } from '../../../src/cache/size.js'
import { cacheFactory, MiB, random } from './helpers.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapUsed(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const caches = cacheFactory()
afterEach(() => caches.disposeAll())

const shared = Object.freeze({ sub: 'shared' })

/** An introspection-style session with unique strings, the kind of value the caches hold. */
function session(i: number) {
  return {
    sub: `user-${i}-${'u'.repeat(20)}`,
    active: true,
    scope: 'openid profile email offline_access',
    client_id: `client-${i}`,
    exp: 1_900_000_000 + i,
    iat: 1_800_000_000.5 + i,
    aud: [`https://api-${i}.example`, 'https://other.example'],
    ext: { tenant: `tenant-${i}`, roles: ['admin', 'reader'], nested: { depth: 2, ok: null } },
  }
}

describe('memory', () => {
  // 65 537 and 140 000 sit just past the key Map's table doublings, where the overhead peaks.
  it.each([65_537, 140_000])(
    'a full cache of %i entries uses no more heap per entry than ENTRY_OVERHEAD_BYTES + key',
    async (n) => {
      const cache = caches.make<object>({ maxEntries: n, maxBytes: 1024 * MiB, negativeTtlMs: 0, ttlMs: 600_000 })
      const before = heapUsed()
      for (let i = 0; i < n; i++) {
        await cache.lookup(credentialKey(`token-${i}`), async () => ({
          kind: 'positive',
          value: shared,
          sizeBytes: 0,
          expiresAtMs: Date.now() + 3_600_000 + i,
        }))
      }
      const perEntry = (heapUsed() - before) / n - 43
      expect(cache.stats().entries).toBe(n)
      expect(perEntry).toBeGreaterThan(0)
      expect(perEntry).toBeLessThanOrEqual(ENTRY_OVERHEAD_BYTES)
    },
  )

  it('an empty cache pre-allocates no more than SLOT_BYTES per slot', () => {
    const before = heapUsed()
    const cache = caches.make<object>({ maxEntries: 500_000, maxBytes: 1024 * MiB, negativeTtlMs: 0 })
    const perSlot = (heapUsed() - before) / 500_000
    expect(cache.stats().entries).toBe(0)
    expect(perSlot).toBeLessThanOrEqual(SLOT_BYTES)
  })

  it('a 4 MiB cache flooded with 200 000 random-size values retains no more heap than it reserves', async () => {
    const before = heapUsed()
    const cache = caches.make<string>({ maxBytes: 4 * MiB, negativeMaxBytes: 1 * MiB, ttlMs: 600_000 })
    const rnd = random(7)
    for (let i = 0; i < 200_000; i++) {
      const value = `claims-${i}-`.padEnd(Math.floor(rnd() * 4096), 'x')
      await cache.lookup(credentialKey(`token-${i}`, 'https://idp.example/introspect'), async () =>
        i % 4 === 0
          ? { kind: 'negative', reason: 'token_inactive' }
          : { kind: 'positive', value, sizeBytes: estimateBytes(value) },
      )
    }
    const retained = heapUsed() - before
    const s = cache.stats()
    expect(s.bytes).toBeLessThanOrEqual(s.maxBytes)
    expect(s.negativeBytes).toBeLessThanOrEqual(s.negativeMaxBytes)
    expect(retained).toBeLessThanOrEqual(cache.reservedBytes)
  })

  it.each([
    { name: 'built as object literals', make: (i: number): unknown => session(i) },
    { name: 'parsed from JSON', make: (_i: number, text: string): unknown => JSON.parse(text) },
  ])('estimateBytes is at least the heap a session-like value $name retains', ({ make }) => {
    const count = 20_000
    // Everything the measurement does not count is allocated before it and kept alive after it:
    // V8 may collect locals it sees are dead, which would make the growth look smaller.
    const holder = {
      texts: Array.from({ length: count }, (_, i) => JSON.stringify(session(i))),
      values: new Array<unknown>(count).fill(0),
    }
    const before = heapUsed()
    for (let i = 0; i < count; i++) holder.values[i] = make(i, holder.texts[i]!)
    const perValue = (heapUsed() - before) / count
    expect(holder.values).toHaveLength(count)
    expect(holder.texts).toHaveLength(count)
    expect(perValue).toBeGreaterThan(0)
    expect(estimateBytes(holder.values[count - 1])).toBeGreaterThanOrEqual(perValue)
  })

  it.each([
    { name: 'a one-byte string', value: 'abc', bytes: 24 },
    { name: 'a two-byte string', value: '\u20ac\u20ac', bytes: 24 },
    { name: 'a small integer', value: 42, bytes: 0 },
    { name: 'a double', value: 0.5, bytes: 16 },
    { name: 'an empty object', value: {}, bytes: 24 },
    { name: 'an empty array', value: [], bytes: 48 },
    { name: 'null and booleans', value: [null, true, false], bytes: 48 + 24 },
    { name: 'an object with one string property', value: { a: 'b' }, bytes: 24 + 24 + 24 + 24 },
  ])('estimateBytes of $name is $bytes', ({ value, bytes }) => {
    expect(estimateBytes(value)).toBe(bytes)
  })

  it('estimateBytes counts a shared object once and survives cycles and deep nesting', () => {
    const inner = { s: 'x'.repeat(100) }
    expect(estimateBytes([inner, inner])).toBe(48 + 16 + estimateBytes(inner))
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    expect(estimateBytes(cyclic)).toBeGreaterThan(0)
    let deep: unknown = 'leaf'
    for (let i = 0; i < 100_000; i++) deep = [deep]
    expect(estimateBytes(deep)).toBeGreaterThan(100_000 * 48)
  })

})
