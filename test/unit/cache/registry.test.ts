import { afterEach, describe, expect, it, vi } from 'vitest'
import { cacheReservation, SLOT_BYTES, type CacheOptions } from '../../../src/cache/auth-cache.js'
import { CacheBudget, CacheBudgetError, formatBytes } from '../../../src/cache/budget.js'
import {
  CACHE_DEFAULTS,
  CacheConfigSchema,
  cacheConfigSchema,
  cacheName,
  cacheOptionsFrom,
} from '../../../src/cache/config.js'
import { CacheRegistry } from '../../../src/cache/registry.js'
import { baseOptions, key, KiB, manualClock, MiB, positive } from './helpers.js'

const registries: CacheRegistry[] = []
function registry(maxBytes: number, now?: () => number): { budget: CacheBudget; reg: CacheRegistry } {
  const budget = new CacheBudget(maxBytes)
  const reg = new CacheRegistry(budget, now === undefined ? {} : { now })
  registries.push(reg)
  return { budget, reg }
}
afterEach(() => {
  for (const r of registries.splice(0)) r.dispose()
  vi.useRealTimers()
})

const opts = (name: string, o: Partial<CacheOptions> = {}): CacheOptions => ({ ...baseOptions, name, ...o })

describe('CacheBudget', () => {
  it('sums reservations and releases them', () => {
    const budget = new CacheBudget(10 * MiB)
    budget.reserve('a', 4 * MiB)
    budget.reserve('b', 6 * MiB)
    expect(budget.used).toBe(10 * MiB)
    budget.release('a')
    budget.release('a')
    expect(budget.used).toBe(6 * MiB)
    expect([...budget.reservations()]).toEqual([['b', 6 * MiB]])
  })

  it('throws CacheBudgetError naming every cache and its size when the sum would exceed the budget', () => {
    const budget = new CacheBudget(32 * MiB)
    budget.reserve('oauth2_introspection:aaaaaaaaaaaa', 17 * MiB)
    budget.reserve('jwt:bbbbbbbbbbbb', 10 * MiB)
    let caught: unknown
    try {
      budget.reserve('cookie_session:cccccccccccc', 8 * MiB)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(CacheBudgetError)
    const err = caught as CacheBudgetError
    expect(err.code).toBe('ERR_CACHE_BUDGET')
    expect(err.message).toContain('cache.max_bytes 32 MiB')
    expect(err.message).toContain('oauth2_introspection:aaaaaaaaaaaa 17 MiB')
    expect(err.message).toContain('jwt:bbbbbbbbbbbb 10 MiB')
    expect(err.message).toContain('cookie_session:cccccccccccc 8 MiB')
    expect(err.message).toContain('total to 35 MiB')
    expect(err.requested).toEqual({ name: 'cookie_session:cccccccccccc', bytes: 8 * MiB })
    expect(budget.used).toBe(27 * MiB)
  })

  it.each([
    { name: 'zero', bytes: 0 },
    { name: 'a fraction', bytes: 1.5 },
    { name: 'NaN', bytes: Number.NaN },
    { name: 'Infinity', bytes: Number.POSITIVE_INFINITY },
  ])('refuses a budget of $name', ({ bytes }) => {
    expect(() => new CacheBudget(bytes)).toThrow(RangeError)
  })

  it('refuses a second reservation under the same name and negative reservations', () => {
    const budget = new CacheBudget(MiB)
    budget.reserve('a', 1)
    expect(() => budget.reserve('a', 1)).toThrow(/already/)
    expect(() => budget.reserve('b', -1)).toThrow(RangeError)
  })

  it.each([
    { bytes: 512, text: '512 B' },
    { bytes: 1536, text: '1.5 KiB' },
    { bytes: 16 * MiB, text: '16 MiB' },
  ])('formats $bytes bytes as "$text"', ({ bytes, text }) => {
    expect(formatBytes(bytes)).toBe(text)
  })
})

describe('CacheRegistry', () => {
  it('reserves each cache’s byte limits plus its pre-allocated slots', () => {
    const { budget, reg } = registry(64 * MiB)
    const cache = reg.create(opts('jwt:000000000001'))
    const slots =
      Math.min(baseOptions.maxEntries, Math.floor(baseOptions.maxBytes / 299)) +
      Math.min(baseOptions.maxEntries, Math.floor(baseOptions.negativeMaxBytes / 299))
    expect(cache.reservedBytes).toBe(baseOptions.maxBytes + baseOptions.negativeMaxBytes + SLOT_BYTES * slots)
    expect(cacheReservation(opts('x'))).toBe(cache.reservedBytes)
    expect(budget.used).toBe(cache.reservedBytes)
  })

  it('throws CacheBudgetError naming the caches when cache.max_bytes is exceeded, and creates nothing', () => {
    const one = cacheReservation(opts('a'))
    const { budget, reg } = registry(2 * one + one / 2)
    reg.create(opts('oauth2_introspection:000000000001'))
    reg.create(opts('jwt:000000000002'))
    expect(() => reg.create(opts('cookie_session:000000000003'))).toThrow(CacheBudgetError)
    expect(() => reg.create(opts('cookie_session:000000000003'))).toThrow(
      /oauth2_introspection:000000000001 .*jwt:000000000002 .*cookie_session:000000000003/,
    )
    expect(reg.names()).toEqual(['oauth2_introspection:000000000001', 'jwt:000000000002'])
    expect(budget.used).toBe(2 * one)
  })

  it('returns the existing cache for the same name and options, and refuses the name with other options', () => {
    const { budget, reg } = registry(64 * MiB)
    const a = reg.create<string>(opts('jwt:000000000001'))
    expect(reg.create<string>(opts('jwt:000000000001'))).toBe(a)
    expect(reg.get('jwt:000000000001')).toBe(a)
    expect(budget.used).toBe(a.reservedBytes)
    expect(() => reg.create(opts('jwt:000000000001', { ttlMs: 5 }))).toThrow(/different options/)
  })

  it('releases the budget and stops the purge timer when a cache is disposed', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    const { budget, reg } = registry(64 * MiB)
    const a = reg.create(opts('a:1'))
    reg.create(opts('b:2'))
    expect(vi.getTimerCount()).toBe(2)
    a.dispose()
    expect(vi.getTimerCount()).toBe(1)
    expect(reg.names()).toEqual(['b:2'])
    reg.dispose()
    expect(vi.getTimerCount()).toBe(0)
    expect(budget.used).toBe(0)
    expect(reg.names()).toEqual([])
  })

  it('keeps the caches a reload still uses and disposes the rest (retainOnly)', () => {
    const { budget, reg } = registry(64 * MiB)
    const kept = reg.create(opts('jwt:000000000001'))
    reg.create(opts('jwt:000000000002'))
    reg.create(opts('oauth2_introspection:000000000003'))
    expect(reg.retainOnly(['jwt:000000000001'])).toEqual(['jwt:000000000002', 'oauth2_introspection:000000000003'])
    expect(reg.names()).toEqual(['jwt:000000000001'])
    expect(budget.used).toBe(kept.reservedBytes)
    expect(reg.delete('jwt:000000000001')).toBe(true)
    expect(reg.delete('jwt:000000000001')).toBe(false)
  })

  it('lists the stats of every cache and hands them its clock', async () => {
    const clock = manualClock()
    const { reg } = registry(64 * MiB, clock.now)
    const a = reg.create<string>(opts('a:1', { ttlMs: 100 }))
    reg.create<string>(opts('b:2'))
    await a.lookup(key(1), async () => positive('v'))
    clock.advance(100)
    expect(a.peek(key(1))).toBeUndefined()
    expect(reg.stats().map((s) => [s.name, s.loads])).toEqual([
      ['a:1', 1],
      ['b:2', 0],
    ])
  })

  it('releases the reservation when the options are invalid', () => {
    const { budget, reg } = registry(64 * MiB)
    expect(() => reg.create(opts('a:1', { cleanupIntervalMs: 0 }))).toThrow(RangeError)
    expect(budget.used).toBe(0)
    expect(reg.names()).toEqual([])
  })
})

