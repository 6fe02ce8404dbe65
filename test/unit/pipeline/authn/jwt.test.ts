import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { disposeJwksProviders, jwksProviders, type JwksProvider } from '../../../../src/credentials/jwks.js'
import { jwt } from '../../../../src/pipeline/authn/jwt.js'
import { MAX_TOKEN_LENGTH } from '../../../../src/pipeline/authn/shared/token.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { NOT_RESPONSIBLE, type Authenticator, type Session } from '../../../../src/pipeline/types.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { parseConfig } from '../../../contract/config.contract.js'
import { expectSafePipelineError } from '../../../contract/safety.js'
import { checkClient, headerOf, httpRequest } from '../../../helpers/check-client.js'
import { ALL_HANDLERS, startWith } from '../../../helpers/in-process.js'
import {
  b64u,
  claimsAt,
  fakeClock,
  isolatedDeps,
  jwksOf,
  makeKey,
  seconds,
  serveJwks,
  signJwt,
  signRaw,
  type FakeClock,
  type IsolatedDeps,
} from '../../../helpers/jwt.js'
import { makeRequest, makeSession, TEST_DEPS } from '../../../helpers/session.js'
import { startStub, type Stub } from '../../../helpers/stub-server.js'

const ISS_A = 'https://idp-a.example'
const ISS_B = 'https://idp-b.example'

// Issuer A publishes one key per algorithm family; issuer B has its own key and one reusing A's kid.
const kA = makeKey('RS256', 'a1')
const kAec = makeKey('ES256', 'a-ec')
const kAps = makeKey('PS256', 'a-ps')
const kAed = makeKey('EdDSA', 'a-ed')
const kB = makeKey('RS256', 'b1')
const kBa1 = makeKey('RS256', 'a1', { seed: 'b-reuses-a1' })
const attacker = makeKey('RS256', 'attacker')

// A JWKS file for the contract suite (its configs are needed before any server starts).
const fileDir = mkdtempSync(join(tmpdir(), 'portcullis-jwt-'))
const FILE_JWKS = join(fileDir, 'jwks.json')
writeFileSync(FILE_JWKS, JSON.stringify(jwksOf(kA)))
const FILE_URL = pathToFileURL(FILE_JWKS).href

let stub: Stub
let trap: Stub
const live: IsolatedDeps[] = []
let pathSeq = 0
const freshPath = (name: string): string => `/${name}-${++pathSeq}`

beforeAll(async () => {
  stub = await startStub()
  trap = await startStub({ kind: 'json', body: jwksOf(attacker) })
  serveJwks(stub, '/a', jwksOf(kA, kAec, kAps, kAed))
  serveJwks(stub, '/b', jwksOf(kB, kBa1))
})
afterEach(async () => {
  await Promise.all(live.splice(0).map((d) => d.close()))
})
afterAll(async () => {
  disposeJwksProviders(TEST_DEPS)
  await stub?.close()
  await trap?.close()
  rmSync(fileDir, { recursive: true, force: true })
})

interface Built {
  readonly authn: Authenticator
  readonly deps: IsolatedDeps
  /** The JWKS providers this handler uses (shared per deps). */
  readonly providers: () => JwksProvider[]
  /** Key selections so far: one per signature verification attempted. */
  readonly selections: () => number
}

/** The handler with `config` over R-admin's (JWKS A, iss A, aud api), on deps of its own. */
function build(config: Record<string, unknown> = {}, o: { now?: FakeClock; deps?: IsolatedDeps } = {}): Built {
  const deps = o.deps ?? isolatedDeps(o.now === undefined ? {} : { now: o.now })
  if (o.deps === undefined) live.push(deps)
  // A small cache: lru-cache pre-allocates its slots, which would make every test pay for 16 MiB.
  const cache = { max_cost: 256 * 1024, ...(config['cache'] as object | undefined) }
  const full = { jwks_urls: [stub.url('/a')], trusted_issuers: [ISS_A], target_audience: ['api'], ...config, cache }
  const authn = jwt.create(parseConfig(jwt, full), deps)
  return {
    authn,
    deps,
    providers: () => jwksProviders(deps),
    selections: () => jwksProviders(deps).reduce((n, p) => n + p.stats().selections, 0),
  }
}

/** Names and stats of the verified-token caches (the registry also holds JWKS leases, `jwks:…`). */
const jwtCaches = (deps: IsolatedDeps): string[] => deps.caches.names().filter((n) => n.startsWith('jwt:'))
const jwtCacheStats = (deps: IsolatedDeps) => deps.caches.stats().find((c) => c.name.startsWith('jwt:'))!

type Outcome =
  | { readonly kind: 'not_responsible' }
  | { readonly kind: 'ok'; readonly s: Session }
  | { readonly kind: 'denied'; readonly code: string; readonly reason: string; readonly error: PipelineError }

async function attempt(
  authn: Authenticator,
  token: string | undefined,
  o: { headers?: Record<string, string>; query?: string; signal?: AbortSignal } = {},
): Promise<Outcome> {
  const headers = { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...o.headers }
  const req = makeRequest({ headers, ...(o.query === undefined ? {} : { query: o.query }) })
  const s = makeSession(req)
  try {
    // A signal per request, as each Check has its own (Node's EventTarget adds listeners in O(n)).
    const r = await authn.authenticate(req, s, o.signal ?? new AbortController().signal)
    if (r === NOT_RESPONSIBLE) return { kind: 'not_responsible' }
    return { kind: 'ok', s }
  } catch (err) {
    expectSafePipelineError(err, 'jwt')
    if (token !== undefined && token.length > 20) {
      for (const part of token.split('.')) if (part.length > 8) expect(err.message).not.toContain(part)
    }
    return { kind: 'denied', code: err.code, reason: err.reason, error: err }
  }
}

/** The reason of a denial, `ok`, or `not_responsible`. */
async function reasonOf(authn: Authenticator, token: string | undefined, o: Parameters<typeof attempt>[2] = {}): Promise<string> {
  const r = await attempt(authn, token, o)
  return r.kind === 'denied' ? r.reason : r.kind
}

async function subjectOf(authn: Authenticator, token: string): Promise<Session> {
  const r = await attempt(authn, token)
  if (r.kind !== 'ok') throw new Error(`expected success, got ${r.kind === 'denied' ? r.reason : r.kind}`)
  return r.s
}

const nowClaims = (extra: Record<string, unknown> = {}): Record<string, unknown> => claimsAt(Date.now(), extra)
const tokenA = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> =>
  signJwt(kA, nowClaims(extra), header)

