import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  disposeJwksProviders,
  JwksProvider,
  jwksProviderFor,
  jwksProviders,
  MAX_KEYS,
  parseJwks,
  type JwksSettings,
} from '../../../src/credentials/jwks.js'
import { fakeClock, isolatedDeps, jwksOf, makeKey, serveJwks, type IsolatedDeps } from '../../helpers/jwt.js'
import { startStub, type Stub } from '../../helpers/stub-server.js'

const SETTINGS: JwksSettings = {
  refreshIntervalMs: 300_000,
  maxStalenessMs: 3_600_000,
  unknownKidCooldownMs: 30_000,
  fetchTimeoutMs: 1000,
  maxBytes: 64 * 1024,
}

const rsa = makeKey('RS256', 'rsa-1')
const rsa2 = makeKey('RS256', 'rsa-2')
const ec = makeKey('ES256', 'ec-1')
const ed = makeKey('EdDSA', 'ed-1')

let stub: Stub
let deps: IsolatedDeps
let path = 0
/** A fresh path per test, so per-path hit counts start at 0. */
const nextPath = (): string => `/jwks-${++path}`

beforeAll(async () => {
  stub = await startStub()
})
afterAll(async () => {
  await stub.close()
})
afterEach(async () => {
  await deps?.close()
})

function provider(p: string, settings: Partial<JwksSettings> = {}, d?: IsolatedDeps): JwksProvider {
  deps = d ?? isolatedDeps()
  return jwksProviderFor(deps, stub.url(p), { ...SETTINGS, ...settings })
}

describe('parseJwks', () => {
  it('keeps RSA, EC and Ed25519 signature keys with their kid, type and RFC 7638 thumbprint', () => {
    const { set, skipped } = parseJwks(jwksOf(rsa, ec, ed), 1)
    expect(skipped).toEqual([])
    expect(set.keys.map((k) => [k.kid, k.kty, k.crv, k.alg])).toEqual([
      ['rsa-1', 'RSA', undefined, 'RS256'],
      ['ec-1', 'EC', 'P-256', 'ES256'],
      ['ed-1', 'OKP', 'Ed25519', 'EdDSA'],
    ])
    expect(set.thumbprints.size).toBe(3)
    // RFC 7638 §3.1 example key and thumbprint.
    const rfc = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    }
    expect(parseJwks({ keys: [rfc] }, 1).set.keys[0]?.thumbprint).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs')
  })

  it.each([
    { name: 'an oct (symmetric) key', jwk: { kty: 'oct', k: 'c2VjcmV0', kid: 'k1' }, why: /symmetric/ },
    { name: 'an encryption key (use: enc)', jwk: { ...rsa.jwk, use: 'enc' }, why: /use/ },
    { name: 'key_ops without verify', jwk: { ...rsa.jwk, key_ops: ['encrypt'] }, why: /key_ops/ },
    { name: 'an RSA key with an invalid n', jwk: { ...rsa.jwk, n: '!!!' }, why: /invalid|missing/ },
    { name: 'an RSA key without n', jwk: { kty: 'RSA', e: 'AQAB', kid: 'x' }, why: /"n"/ },
    { name: 'an RSA key under 2048 bits', jwk: makeKey('RS256', 'small', { rsaBits: 1024 }).jwk, why: /2048/ },
    { name: 'an EC key on an unsupported curve', jwk: { ...ec.jwk, crv: 'secp256k1' }, why: /curve/ },
    { name: 'an X25519 (OKP, non-signature) key', jwk: { kty: 'OKP', crv: 'X25519', x: ed.jwk['x'], kid: 'x' }, why: /curve/ },
    { name: 'an unknown kty', jwk: { kty: 'AKP', kid: 'x' }, why: /kty/ },
    { name: 'a numeric kid', jwk: { ...rsa.jwk, kid: 7 }, why: /kid/ },
    { name: 'an encryption alg', jwk: { ...rsa.jwk, alg: 'RSA-OAEP' }, why: /alg/ },
    { name: 'an alg for another key type', jwk: { ...rsa.jwk, alg: 'ES256' }, why: /alg/ },
    { name: 'not an object', jwk: 'key', why: /object/ },
  ])('skips $name (and fails when nothing usable is left)', ({ jwk, why }) => {
    const { set, skipped } = parseJwks({ keys: [jwk, rsa2.jwk] }, 1)
    expect(set.keys.map((k) => k.kid)).toEqual(['rsa-2'])
    expect(skipped).toHaveLength(1)
    expect(skipped[0]).toMatch(why)
    expect(() => parseJwks({ keys: [jwk] }, 1)).toThrow(/no usable/)
  })

  it('keeps only the public part of a published private key', () => {
    const priv = { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'leaked', use: 'sig' }
    const { set } = parseJwks({ keys: [priv] }, 1)
    expect(set.keys[0]?.key.type).toBe('public')
    expect(set.keys[0]?.thumbprint).toBe(parseJwks(jwksOf(rsa), 1).set.keys[0]?.thumbprint)
  })

  it('accepts keys without use or alg', () => {
    const bare = makeKey('RS256', 'bare', { use: null, jwkAlg: null })
    expect(parseJwks(jwksOf(bare), 1).set.keys[0]).toMatchObject({ kid: 'bare', alg: undefined })
  })

  it(`keeps at most ${MAX_KEYS} keys`, () => {
    const many = Array.from({ length: MAX_KEYS + 5 }, (_, i) => ({ ...rsa.jwk, kid: `k${i}` }))
    const { set, skipped } = parseJwks({ keys: many }, 1)
    expect(set.keys).toHaveLength(MAX_KEYS)
    expect(skipped).toHaveLength(1)
  })

  it.each([
    { name: 'null', doc: null },
    { name: 'an array', doc: [rsa.jwk] },
    { name: 'an object without keys', doc: { key: [] } },
    { name: 'keys not an array', doc: { keys: {} } },
    { name: 'an empty key list', doc: { keys: [] } },
  ])('rejects $name', ({ doc }) => {
    expect(() => parseJwks(doc, 1)).toThrow()
  })
})