describe('CacheConfigSchema', () => {
  it('fills in the defaults, durations in milliseconds', () => {
    expect(CacheConfigSchema.parse({})).toEqual({
      enabled: false,
      ttl: 30_000,
      max_cost: 16 * MiB,
      max_entries: 100_000,
      cleanup_interval: 10_000,
      negative_ttl: 5_000,
      negative_max_cost: 1 * MiB,
    })
  })

  it('takes per-handler defaults', () => {
    const schema = cacheConfigSchema({ enabled: true, ttl: '1m', max_cost: 4 * MiB })
    expect(schema.parse({})).toMatchObject({ enabled: true, ttl: 60_000, max_cost: 4 * MiB })
    expect(schema.parse({ enabled: false, ttl: '250ms' })).toMatchObject({ enabled: false, ttl: 250 })
  })

  it('accepts Oathkeeper-style values', () => {
    expect(CacheConfigSchema.parse({ enabled: true, ttl: '1h2m3.5s', max_cost: 100_000_000 })).toMatchObject({
      enabled: true,
      ttl: 3_723_500,
      max_cost: 100_000_000,
    })
    expect(CacheConfigSchema.parse({ negative_ttl: '0s', negative_max_cost: 0 })).toMatchObject({
      negative_ttl: 0,
      negative_max_cost: 0,
    })
  })

  it.each([
    { name: 'a zero ttl', input: { ttl: '0s' }, path: 'ttl', message: /at least 1ms/ },
    { name: 'a sub-millisecond ttl', input: { ttl: '500us' }, path: 'ttl', message: /at least 1ms/ },
    { name: 'a negative ttl', input: { ttl: '-30s' }, path: 'ttl', message: /sign/ },
    { name: 'a ttl in days', input: { ttl: '1d' }, path: 'ttl', message: /unknown unit/ },
    { name: 'a ttl as a number of milliseconds', input: { ttl: 30000 }, path: 'ttl', message: /string/ },
    { name: 'a fractional max_cost', input: { max_cost: 1.5 }, path: 'max_cost', message: /int/ },
    { name: 'a negative max_cost', input: { max_cost: -1 }, path: 'max_cost', message: /4096/ },
    { name: 'an infinite max_cost', input: { max_cost: Number.POSITIVE_INFINITY }, path: 'max_cost', message: /./ },
    { name: 'zero max_entries', input: { max_entries: 0 }, path: 'max_entries', message: /./ },
    { name: 'a 1 ms cleanup_interval', input: { cleanup_interval: '1ms' }, path: 'cleanup_interval', message: /100ms/ },
    { name: 'a cleanup_interval of a month', input: { cleanup_interval: '720h' }, path: 'cleanup_interval', message: /24h/ },
    { name: 'a sub-millisecond negative_ttl', input: { negative_ttl: '1us' }, path: 'negative_ttl', message: /0 or at least 1ms/ },
    { name: 'a tiny negative_max_cost', input: { negative_max_cost: 100 }, path: 'negative_max_cost', message: /0 or at least/ },
    { name: "Oathkeeper's max_tokens (not a key here)", input: { max_tokens: 1000 }, path: '', message: /max_tokens/ },
  ])('rejects $name', ({ input, path, message }) => {
    const r = CacheConfigSchema.safeParse(input)
    expect(r.success).toBe(false)
    const issue = r.error?.issues[0]
    expect(issue?.path.join('.')).toBe(path)
    expect(`${issue?.message} ${JSON.stringify(issue)}`).toMatch(message)
  })
})