describe('authn jwt', () => {
  runAuthenticatorContract({
    factory: jwt,
    validConfigs: [
      { jwks_urls: [FILE_URL] },
      {
        jwks_urls: [FILE_URL, 'https://idp.example/.well-known/jwks.json'],
        allowed_algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
        trusted_issuers: [ISS_A],
        target_audience: ['api'],
        required_scope: ['read'],
        scope_strategy: 'hierarchic',
        token_from: { header: 'X-Token' },
        require_exp: false,
        leeway: '30s',
        max_token_lifetime: '24h',
        jwks_refresh_interval: '1m',
        jwks_max_staleness: '2h',
        jwks_unknown_kid_cooldown: '10s',
        jwks_fetch_timeout: '500ms',
        jwks_max_wait: '200ms',
        jwks_max_bytes: 65536,
        cache: { enabled: false },
      },
      { jwks_urls: [FILE_URL], jwks_ttl: '30s', jwks_max_wait: '1s', token_from: { cookie: 'jwt' } },
    ],
    invalidConfigs: [
      { name: 'no jwks_urls', config: {}, path: ['jwks_urls'] },
      { name: 'an empty jwks_urls', config: { jwks_urls: [] }, path: ['jwks_urls'] },
      { name: 'an s3:// URL', config: { jwks_urls: ['s3://bucket/jwks.json'] }, path: ['jwks_urls', 0] },
      { name: 'a relative file URL', config: { jwks_urls: ['file://./jwks.json'] }, path: ['jwks_urls', 0] },
      { name: 'a URL with userinfo', config: { jwks_urls: ['https://u:p@idp.example/jwks'] }, path: ['jwks_urls', 0] },
      { name: 'not a URL', config: { jwks_urls: ['jwks.json'] }, path: ['jwks_urls', 0] },
      { name: 'HS256 (symmetric)', config: { jwks_urls: [FILE_URL], allowed_algorithms: ['RS256', 'HS256'] }, path: ['allowed_algorithms', 1] },
      { name: 'alg none', config: { jwks_urls: [FILE_URL], allowed_algorithms: ['none'] }, path: ['allowed_algorithms', 0] },
      { name: 'an unknown algorithm', config: { jwks_urls: [FILE_URL], allowed_algorithms: ['RS1'] }, path: ['allowed_algorithms', 0] },
      { name: 'no algorithm', config: { jwks_urls: [FILE_URL], allowed_algorithms: [] }, path: ['allowed_algorithms'] },
      {
        name: 'required_scope with scope_strategy none (the default)',
        config: { jwks_urls: [FILE_URL], required_scope: ['read'] },
        path: ['scope_strategy'],
      },
      { name: 'an unknown scope strategy', config: { jwks_urls: [FILE_URL], scope_strategy: 'regex' }, path: ['scope_strategy'] },
      { name: 'a leeway over 5m', config: { jwks_urls: [FILE_URL], leeway: '10m' }, path: ['leeway'] },
      { name: 'a leeway that is not a duration', config: { jwks_urls: [FILE_URL], leeway: '5' }, path: ['leeway'] },
      {
        name: 'max staleness below the refresh interval',
        config: { jwks_urls: [FILE_URL], jwks_refresh_interval: '2h', jwks_max_staleness: '1h' },
        path: ['jwks_max_staleness'],
      },
      { name: 'a cooldown under 1s', config: { jwks_urls: [FILE_URL], jwks_unknown_kid_cooldown: '10ms' }, path: ['jwks_unknown_kid_cooldown'] },
      { name: 'an invalid token_from', config: { jwks_urls: [FILE_URL], token_from: { header: 'X Token' } }, path: ['token_from', 'header'] },
      { name: 'an unknown cache key', config: { jwks_urls: [FILE_URL], cache: { size: 1 } }, path: ['cache'] },
      { name: 'require_exp not a boolean', config: { jwks_urls: [FILE_URL], require_exp: 'yes' }, path: ['require_exp'] },
    ],
  })

  describe('configuration', () => {
    it('has Oathkeeper defaults (RS256, strategy none) and ours', () => {
      const c = parseConfig(jwt, { jwks_urls: [FILE_URL] })
      expect(c).toMatchObject({
        allowed_algorithms: ['RS256'],
        trusted_issuers: [],
        target_audience: [],
        required_scope: [],
        scope_strategy: 'none',
        require_exp: true,
        leeway: 0,
        jwks_refresh_interval: 300_000,
        jwks_max_staleness: 3_600_000,
        jwks_unknown_kid_cooldown: 30_000,
        jwks_fetch_timeout: 2000,
        jwks_max_wait: 1000,
        jwks_max_bytes: 1024 * 1024,
        cache: { enabled: true, ttl: 60_000 },
      })
      expect(c.max_token_lifetime).toBeUndefined()
    })

    it("maps Oathkeeper's jwks_ttl onto the refresh interval; jwks_refresh_interval wins", () => {
      expect(parseConfig(jwt, { jwks_urls: [FILE_URL], jwks_ttl: '30s' }).jwks_refresh_interval).toBe(30_000)
      expect(parseConfig(jwt, { jwks_urls: [FILE_URL], jwks_ttl: '30s', jwks_refresh_interval: '2m' }).jwks_refresh_interval).toBe(120_000)
    })

    it('de-duplicates URLs and algorithms', () => {
      const c = parseConfig(jwt, { jwks_urls: [FILE_URL, FILE_URL], allowed_algorithms: ['RS256', 'RS256'] })
      expect(c.jwks_urls).toEqual([FILE_URL])
      expect(c.allowed_algorithms).toEqual(['RS256'])
    })

    it('explains why HS256 is refused', () => {
      const r = jwt.config.safeParse({ jwks_urls: [FILE_URL], allowed_algorithms: ['HS256'] })
      expect(r.success).toBe(false)
      expect(JSON.stringify(r.error?.issues)).toMatch(/symmetric/)
    })

    it('starts fetching the key sets when the rule is loaded', async () => {
      const p = freshPath('load')
      serveJwks(stub, p, jwksOf(kA))
      const b = build({ jwks_urls: [stub.url(p)] })
      await b.providers()[0]!.refresh()
      expect(stub.hitsFor(p)).toBe(1)
    })

    it('shares one provider per URL across rules', () => {
      const deps = isolatedDeps()
      live.push(deps)
      build({}, { deps })
      build({ target_audience: ['other'] }, { deps })
      build({ jwks_urls: [stub.url('/a'), stub.url('/b')] }, { deps })
      expect(jwksProviders(deps).map((p) => p.url)).toEqual([stub.url('/a'), stub.url('/b')])
    })

    it('keeps one provider across a reload that still names the URL, and stops it once none does', async () => {
      const p = freshPath('reload')
      serveJwks(stub, p, jwksOf(kA))
      const deps = isolatedDeps()
      live.push(deps)
      const config = { jwks_urls: [stub.url(p)], jwks_refresh_interval: '1s', jwks_max_staleness: '1h' }
      build(config, { deps })
      const [provider] = jwksProviders(deps)
      // What src/rules/reload.ts does: build with a copy of the deps, keep the caches it asked for.
      const used = new Set<string>()
      const tracking = new Proxy(deps.caches, {
        get: (target, prop) =>
          prop === 'create'
            ? (o: { name: string }) => (used.add(o.name), target.create(o as Parameters<typeof target.create>[0]))
            : (Reflect.get(target, prop, target) as (...a: unknown[]) => unknown).bind(target),
      })
      build(config, { deps: { ...deps, caches: tracking } })
      expect(jwksProviders(deps)).toEqual([provider])
      deps.caches.retainOnly(used)
      await new Promise((r) => setTimeout(r, 1100))
      expect(provider!.disposed).toBe(false)
      deps.caches.retainOnly([]) // a reload to rules without this URL
      await new Promise((r) => setTimeout(r, 1100))
      expect(provider!.disposed).toBe(true)
    })

    it('reads keys from a file:// URL', async () => {
      const b = build({ jwks_urls: [FILE_URL] })
      expect((await subjectOf(b.authn, await tokenA())).subject).toBe('alice')
    })
  })

  describe('responsibility', () => {
    it('is not responsible without a token', async () => {
      expect(await reasonOf(build().authn, undefined)).toBe('not_responsible')
    })

    it.each([
      { name: 'an opaque token', token: 'opaque-token-value' },
      { name: 'two segments', token: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0' },
      { name: 'four segments', token: 'a.b.c.d' },
      { name: 'an empty header', token: '.eyJzdWIiOiJhIn0.c2ln' },
      { name: 'an empty payload', token: 'eyJhbGciOiJSUzI1NiJ9..c2ln' },
      { name: 'only dots', token: '..' },
    ])('is not responsible for $name (another authenticator may take it)', async ({ token }) => {
      expect(await reasonOf(build().authn, token)).toBe('not_responsible')
    })

    it('is not responsible for other Authorization schemes', async () => {
      const b = build()
      expect(await reasonOf(b.authn, undefined, { headers: { authorization: `Basic ${b64u('a:b')}` } })).toBe('not_responsible')
    })

    it('never decrypts a JWE: a 5-segment PBES2 token with p2c 2^31-1 is not ours, answered at once (A32)', async () => {
      const b = build()
      await b.providers()[0]!.refresh()
      const header = b64u({ alg: 'PBES2-HS256+A128KW', enc: 'A128GCM', p2c: 2147483647, p2s: 'c2FsdHNhbHQ', zip: 'DEF' })
      const jwe = `${header}.${b64u(randomBytes(24))}.${b64u(randomBytes(12))}.${b64u(randomBytes(64))}.${b64u(randomBytes(16))}`
      const t = performance.now()
      expect(await reasonOf(b.authn, jwe)).toBe('not_responsible')
      expect(performance.now() - t).toBeLessThan(20)
      expect(b.selections()).toBe(0)
    })

    it('is responsible for an unsigned token (empty signature) and denies it (A22)', async () => {
      const token = `${b64u({ alg: 'none' })}.${b64u(nowClaims())}.`
      expect(await reasonOf(build().authn, token)).toBe('jwt_alg')
    })

    it.each([
      { name: '65 536 dots', value: `Bearer ${'.'.repeat(65_536)}` },
      { name: 'a 1 MB random token', value: `Bearer ${randomBytes(768 * 1024).toString('base64url')}` },
      { name: 'a 1 MB token of three segments', value: `Bearer ${'a'.repeat(400_000)}.${'b'.repeat(400_000)}.${'c'.repeat(300_000)}` },
    ])('rejects $name before parsing, fast (A31)', async ({ value }) => {
      const b = build()
      const req = makeRequest({ headers: { authorization: value } })
      const s = makeSession(req)
      const t = performance.now()
      let thrown: unknown
      try {
        await b.authn.authenticate(req, s, new AbortController().signal)
      } catch (err) {
        thrown = err
      }
      expect(performance.now() - t).toBeLessThan(20)
      expect(thrown).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'credential_too_long' })
      expect(b.selections()).toBe(0)
    })

    it('accepts a token just under MAX_TOKEN_LENGTH', async () => {
      let pad = MAX_TOKEN_LENGTH / 2
      let token = await tokenA({ pad: 'x'.repeat(pad) })
      while (token.length > MAX_TOKEN_LENGTH || token.length < MAX_TOKEN_LENGTH - 8) {
        pad += Math.trunc(((MAX_TOKEN_LENGTH - 4 - token.length) * 3) / 4)
        token = await tokenA({ pad: 'x'.repeat(pad) })
      }
      expect((await subjectOf(build().authn, token)).subject).toBe('alice')
    })

    it('rejects two Authorization bearer tokens as ambiguous (A48)', async () => {
      const t = await tokenA()
      const r = await attempt(build().authn, undefined, { headers: { authorization: `Bearer ${t}, Bearer ${t}` } })
      expect(r).toMatchObject({ kind: 'denied', reason: 'ambiguous_credential' })
    })

    describe('token_from', () => {
      it('reads a raw header', async () => {
        const b = build({ token_from: { header: 'X-Token' } })
        const token = await tokenA()
        expect(await reasonOf(b.authn, undefined, { headers: { 'x-token': token } })).toBe('ok')
        expect(await reasonOf(b.authn, token)).toBe('not_responsible')
      })

      it('reads a query parameter', async () => {
        const b = build({ token_from: { query_parameter: 'access_token' } })
        const token = await tokenA()
        expect(await reasonOf(b.authn, undefined, { query: `a=1&access_token=${token}` })).toBe('ok')
        expect(await reasonOf(b.authn, undefined, { query: `access_token=${token}&access_token=${token}` })).toBe('ambiguous_credential')
      })

      it('reads a cookie', async () => {
        const b = build({ token_from: { cookie: 'jwt' } })
        const token = await tokenA()
        expect(await reasonOf(b.authn, undefined, { headers: { cookie: `other=1; jwt=${token}` } })).toBe('ok')
        expect(await reasonOf(b.authn, undefined, { headers: { cookie: 'jwt=opaque' } })).toBe('not_responsible')
      })
    })
  })

  describe('success', () => {
    it('sets the subject from sub and extra from all claims, scopes normalised into scp', async () => {
      const claims = nowClaims({ scope: 'read write', roles: ['admin'], nested: { a: [1] } })
      const s = await subjectOf(build().authn, await signJwt(kA, claims))
      expect(s.subject).toBe('alice')
      const { scope: _scope, ...rest } = claims
      expect(s.extra).toEqual({ ...rest, scp: ['read', 'write'] })
      expect(s.header.size).toBe(0)
    })

    it.each([
      { name: 'scp (array)', claims: { scp: ['a', 'b'] }, scp: ['a', 'b'], gone: [] },
      { name: 'scp (string)', claims: { scp: 'a b' }, scp: ['a', 'b'], gone: [] },
      { name: 'scope (string)', claims: { scope: 'a b' }, scp: ['a', 'b'], gone: ['scope'] },
      { name: 'scopes (array)', claims: { scopes: ['a'] }, scp: ['a'], gone: ['scopes'] },
      { name: 'scp before scope', claims: { scp: ['x'], scope: 'y' }, scp: ['x'], gone: [] },
      { name: 'no scope at all', claims: {}, scp: [], gone: [] },
    ])('normalises $name like Oathkeeper', async ({ claims, scp, gone }) => {
      const s = await subjectOf(build().authn, await tokenA(claims))
      expect(s.extra['scp']).toEqual(scp)
      for (const k of gone) expect(s.extra).not.toHaveProperty(k)
    })

    it.each([
      { name: 'ES256', key: kAec },
      { name: 'PS256', key: kAps },
      { name: 'EdDSA', key: kAed },
    ])('verifies $name when allowed', async ({ key }) => {
      const b = build({ allowed_algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'] })
      expect((await subjectOf(b.authn, await signJwt(key, nowClaims()))).subject).toBe('alice')
      expect(await reasonOf(build().authn, await signJwt(key, nowClaims()))).toBe('jwt_alg')
    })

    it('gives each request its own extra; cached claims cannot be changed', async () => {
      const b = build()
      const token = await tokenA({ roles: ['user'] })
      const first = await subjectOf(b.authn, token)
      first.extra['injected'] = true
      expect(() => (first.extra['roles'] as string[]).push('admin')).toThrow()
      const second = await subjectOf(b.authn, token)
      expect(second.extra).not.toHaveProperty('injected')
      expect(second.extra['roles']).toEqual(['user'])
    })

    it('keeps a __proto__ claim as plain data', async () => {
      const token = signRaw(kA, { alg: 'RS256', kid: 'a1' }, `{"sub":"alice","iss":"${ISS_A}","aud":"api","exp":${seconds(Date.now()) + 60},"__proto__":{"admin":true}}`)
      const s = await subjectOf(build().authn, token)
      expect(Object.getPrototypeOf(s.extra)).toBe(Object.prototype)
      expect((s.extra as { admin?: unknown }).admin).toBeUndefined()
      expect(Object.hasOwn(s.extra, '__proto__')).toBe(true)
    })

    it('gives two tokens of the same sub, aud and iat their own roles (cache keyed by the whole token)', async () => {
      const b = build()
      const base = nowClaims()
      const user = await signJwt(kA, { ...base, roles: ['user'] })
      const admin = await signJwt(kA, { ...base, roles: ['admin'] })
      expect((await subjectOf(b.authn, user)).extra['roles']).toEqual(['user'])
      expect((await subjectOf(b.authn, admin)).extra['roles']).toEqual(['admin'])
      expect((await subjectOf(b.authn, user)).extra['roles']).toEqual(['user'])
    })
  })

  describe('algorithm and header attacks', () => {
    it.each(['none', 'None', 'NONE', 'nOnE'])('rejects alg %s with an empty signature (A22)', async (alg) => {
      const b = build()
      expect(await reasonOf(b.authn, `${b64u({ alg, kid: 'a1' })}.${b64u(nowClaims())}.`)).toBe('jwt_alg')
      expect(await reasonOf(b.authn, `${b64u({ alg })}.${b64u(nowClaims())}.${b64u('sig')}`)).toBe('jwt_alg')
    })

    it('rejects HS256 MAC-ed with the RSA public key, as PEM and as raw modulus (A23)', async () => {
      const { createHmac } = await import('node:crypto')
      const b = build()
      const pem = kA.publicKey.export({ format: 'pem', type: 'spki' }) as string
      const modulus = Buffer.from(kA.jwk['n'] as string, 'base64url')
      for (const secret of [pem, modulus]) {
        const input = `${b64u({ alg: 'HS256', kid: 'a1', typ: 'JWT' })}.${b64u(nowClaims())}`
        const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
        expect(await reasonOf(b.authn, token)).toBe('jwt_alg')
      }
      expect(b.selections()).toBe(0)
    })

    it('never uses embedded or remote keys: jwk, jku, x5u, x5c (A24)', async () => {
      const b = build()
      const embedded = { ...attacker.jwk }
      const x5u = trap.url('/cert.pem')
      const jku = trap.url('/jwks.json')
      const cases = [
        signRaw(attacker, { alg: 'RS256', jwk: embedded }, nowClaims()),
        signRaw(attacker, { alg: 'RS256', kid: 'attacker', jwk: embedded }, nowClaims()),
        signRaw(attacker, { alg: 'RS256', kid: 'a1', jwk: embedded }, nowClaims()),
        signRaw(attacker, { alg: 'RS256', kid: 'attacker', jku }, nowClaims()),
        signRaw(attacker, { alg: 'RS256', kid: 'a1', jku, x5u }, nowClaims()),
        signRaw(attacker, { alg: 'RS256', kid: 'a1', x5c: ['MIIB'] }, nowClaims()),
      ]
      const reasons = await Promise.all(cases.map((t) => reasonOf(b.authn, t)))
      // kid-less: JWKS A has exactly one RS256 key, which the attacker's signature does not match.
      expect(reasons).toEqual(['jwt_signature', 'jwt_key_unknown', 'jwt_signature', 'jwt_key_unknown', 'jwt_signature', 'jwt_signature'])
      expect(trap.hits).toBe(0)
    })

    it.each([
      { name: '__proto__', kid: '__proto__' },
      { name: 'constructor', kid: 'constructor' },
      { name: 'a path', kid: '../../../../dev/null' },
      { name: 'SQL', kid: "' OR '1'='1" },
      { name: 'a 1 KiB string', kid: 'k'.repeat(1024) },
    ])('rejects kid $name without an exception (A25)', async ({ kid }) => {
      expect(await reasonOf(build().authn, signRaw(attacker, { alg: 'RS256', kid }, nowClaims()))).toBe('jwt_key_unknown')
    })

    it.each([
      { name: 'an 8 KiB string', kid: 'k'.repeat(8192) },
      { name: 'a number', kid: 7 },
      { name: 'an object', kid: { a: 1 } },
    ])('rejects kid $name as malformed, without a refetch (A25)', async ({ kid }) => {
      const b = build()
      await b.providers()[0]!.refresh()
      expect(await reasonOf(b.authn, signRaw(attacker, { alg: 'RS256', kid }, nowClaims()))).toBe('jwt_malformed')
      expect(b.providers()[0]!.stats().onDemandFetches).toBe(0)
    })

    it.each([
      { name: 'crit ["x-foo"]', header: { crit: ['x-foo'], 'x-foo': 1 } },
      { name: 'crit ["b64"], b64 false', header: { crit: ['b64'], b64: false } },
      { name: 'crit ["b64"], b64 true', header: { crit: ['b64'], b64: true } },
      { name: 'crit []', header: { crit: [] } },
    ])('rejects a correctly signed token with $name (A26)', async ({ header }) => {
      const token = signRaw(kA, { alg: 'RS256', kid: 'a1', ...header }, nowClaims())
      expect(await reasonOf(build().authn, token)).toBe('jwt_crit')
    })

    it('rejects ES256 with an all-zero signature and with a DER signature (A27)', async () => {
      const b = build({ allowed_algorithms: ['ES256'] })
      const claims = nowClaims()
      const zero = signRaw(kAec, { alg: 'ES256', kid: 'a-ec' }, claims, { signature: b64u(Buffer.alloc(64)) })
      const der = signRaw(kAec, { alg: 'ES256', kid: 'a-ec' }, claims, { dsaEncoding: 'der' })
      const good = signRaw(kAec, { alg: 'ES256', kid: 'a-ec' }, claims)
      expect(await reasonOf(b.authn, zero)).toBe('jwt_signature')
      expect(await reasonOf(b.authn, der)).toBe('jwt_signature')
      expect(await reasonOf(b.authn, good)).toBe('ok')
    })

    it('rejects a signature made for another algorithm of the same key (PS256 bytes under RS256)', async () => {
      const token = signRaw({ ...kA, alg: 'PS256' }, { alg: 'RS256', kid: 'a1' }, nowClaims())
      expect(await reasonOf(build().authn, token)).toBe('jwt_signature')
    })

    it.each([
      { name: 'a header that is not base64url', token: () => `eyJ!!.${b64u(nowClaims())}.c2ln` },
      { name: 'a header that is not JSON', token: () => `${b64u('nope')}.${b64u(nowClaims())}.c2ln` },
      { name: 'a header that is an array', token: () => `${b64u(['RS256'])}.${b64u(nowClaims())}.c2ln` },
      { name: 'a payload that is not JSON', token: () => signRaw(kA, { alg: 'RS256', kid: 'a1' }, 'not json') },
      { name: 'a payload that is an array', token: () => signRaw(kA, { alg: 'RS256', kid: 'a1' }, '[1]') },
      { name: 'a payload that is not UTF-8', token: () => `${b64u({ alg: 'RS256', kid: 'a1' })}.${b64u(Buffer.from([0xff, 0xfe]))}.c2ln` },
    ])('rejects $name as malformed', async ({ token }) => {
      const r = await reasonOf(build().authn, token())
      expect(['jwt_malformed', 'jwt_signature']).toContain(r)
    })

    it('checks the signature before any claim: expired with a bad signature is jwt_signature (A30)', async () => {
      const expired = nowClaims({ exp: seconds(Date.now()) - 3600 })
      const token = signRaw(attacker, { alg: 'RS256', kid: 'a1' }, expired)
      expect(await reasonOf(build().authn, token)).toBe('jwt_signature')
      expect(await reasonOf(build().authn, signRaw(kA, { alg: 'RS256', kid: 'a1' }, expired))).toBe('jwt_expired')
    })
  })

  describe('keys and kid', () => {
    it('accepts a token without kid when exactly one key fits its alg', async () => {
      const b = build()
      expect(await reasonOf(b.authn, await signJwt({ ...kA, kid: undefined }, nowClaims()))).toBe('ok')
    })

    it('requires kid when several keys fit', async () => {
      const p = freshPath('two')
      serveJwks(stub, p, jwksOf(kA, kB))
      const b = build({ jwks_urls: [stub.url(p)] })
      expect(await reasonOf(b.authn, await signJwt({ ...kA, kid: undefined }, nowClaims()))).toBe('jwt_kid_required')
      expect(await reasonOf(b.authn, await signJwt(kA, nowClaims()))).toBe('ok')
    })

    it('accepts keys without use; ignores keys with use enc and keys restricted to another alg', async () => {
      const p = freshPath('use')
      const bare = makeKey('RS256', 'bare', { use: null, jwkAlg: null })
      const enc = makeKey('RS256', 'enc', { use: 'enc' })
      const rs384 = makeKey('RS256', 'rs384', { jwkAlg: 'RS384' })
      serveJwks(stub, p, jwksOf(bare, enc, rs384))
      const b = build({ jwks_urls: [stub.url(p)] })
      expect(await reasonOf(b.authn, await signJwt(bare, nowClaims()))).toBe('ok')
      expect(await reasonOf(b.authn, await signJwt(enc, nowClaims()))).toBe('jwt_key_unknown')
      expect(await reasonOf(b.authn, await signJwt(rs384, nowClaims()))).toBe('jwt_key_unknown')
    })

    it('ignores oct keys in a JWKS: HS256 with the JWKS secret is refused (A34)', async () => {
      const { createHmac } = await import('node:crypto')
      const p = freshPath('oct')
      serveJwks(stub, p, { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'k1' }, kA.jwk] })
      const b = build({ jwks_urls: [stub.url(p)] })
      for (const alg of ['HS256', 'RS256']) {
        const input = `${b64u({ alg, kid: 'k1' })}.${b64u(nowClaims())}`
        const token = `${input}.${createHmac('sha256', 'secret').update(input).digest('base64url')}`
        expect(await reasonOf(b.authn, token)).toBe(alg === 'HS256' ? 'jwt_alg' : 'jwt_key_unknown')
      }
    })

    it("rejects a token signed by issuer B claiming issuer A, and B's key reusing A's kid (A29)", async () => {
      const onlyA = build()
      const claims = nowClaims({ iss: ISS_A })
      expect(await reasonOf(onlyA.authn, await signJwt(kB, claims))).toBe('jwt_key_unknown')
      expect(await reasonOf(onlyA.authn, await signJwt(kBa1, claims))).toBe('jwt_signature')
      // Both sets trusted: kid a1 resolves to the first set's key (A's), so B's signature fails.
      const both = build({ jwks_urls: [stub.url('/a'), stub.url('/b')], trusted_issuers: [ISS_A] })
      expect(await reasonOf(both.authn, await signJwt(kBa1, claims))).toBe('jwt_signature')
      // B's own key with B's own kid verifies, but the issuer is not trusted.
      expect(await reasonOf(both.authn, await signJwt(kB, claims))).toBe('ok')
      expect(await reasonOf(both.authn, await signJwt(kB, nowClaims({ iss: ISS_B })))).toBe('jwt_issuer')
    })

    it('picks up a rotated-in key after one refetch, and drops a rotated-out key after a refresh', async () => {
      const p = freshPath('rotate')
      const k1 = makeKey('RS256', 'r1')
      const k2 = makeKey('RS256', 'r2')
      serveJwks(stub, p, jwksOf(k1))
      const b = build({ jwks_urls: [stub.url(p)] })
      const old = await signJwt(k1, nowClaims())
      expect(await reasonOf(b.authn, old)).toBe('ok')
      expect(stub.hitsFor(p)).toBe(1)
      serveJwks(stub, p, jwksOf(k1, k2))
      expect(await reasonOf(b.authn, await signJwt(k2, nowClaims()))).toBe('ok')
      expect(stub.hitsFor(p)).toBe(2)
      serveJwks(stub, p, jwksOf(k2))
      expect(await reasonOf(b.authn, old)).toBe('ok') // cached, and k1 still in the current set
      await b.providers()[0]!.refresh()
      expect(await reasonOf(b.authn, old)).toBe('jwt_key_unknown')
      expect(await reasonOf(b.authn, await signJwt(k1, nowClaims({ jti: 'fresh' })))).toBe('jwt_key_unknown')
    })

    it('rate-limits refetches for unknown kids: 10 000 random kids within a second hit the JWKS at most twice (A35)', async () => {
      const p = freshPath('flood')
      serveJwks(stub, p, jwksOf(kA))
      const b = build({ jwks_urls: [stub.url(p)] })
      const payload = b64u(nowClaims())
      await b.providers()[0]!.refresh()
      const tokens = Array.from({ length: 10_000 }, () => `${b64u({ alg: 'RS256', kid: randomBytes(12).toString('hex') })}.${payload}.c2ln`)
      const t = performance.now()
      const reasons = new Map<string, number>()
      await Promise.all(
        tokens.map(async (token) => {
          const req = makeRequest({ headers: { authorization: `Bearer ${token}` } })
          let reason = 'ok'
          try {
            await b.authn.authenticate(req, makeSession(req), new AbortController().signal)
          } catch (err) {
            reason = (err as PipelineError).reason
          }
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
        }),
      )
      // A hang detector, not a benchmark (test files run in parallel).
      expect(performance.now() - t).toBeLessThan(10_000)
      expect(Object.fromEntries(reasons)).toEqual({ jwt_key_unknown: 10_000 })
      expect(stub.hitsFor(p)).toBeLessThanOrEqual(2)
    })
  })

  describe('claims', () => {
    it.each([
      { name: 'no exp', claims: { exp: undefined }, reason: 'jwt_exp_missing' },
      { name: 'exp as a string', claims: { exp: '9999999999' }, reason: 'jwt_claims' },
      { name: 'exp null', claims: { exp: null }, reason: 'jwt_claims' },
      { name: 'exp 5 s in the past', claims: { exp: seconds(Date.now()) - 5 }, reason: 'jwt_expired' },
      { name: 'nbf 120 s in the future', claims: { nbf: seconds(Date.now()) + 120 }, reason: 'jwt_not_yet_valid' },
      { name: 'iat 120 s in the future', claims: { iat: seconds(Date.now()) + 120 }, reason: 'jwt_not_yet_valid' },
      { name: 'iat as a string', claims: { iat: 'now' }, reason: 'jwt_claims' },
      { name: 'no sub', claims: { sub: undefined }, reason: 'jwt_subject' },
      { name: 'an empty sub', claims: { sub: '' }, reason: 'jwt_subject' },
      { name: 'a numeric sub', claims: { sub: 42 }, reason: 'jwt_subject' },
      { name: 'aud [["api"]]', claims: { aud: [['api']] }, reason: 'jwt_claims' },
      { name: 'aud {"0":"api"}', claims: { aud: { 0: 'api' } }, reason: 'jwt_claims' },
      { name: 'aud 123', claims: { aud: 123 }, reason: 'jwt_claims' },
      { name: 'a numeric iss', claims: { iss: 1 }, reason: 'jwt_claims' },
      { name: 'no iss with trusted_issuers', claims: { iss: undefined }, reason: 'jwt_issuer' },
      { name: 'another iss', claims: { iss: ISS_B }, reason: 'jwt_issuer' },
      { name: 'no aud', claims: { aud: undefined }, reason: 'jwt_audience' },
      { name: 'another aud', claims: { aud: 'web' }, reason: 'jwt_audience' },
    ])('rejects $name (A28)', async ({ claims, reason }) => {
      const c: Record<string, unknown> = nowClaims()
      for (const [k, v] of Object.entries(claims)) {
        if (v === undefined) delete c[k]
        else c[k] = v
      }
      expect(await reasonOf(build().authn, signRaw(kA, { alg: 'RS256', kid: 'a1' }, c))).toBe(reason)
    })

    it('rejects non-finite exp (1e400 parses to Infinity) and non-finite nbf', async () => {
      const b = build()
      for (const payload of [
        `{"sub":"a","iss":"${ISS_A}","aud":"api","exp":1e400}`,
        `{"sub":"a","iss":"${ISS_A}","aud":"api","exp":${seconds(Date.now()) + 60},"nbf":-1e400}`,
      ]) {
        expect(await reasonOf(b.authn, signRaw(kA, { alg: 'RS256', kid: 'a1' }, payload))).toBe('jwt_claims')
      }
    })

    it('rejects odd aud shapes even when no audience is required', async () => {
      const b = build({ target_audience: [] })
      expect(await reasonOf(b.authn, await tokenA({ aud: [['api']] }))).toBe('jwt_claims')
      expect(await reasonOf(b.authn, await tokenA({ aud: 'anything' }))).toBe('ok')
    })

    it('accepts a token without exp when require_exp is false', async () => {
      const c = nowClaims()
      delete c['exp']
      expect(await reasonOf(build({ require_exp: false }).authn, await signJwt(kA, c))).toBe('ok')
      expect(await reasonOf(build({ require_exp: false, max_token_lifetime: '1h' }).authn, await signJwt(kA, c))).toBe('jwt_exp_missing')
    })

    it('applies leeway to exp, nbf and iat, and nothing more', async () => {
      const clock = fakeClock()
      const b = build({ leeway: '60s' }, { now: clock })
      const t = seconds(clock())
      const at = (extra: Record<string, unknown>): Promise<string> => signJwt(kA, { ...claimsAt(clock()), ...extra })
      expect(await reasonOf(b.authn, await at({ exp: t - 30 }))).toBe('ok')
      expect(await reasonOf(b.authn, await at({ exp: t - 60 }))).toBe('jwt_expired')
      expect(await reasonOf(b.authn, await at({ nbf: t + 59 }))).toBe('ok')
      expect(await reasonOf(b.authn, await at({ nbf: t + 120 }))).toBe('jwt_not_yet_valid')
      expect(await reasonOf(b.authn, await at({ iat: t + 61 }))).toBe('jwt_not_yet_valid')
    })

    it('caps the lifetime with max_token_lifetime', async () => {
      const b = build({ max_token_lifetime: '1h' })
      const t = seconds(Date.now())
      expect(await reasonOf(b.authn, await tokenA({ exp: t + 3500 }))).toBe('ok')
      expect(await reasonOf(b.authn, await tokenA({ exp: t + 7200 }))).toBe('jwt_lifetime')
    })

    it('requires every target_audience value (AND)', async () => {
      const b = build({ target_audience: ['api', 'billing'] })
      expect(await reasonOf(b.authn, await tokenA({ aud: ['api'] }))).toBe('jwt_audience')
      expect(await reasonOf(b.authn, await tokenA({ aud: ['billing', 'api', 'x'] }))).toBe('ok')
      expect(await reasonOf(build({ target_audience: ['api'] }).authn, await tokenA({ aud: 'api' }))).toBe('ok')
    })

    it('accepts any trusted issuer (OR), and any issuer when none is configured', async () => {
      const b = build({ trusted_issuers: [ISS_B, ISS_A] })
      expect(await reasonOf(b.authn, await tokenA({ iss: ISS_A }))).toBe('ok')
      const any = build({ trusted_issuers: [] })
      expect(await reasonOf(any.authn, await tokenA({ iss: 'https://whoever' }))).toBe('ok')
      const c = nowClaims()
      delete c['iss']
      expect(await reasonOf(any.authn, await signJwt(kA, c))).toBe('ok')
    })

    describe('required_scope with each scope_strategy', () => {
      const cases = [
        { strategy: 'exact', granted: 'read write', required: ['read'], ok: true },
        { strategy: 'exact', granted: 'read', required: ['read', 'write'], ok: false },
        { strategy: 'exact', granted: 'foo', required: ['foo.bar'], ok: false },
        { strategy: 'hierarchic', granted: 'foo', required: ['foo.bar.baz'], ok: true },
        { strategy: 'hierarchic', granted: 'foo.bar', required: ['foo'], ok: false },
        { strategy: 'wildcard', granted: 'foo.*', required: ['foo.bar'], ok: true },
        { strategy: 'wildcard', granted: 'foo.*', required: ['foo'], ok: false },
        { strategy: 'wildcard', granted: 'foo.*.baz', required: ['foo.bar.baz'], ok: true },
      ]
      it.each(cases)('$strategy: granted "$granted", required $required → $ok', async ({ strategy, granted, required, ok }) => {
        const b = build({ scope_strategy: strategy, required_scope: required })
        expect(await reasonOf(b.authn, await tokenA({ scope: granted }))).toBe(ok ? 'ok' : 'jwt_scope')
      })

      it('reads scp arrays too, and treats a missing scope as none granted', async () => {
        const b = build({ scope_strategy: 'exact', required_scope: ['read'] })
        expect(await reasonOf(b.authn, await tokenA({ scp: ['read'] }))).toBe('ok')
        expect(await reasonOf(b.authn, await tokenA())).toBe('jwt_scope')
      })
    })
  })

  describe('JWKS outages', () => {
    it('keeps verifying known kids after the JWKS starts failing, until max staleness, then 503 (A33)', async () => {
      const clock = fakeClock()
      const p = freshPath('stale')
      serveJwks(stub, p, jwksOf(kA))
      const b = build({ jwks_urls: [stub.url(p)], jwks_max_staleness: '1h', cache: { enabled: false } }, { now: clock })
      const at = (): Promise<string> => signJwt(kA, claimsAt(clock()))
      expect(await reasonOf(b.authn, await at())).toBe('ok')
      for (const mode of [{ kind: '5xx', status: 500 } as const, 'html' as const, { kind: 'json', body: { keys: [] } } as const]) {
        stub.setMode(p, mode)
        await b.providers()[0]!.refresh()
        clock.advance(10 * 60_000)
        expect(await reasonOf(b.authn, await at())).toBe('ok')
        expect(await reasonOf(b.authn, await signJwt(kB, claimsAt(clock())))).toBe('jwt_key_unknown')
      }
      clock.advance(31 * 60_000)
      const r = await attempt(b.authn, await at())
      expect(r).toMatchObject({ kind: 'denied', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'jwks_unavailable' })
      serveJwks(stub, p, jwksOf(kA))
      clock.advance(60_000)
      expect(await reasonOf(b.authn, await at())).toBe('ok')
    })

    it('answers 503 when the JWKS is down at start, without a fetch per request', async () => {
      const p = freshPath('down')
      stub.setMode(p, { kind: '5xx', status: 500 })
      const b = build({ jwks_urls: [stub.url(p)] })
      await b.providers()[0]!.refresh()
      const token = await tokenA()
      const reasons = await Promise.all(Array.from({ length: 200 }, () => attempt(b.authn, token)))
      for (const r of reasons) expect(r).toMatchObject({ kind: 'denied', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'jwks_unavailable' })
      expect(stub.hitsFor(p)).toBeLessThanOrEqual(2)
    })

    it('waits at most jwks_max_wait for a hanging JWKS, then 503', async () => {
      const p = freshPath('hang')
      stub.setMode(p, 'hang')
      const b = build({ jwks_urls: [stub.url(p)], jwks_max_wait: '100ms', jwks_fetch_timeout: '5s' })
      const t = performance.now()
      expect(await reasonOf(b.authn, await tokenA())).toBe('jwks_unavailable')
      expect(performance.now() - t).toBeLessThan(400)
    })

    it('waits for the first fetch when the first request races it', async () => {
      const p = freshPath('first')
      stub.setMode(p, { kind: 'slow', delayMs: 100, then: { kind: 'json', body: jwksOf(kA) } })
      const b = build({ jwks_urls: [stub.url(p)] })
      expect(await reasonOf(b.authn, await tokenA())).toBe('ok')
      expect(stub.hitsFor(p)).toBe(1)
    })

    it('stops waiting when the Check is cancelled', async () => {
      const p = freshPath('cancel')
      stub.setMode(p, 'hang')
      const b = build({ jwks_urls: [stub.url(p)], jwks_max_wait: '5s', jwks_fetch_timeout: '5s' })
      const ac = new AbortController()
      setTimeout(() => ac.abort(), 50)
      const t = performance.now()
      const r = await attempt(b.authn, await tokenA(), { signal: ac.signal })
      expect(performance.now() - t).toBeLessThan(500)
      expect(r).toMatchObject({ kind: 'denied', code: 'ERR_UPSTREAM_UNAVAILABLE' })
    })

    it('with two JWKS, a key in the healthy one verifies while the other is down', async () => {
      const p = freshPath('half')
      stub.setMode(p, { kind: '5xx', status: 500 })
      const b = build({ jwks_urls: [stub.url(p), stub.url('/a')] })
      expect(await reasonOf(b.authn, await tokenA())).toBe('ok')
      expect(await reasonOf(b.authn, signRaw(attacker, { alg: 'RS256', kid: 'nowhere' }, nowClaims()))).toBe('jwks_unavailable')
    })
  })

  describe('verified-token cache', () => {
    it('does no signature work for the same token the second time', async () => {
      const b = build()
      const token = await tokenA()
      expect(await reasonOf(b.authn, token)).toBe('ok')
      const selections = b.selections()
      expect(selections).toBe(1)
      for (let i = 0; i < 5; i++) expect(await reasonOf(b.authn, token)).toBe('ok')
      expect(b.selections()).toBe(selections)
      const stats = jwtCacheStats(b.deps)
      expect(stats).toMatchObject({ hits: 5, loads: 1 })
    })

    it('answers a cache hit synchronously (no promise), and a cached failure by a synchronous throw', async () => {
      const b = build()
      const token = await tokenA()
      expect(await reasonOf(b.authn, token)).toBe('ok')
      const req = makeRequest({ headers: { authorization: `Bearer ${token}` } })
      const s = makeSession(req)
      const r = b.authn.authenticate(req, s, new AbortController().signal)
      expect(r === undefined || typeof (r as { then?: unknown }).then !== 'function').toBe(true)
      expect(s.subject).toBe((await subjectOf(b.authn, token)).subject)
      expect(s.subject).not.toBe('')
      const bad = signRaw(attacker, { alg: 'RS256', kid: 'a1' }, nowClaims())
      expect(await reasonOf(b.authn, bad)).toBe('jwt_signature')
      const badReq = makeRequest({ headers: { authorization: `Bearer ${bad}` } })
      expect(() => b.authn.authenticate(badReq, makeSession(badReq), new AbortController().signal)).toThrow(expect.objectContaining({ reason: 'jwt_signature' }))
    })

    it('verifies every time with the cache disabled', async () => {
      const b = build({ cache: { enabled: false } })
      const token = await tokenA()
      for (let i = 0; i < 3; i++) expect(await reasonOf(b.authn, token)).toBe('ok')
      expect(b.selections()).toBe(3)
      expect(jwtCaches(b.deps)).toEqual([])
    })

    it('keeps an entry no longer than exp, and rejects the token once it expired (fake clock)', async () => {
      const clock = fakeClock()
      const b = build({ cache: { ttl: '1h' } }, { now: clock })
      const token = await signJwt(kA, claimsAt(clock(), { exp: seconds(clock()) + 2 }))
      expect(await reasonOf(b.authn, token)).toBe('ok')
      clock.advance(1000)
      expect(await reasonOf(b.authn, token)).toBe('ok')
      expect(b.selections()).toBe(1)
      clock.advance(1500)
      expect(await reasonOf(b.authn, token)).toBe('jwt_expired')
      const stats = jwtCacheStats(b.deps)
      expect(stats.hits).toBe(1)
      expect(stats.entries).toBe(0)
    })

    it('re-applies audience, scope and issuer checks on a hit (CVE-2021-32701)', async () => {
      const deps = isolatedDeps()
      live.push(deps)
      const open = build({ target_audience: [], trusted_issuers: [] }, { deps })
      const billing = build({ target_audience: ['billing'] }, { deps })
      const write = build({ target_audience: [], scope_strategy: 'exact', required_scope: ['write'] }, { deps })
      const issuerB = build({ target_audience: [], trusted_issuers: [ISS_B] }, { deps })
      const token = await tokenA({ aud: ['other'], scope: 'read' })
      expect(await reasonOf(open.authn, token)).toBe('ok')
      const selections = open.selections()
      expect(await reasonOf(billing.authn, token)).toBe('jwt_audience')
      expect(await reasonOf(write.authn, token)).toBe('jwt_scope')
      expect(await reasonOf(issuerB.authn, token)).toBe('jwt_issuer')
      expect(open.selections()).toBe(selections) // all three were cache hits
      expect(jwtCaches(deps)).toHaveLength(1)
    })

    it('does not share entries between different key sets', async () => {
      const deps = isolatedDeps()
      live.push(deps)
      const a = build({}, { deps })
      const b = build({ jwks_urls: [stub.url('/b')] }, { deps })
      const token = await tokenA()
      expect(await reasonOf(a.authn, token)).toBe('ok')
      expect(await reasonOf(b.authn, token)).toBe('jwt_signature') // B's a1 is another key
      expect(jwtCaches(deps)).toHaveLength(2)
    })

    it('caches definitive failures briefly: a bad signature repeated costs one verification', async () => {
      const b = build()
      const token = signRaw(attacker, { alg: 'RS256', kid: 'a1' }, nowClaims())
      for (let i = 0; i < 5; i++) expect(await reasonOf(b.authn, token)).toBe('jwt_signature')
      expect(b.selections()).toBe(1)
      expect(jwtCacheStats(b.deps)).toMatchObject({ negativeHits: 4 })
    })

    it('never caches an unknown kid or a JWKS outage', async () => {
      const clock = fakeClock()
      const p = freshPath('nocache')
      serveJwks(stub, p, jwksOf(kA))
      const b = build({ jwks_urls: [stub.url(p)], jwks_unknown_kid_cooldown: '1s' }, { now: clock })
      const k9 = makeKey('RS256', 'k9')
      const token = await signJwt(k9, claimsAt(clock()))
      expect(await reasonOf(b.authn, token)).toBe('jwt_key_unknown')
      serveJwks(stub, p, jwksOf(kA, k9))
      clock.advance(2000)
      expect(await reasonOf(b.authn, token)).toBe('ok')
    })

    it('stops using a hit whose key set went stale past max staleness (503)', async () => {
      const clock = fakeClock()
      const p = freshPath('stalehit')
      serveJwks(stub, p, jwksOf(kA))
      const b = build({ jwks_urls: [stub.url(p)], jwks_max_staleness: '1h', cache: { ttl: '3h' } }, { now: clock })
      const token = await signJwt(kA, claimsAt(clock(), { exp: seconds(clock()) + 4 * 3600 }))
      expect(await reasonOf(b.authn, token)).toBe('ok')
      stub.setMode(p, { kind: '5xx', status: 500 })
      clock.advance(2 * 3600_000)
      expect(await reasonOf(b.authn, token)).toBe('jwks_unavailable')
    })
  })
})