describe('JwksProvider', () => {
  it('fetches at creation, once, with a bounded GET', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa, ec))
    const prov = provider(p)
    await prov.refresh()
    expect(stub.hitsFor(p)).toBe(1)
    expect(prov.current()?.keys.map((k) => k.kid)).toEqual(['rsa-1', 'ec-1'])
    const req = stub.requests.at(-1)!
    expect(req.method).toBe('GET')
    expect(req.headers['accept']).toMatch(/application\/jwk-set\+json/)
    expect(prov.stats()).toMatchObject({ fetches: 1, fetchFailures: 0, keys: 2 })
  })

  it('is shared by copies of the deps (as the rule reloader makes them), keyed by the HTTP client', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const a = provider(p)
    const copy = { ...deps, now: () => 0 }
    expect(jwksProviderFor(copy, stub.url(p), { ...SETTINGS })).toBe(a)
    await a.refresh()
    expect(stub.hitsFor(p)).toBe(1)
  })

  it('takes a lease in the cache registry and stops once no rule holds one (after a reload)', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const a = provider(p, { refreshIntervalMs: 30 })
    await a.refresh()
    const lease = deps.caches.names().filter((n) => n.startsWith('jwks:'))
    expect(lease).toHaveLength(1)
    expect(deps.caches.stats().find((c) => c.name === lease[0])?.maxBytes).toBeLessThan(1024)
    // A reload that still uses the URL asks again: the same provider, the same lease.
    expect(jwksProviderFor(deps, stub.url(p), { ...SETTINGS, refreshIntervalMs: 30 })).toBe(a)
    deps.caches.retainOnly(lease)
    await new Promise((r) => setTimeout(r, 80))
    expect(a.disposed).toBe(false)
    // A reload that no longer uses it: the reloader disposes the lease, the provider stops.
    deps.caches.retainOnly([])
    await new Promise((r) => setTimeout(r, 80))
    expect(a.disposed).toBe(true)
    const hits = stub.hitsFor(p)
    await new Promise((r) => setTimeout(r, 80))
    expect(stub.hitsFor(p)).toBe(hits)
    expect(jwksProviders(deps)).toEqual([])
  })

  it('is revived by a new lease taken before its timer noticed the old one was released', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const a = provider(p, { refreshIntervalMs: 60 })
    deps.caches.retainOnly([])
    expect(a.released).toBe(true)
    expect(jwksProviderFor(deps, stub.url(p), { ...SETTINGS, refreshIntervalMs: 60 })).toBe(a)
    expect(a.released).toBe(false)
    await new Promise((r) => setTimeout(r, 150))
    expect(a.disposed).toBe(false)
  })

  it('is shared per (HTTP client, URL, settings) and disposed with its deps', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const a = provider(p)
    const b = jwksProviderFor(deps, stub.url(p), { ...SETTINGS })
    const c = jwksProviderFor(deps, stub.url(p), { ...SETTINGS, maxStalenessMs: 7_200_000 })
    const other = isolatedDeps()
    const d = jwksProviderFor(other, stub.url(p), { ...SETTINGS })
    expect(b).toBe(a)
    expect(c).not.toBe(a)
    expect(d).not.toBe(a)
    expect(jwksProviders(deps)).toHaveLength(2)
    expect(disposeJwksProviders(deps)).toBe(2)
    expect(a.disposed && c.disposed).toBe(true)
    expect(d.disposed).toBe(false)
    expect(jwksProviders(deps)).toHaveLength(0)
    expect(jwksProviderFor(deps, stub.url(p), { ...SETTINGS })).not.toBe(a)
    await other.close()
    expect(d.disposed).toBe(true)
  })

  describe('keeps the last good keys when a refresh fails (A33)', () => {
    const failures = [
      { name: '500', mode: { kind: '5xx', status: 500 } as const },
      { name: 'HTML', mode: 'html' as const },
      { name: 'invalid JSON', mode: 'garbage' as const },
      { name: '{"keys":[]}', mode: { kind: 'json', body: { keys: [] } } as const },
      { name: 'only bad keys', mode: { kind: 'json', body: { keys: [{ ...rsa.jwk, n: 'AA' }] } } as const },
      { name: 'a 404', mode: { kind: 'json', status: 404, body: {} } as const },
      { name: 'a huge body', mode: { kind: 'huge', mib: 2 } as const },
      { name: 'a redirect', mode: { kind: 'redirect', location: '/elsewhere' } as const },
      { name: 'a reset', mode: 'reset' as const },
      { name: 'a hang (timeout)', mode: 'hang' as const },
      { name: 'a body that never ends', mode: { kind: 'never-ending', intervalMs: 10 } as const },
    ]
    it.each(failures)('$name', async ({ mode }) => {
      const p = nextPath()
      serveJwks(stub, p, jwksOf(rsa))
      const prov = provider(p, { fetchTimeoutMs: 300 })
      await prov.refresh()
      const before = prov.current()
      expect(before?.keys).toHaveLength(1)
      stub.setMode(p, mode)
      await prov.refresh()
      expect(prov.current()).toBe(before)
      expect(prov.stats().fetchFailures).toBe(1)
      expect(prov.stats().lastError).toBeTypeOf('string')
    })
  })

  it('never follows a redirect to a key set', async () => {
    const p = nextPath()
    serveJwks(stub, `${p}-target`, jwksOf(rsa))
    stub.setMode(p, { kind: 'redirect', location: `${p}-target` })
    const prov = provider(p)
    await prov.refresh()
    expect(prov.current()).toBeUndefined()
    expect(stub.hitsFor(`${p}-target`)).toBe(0)
    expect(prov.stats().lastError).toBe('redirect')
  })

  it('stops serving keys past max staleness, and serves them again after a successful fetch', async () => {
    const clock = fakeClock()
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const prov = provider(p, { maxStalenessMs: 60_000 }, isolatedDeps({ now: clock }))
    await prov.refresh()
    stub.setMode(p, '5xx')
    clock.advance(59_000)
    await prov.refresh()
    expect(prov.current()).toBeDefined()
    clock.advance(1_001)
    expect(prov.current()).toBeUndefined()
    serveJwks(stub, p, jwksOf(rsa2))
    await prov.refresh()
    expect(prov.current()?.keys.map((k) => k.kid)).toEqual(['rsa-2'])
  })

  it('coalesces concurrent refetches and rate-limits them to one per cooldown (A35)', async () => {
    const clock = fakeClock()
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const prov = provider(p, { unknownKidCooldownMs: 30_000 }, isolatedDeps({ now: clock }))
    await prov.refresh()
    expect(stub.hitsFor(p)).toBe(1)
    stub.setMode(p, { kind: 'slow', delayMs: 50, then: { kind: 'json', body: jwksOf(rsa) } })
    await Promise.all(Array.from({ length: 1000 }, () => prov.refetch(1000)))
    expect(stub.hitsFor(p)).toBe(2)
    for (let i = 0; i < 1000; i++) await prov.refetch(1000)
    expect(stub.hitsFor(p)).toBe(2)
    expect(prov.stats().rateLimited).toBe(1000)
    clock.advance(30_000)
    await prov.refetch(1000)
    expect(stub.hitsFor(p)).toBe(3)
  })

  it('joins the initial fetch instead of starting another', async () => {
    const p = nextPath()
    stub.setMode(p, { kind: 'slow', delayMs: 50, then: { kind: 'json', body: jwksOf(rsa) } })
    const prov = provider(p)
    await Promise.all([prov.refetch(1000), prov.refetch(1000)])
    expect(stub.hitsFor(p)).toBe(1)
    expect(prov.current()).toBeDefined()
  })

  it('bounds the wait with maxWaitMs and the caller signal, without cancelling the fetch', async () => {
    const p = nextPath()
    stub.setMode(p, { kind: 'slow', delayMs: 300, then: { kind: 'json', body: jwksOf(rsa) } })
    const prov = provider(p)
    let t = performance.now()
    await prov.refetch(50)
    expect(performance.now() - t).toBeLessThan(250)
    expect(prov.current()).toBeUndefined()
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 20)
    t = performance.now()
    await prov.refetch(5000, ac.signal)
    expect(performance.now() - t).toBeLessThan(250)
    await prov.refresh()
    expect(prov.current()).toBeDefined()
    expect(stub.hitsFor(p)).toBe(1)
  })

  it('refreshes in the background and retries failures with backoff', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const prov = provider(p, { refreshIntervalMs: 40 })
    await new Promise((r) => setTimeout(r, 200))
    expect(stub.hitsFor(p)).toBeGreaterThanOrEqual(3)
    prov.dispose()
    const hits = stub.hitsFor(p)
    await new Promise((r) => setTimeout(r, 100))
    expect(stub.hitsFor(p)).toBe(hits)
  })

  it('retries a failed first fetch after about a second, not after the refresh interval', async () => {
    const p = nextPath()
    // 500: the client does not retry it (it retries 502-504 within the deadline).
    stub.setMode(p, { kind: 'sequence', steps: [{ kind: '5xx', status: 500 }, { kind: 'json', body: jwksOf(rsa) }] })
    const prov = provider(p)
    await prov.refresh()
    expect(prov.current()).toBeUndefined()
    await new Promise((r) => setTimeout(r, 1300))
    expect(stub.hitsFor(p)).toBe(2)
    expect(prov.current()).toBeDefined()
  })

  it('stops by itself once the HTTP client is closed', async () => {
    const p = nextPath()
    serveJwks(stub, p, jwksOf(rsa))
    const prov = provider(p)
    await prov.refresh()
    await deps.http.close()
    await prov.refresh()
    expect(prov.disposed).toBe(true)
  })

  it('dispose() aborts a fetch in flight and forgets the keys', async () => {
    const p = nextPath()
    stub.setMode(p, 'hang')
    const prov = provider(p, { fetchTimeoutMs: 5000 })
    await new Promise((r) => setTimeout(r, 30))
    const t = performance.now()
    prov.dispose()
    await prov.refresh()
    expect(performance.now() - t).toBeLessThan(100)
    expect(prov.current()).toBeUndefined()
    await stub.socketsClosed(2000)
  })
})