describe('cacheOptionsFrom and cacheName', () => {
  it('maps a parsed cache block to CacheOptions', () => {
    const cfg = CacheConfigSchema.parse({ ttl: '1.5ms', cleanup_interval: '250ms', negative_ttl: '2s' })
    expect(cacheOptionsFrom('jwt:0123456789ab', cfg)).toEqual({
      name: 'jwt:0123456789ab',
      ttlMs: 1,
      maxBytes: CACHE_DEFAULTS.max_cost,
      maxEntries: CACHE_DEFAULTS.max_entries,
      cleanupIntervalMs: 250,
      negativeTtlMs: 2_000,
      negativeMaxBytes: CACHE_DEFAULTS.negative_max_cost,
    })
  })

  it('builds the default configuration into a cache that fits the default budget arithmetic', () => {
    const options = cacheOptionsFrom('jwt:0123456789ab', CacheConfigSchema.parse({}))
    expect(cacheReservation(options)).toBeLessThan(17 * MiB + 4 * MiB)
  })

  it('names a cache by handler id and a 12-hex-char hash of its config, independent of key order', () => {
    const a = cacheName('oauth2_introspection', { introspection_url: 'https://a', cache: { ttl: '30s', enabled: true } })
    const b = cacheName('oauth2_introspection', { cache: { enabled: true, ttl: '30s' }, introspection_url: 'https://a' })
    const c = cacheName('oauth2_introspection', { introspection_url: 'https://b', cache: { ttl: '30s', enabled: true } })
    expect(a).toMatch(/^oauth2_introspection:[0-9a-f]{12}$/)
    expect(a).toBe(b)
    expect(a).not.toBe(c)
  })

  it('keeps names bounded and credential-free whatever the config holds', () => {
    const secret = 's3cr3t-client-secret'
    const name = cacheName('oauth2_client_credentials', { client_secret: secret, scopes: Array(1000).fill('x') })
    expect(name.length).toBeLessThanOrEqual(61)
    expect(name).not.toContain(secret)
  })

  it.each(['', 'Jwt', 'jwt:x', 'a'.repeat(49), 'jwt token'])('refuses the handler id %j', (id) => {
    expect(() => cacheName(id, {})).toThrow(RangeError)
  })

  it('produces names AuthCache accepts', () => {
    const { reg } = registry(64 * MiB)
    const name = cacheName('oauth2_client_credentials', { token_url: 'https://idp/token' })
    expect(reg.create(cacheOptionsFrom(name, CacheConfigSchema.parse({ max_cost: 64 * KiB }))).name).toBe(name)
  })
})