describe('jwt through the real gRPC server', () => {
  it('allows a valid token with X-User from the subject, denies expired/forged with 401 and a down JWKS with 503', async () => {
    const p = freshPath('it')
    const down = freshPath('it-down')
    serveJwks(stub, p, jwksOf(kA))
    stub.setMode(down, { kind: '5xx', status: 500 })
    const H = 'https://api.example.com'
    const rule = (id: string, path: string, config: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      id,
      match: { url: `${H}/${path}/<.*>`, methods: ['GET'] },
      authenticators: [{ handler: 'jwt', config }],
      authorizer: { handler: 'allow' },
      mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}', 'X-Roles': '{{ print .Extra.roles }}' } } }],
      ...extra,
    })
    const s = await startWith(
      {
        ...ALL_HANDLERS,
        authenticators: {
          ...ALL_HANDLERS.authenticators,
          jwt: { enabled: true, config: { jwks_urls: [stub.url(p)], trusted_issuers: [ISS_A], jwks_ttl: '30s', jwks_max_wait: '1s' } },
        },
      },
      [
        rule('api', 'api', { target_audience: ['api'] }),
        rule('www', 'www', {}, { errors: [{ handler: 'www_authenticate', config: { realm: 'api' } }] }),
        rule('down', 'down', { jwks_urls: [stub.url(down)] }),
      ],
    )
    const c = checkClient(s.port)
    try {
      const valid = await signJwt(kA, nowClaims({ roles: 'admin' }))
      const ok = await c.check(httpRequest({ path: '/api/x', headers: { authorization: `Bearer ${valid}`, 'x-user': 'mallory' } }))
      expect(ok.status?.code).toBe(0)
      expect(headerOf(ok, 'x-user')).toBe('alice')
      expect(headerOf(ok, 'x-roles')).toBe('admin')

      const expired = await signJwt(kA, nowClaims({ exp: seconds(Date.now()) - 10 }))
      const e = await c.check(httpRequest({ path: '/api/x', headers: { authorization: `Bearer ${expired}` } }))
      expect(e.status?.code).toBe(16)
      expect(e.deniedResponse?.status?.code).toBe(401)
      expect(JSON.parse(e.deniedResponse!.body)).toMatchObject({ error: { code: 401 } })
      expect(e.deniedResponse!.body).not.toContain(expired.split('.')[1]!)

      const forged = signRaw(attacker, { alg: 'RS256', kid: 'a1' }, nowClaims())
      const f = await c.check(httpRequest({ path: '/www/x', headers: { authorization: `Bearer ${forged}` } }))
      expect(f.deniedResponse?.status?.code).toBe(401)
      expect(headerOf(f, 'www-authenticate')).toMatch(/^Basic realm=/)

      const none = await c.check(httpRequest({ path: '/api/x' }))
      expect(none.deniedResponse?.status?.code).toBe(401)

      const d = await c.check(httpRequest({ path: '/down/x', headers: { authorization: `Bearer ${valid}` } }))
      expect(d.status?.code).toBe(14)
      expect(d.deniedResponse?.status?.code).toBe(503)
      expect(s.logs.join('\n')).not.toContain(valid.split('.')[2]!)
    } finally {
      c.close()
      disposeJwksProviders(s.app.deps)
      await s.stop()
    }
  })
})