describe('file:// key sets', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-jwks-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('reads the file, re-reads it on refresh, and keeps the last good keys when it breaks', async () => {
    const file = join(dir, 'jwks.json')
    writeFileSync(file, JSON.stringify(jwksOf(rsa)))
    deps = isolatedDeps()
    const prov = jwksProviderFor(deps, pathToFileURL(file).href, SETTINGS)
    await prov.refresh()
    expect(prov.current()?.keys.map((k) => k.kid)).toEqual(['rsa-1'])
    writeFileSync(file, JSON.stringify(jwksOf(rsa, rsa2)))
    await prov.refresh()
    expect(prov.current()?.keys.map((k) => k.kid)).toEqual(['rsa-1', 'rsa-2'])
    writeFileSync(file, '<html>')
    await prov.refresh()
    expect(prov.current()?.keys).toHaveLength(2)
    expect(prov.stats().lastError).toBe('not_json')
    rmSync(file)
    await prov.refresh()
    expect(prov.current()?.keys).toHaveLength(2)
    expect(prov.stats().lastError).toBe('read_failed')
  })

  it('refuses a file over the size cap', async () => {
    const file = join(dir, 'big.json')
    writeFileSync(file, JSON.stringify({ keys: [rsa.jwk], pad: 'x'.repeat(8192) }))
    deps = isolatedDeps()
    const prov = jwksProviderFor(deps, pathToFileURL(file).href, { ...SETTINGS, maxBytes: 4096 })
    await prov.refresh()
    expect(prov.current()).toBeUndefined()
    expect(prov.stats().lastError).toBe('too_large')
  })
})
