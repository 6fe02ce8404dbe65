/**
 * `oauth2_client_credentials` against a real HTTP token endpoint (test/helpers/stub-server.ts):
 * Basic parsing, the grant request, Oathkeeper's status table, positive and negative caching with
 * a fake clock, cache-key completeness, coalescing, and that the client secret never reaches a log
 * line, an error or a cache key.
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CacheBudget } from '../../../../src/cache/budget.js'
import { CacheRegistry } from '../../../../src/cache/registry.js'
import { HttpClient } from '../../../../src/http/client.js'
import { OutboundConfigSchema } from '../../../../src/http/config.js'
import { OAuth2ClientCredentialsConfig, oauth2ClientCredentials } from '../../../../src/pipeline/authn/oauth2-client-credentials.js'
import type { PipelineError } from '../../../../src/pipeline/errors.js'
import { NOT_RESPONSIBLE, type Authenticator, type HandlerDeps } from '../../../../src/pipeline/types.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { expectSafePipelineError } from '../../../contract/safety.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'
import { startStub, type RecordedRequest, type Stub, type StubMode } from '../../../helpers/stub-server.js'

const T0 = 1_700_000_000_000
const SECRET = 'correct-horse-battery-staple'

let stub: Stub
beforeAll(async () => {
  stub = await startStub()
})
afterAll(async () => {
  await stub.close()
})

function manualClock(start = T0) {
  let t = start
  return {
    now: (): number => t,
    advance(ms: number): void {
      t += ms
    },
  }
}

const opened: HandlerDeps[] = []
afterEach(async () => {
  for (const d of opened.splice(0)) {
    d.caches.dispose()
    await d.http.close()
  }
})

/** Own caches, own pools, no outbound retries (hit counters count calls), logs captured at trace. */
function makeDeps(o: { now?: () => number; timeout?: string } = {}) {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'))
      cb()
    },
  })
  const deps: HandlerDeps = {
    log: pino({ level: 'trace' }, stream),
    caches: new CacheRegistry(new CacheBudget(256 * 1024 * 1024), o.now === undefined ? {} : { now: o.now }),
    http: new HttpClient(OutboundConfigSchema.parse({ timeout: o.timeout ?? '1s', max_pending_per_origin: 4096, retry: { max_retries: 0 }, breaker: { failure_threshold: 1_000_000 } })),
    now: o.now ?? Date.now,
  }
  opened.push(deps)
  return { deps, lines }
}

function make(config: Record<string, unknown>, deps: HandlerDeps): Authenticator {
  return oauth2ClientCredentials.create(OAuth2ClientCredentialsConfig.parse(config), deps)
}

let seq = 0
const freshPath = (): string => `/token-${++seq}`

/** Client id and secret as the token endpoint decodes them from its Basic header. */
function clientOf(req: RecordedRequest): { id: string; secret: string } {
  const raw = Buffer.from(String(req.headers['authorization']).replace(/^Basic /, ''), 'base64').toString('utf8')
  const colon = raw.indexOf(':')
  const dec = (s: string): string => decodeURIComponent(s.replaceAll('+', ' '))
  return { id: dec(raw.slice(0, colon)), secret: dec(raw.slice(colon + 1)) }
}

/** A token endpoint knowing `clients` (id → secret); answers RFC 6749 style. */
function tokenEndpoint(path: string, clients: Record<string, string>, o: { expiresIn?: number; delayMs?: number } = {}): string {
  stub.setMode(path, {
    kind: 'custom',
    handle(req, res) {
      const { id, secret } = clientOf(req)
      const ok = Object.hasOwn(clients, id) && clients[id] === secret
      const send = (): void => {
        if (!ok) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}')
          return
        }
        const body = { access_token: `at-for-${id}`, token_type: 'bearer', ...(o.expiresIn === undefined ? {} : { expires_in: o.expiresIn }) }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
      }
      if (o.delayMs !== undefined) setTimeout(send, o.delayMs)
      else send()
    },
  })
  return stub.url(path)
}

const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

async function run(a: Authenticator, authorization: string | undefined, signal: AbortSignal = NO_ABORT) {
  const req = makeRequest({ headers: authorization === undefined ? {} : { authorization } })
  const s = makeSession(req)
  try {
    const out = await a.authenticate(req, s, signal)
    return { ok: true as const, out, s }
  } catch (err) {
    expectSafePipelineError(err, 'oauth2_client_credentials')
    expect(err.message).not.toContain(SECRET)
    return { ok: false as const, err, s }
  }
}

async function deny(a: Authenticator, authorization: string): Promise<PipelineError> {
  const r = await run(a, authorization)
  if (r.ok) throw new Error(`expected a denial, got ${r.out === NOT_RESPONSIBLE ? 'NOT_RESPONSIBLE' : `success as ${r.s.subject}`}`)
  expect(r.s.subject).toBe('')
  return r.err
}

async function allow(a: Authenticator, authorization: string): Promise<string> {
  const r = await run(a, authorization)
  if (!r.ok) throw new Error(`expected success, got ${r.err.code} ${r.err.reason}`)
  expect(r.out).toBeUndefined()
  return r.s.subject
}

const CACHED = { enabled: true, ttl: '5m', negative_ttl: '10s' }

describe('authn oauth2_client_credentials', () => {
  runAuthenticatorContract({
    factory: oauth2ClientCredentials,
    validConfigs: [
      { token_url: 'http://127.0.0.1:9/oauth2/token' },
      { token_url: 'https://idp.example.com/oauth2/token', required_scope: ['a', 'b.c'], retry: { max_delay: '100ms', give_up_after: '1s' }, cache: { enabled: true, ttl: '1m', max_tokens: 500 } },
      { token_url: 'http://127.0.0.1:9/t', cache: { enabled: true, max_entries: 10, negative_ttl: '0s' } },
    ],
    invalidConfigs: [
      { name: 'no token_url', config: {}, path: ['token_url'] },
      { name: 'a relative token_url', config: { token_url: '/token' }, path: ['token_url'] },
      { name: 'a token_url with userinfo', config: { token_url: 'https://id:secret@idp/token' }, path: ['token_url'] },
      { name: 'a token_url with a fragment', config: { token_url: 'https://idp/token#x' }, path: ['token_url'] },
      { name: 'a scope with a space', config: { token_url: 'http://a/t', required_scope: ['a b'] }, path: ['required_scope', 0] },
      { name: 'both max_tokens and max_entries', config: { token_url: 'http://a/t', cache: { max_tokens: 1, max_entries: 2 } }, path: ['cache', 'max_tokens'] },
      { name: 'a non-integer max_tokens', config: { token_url: 'http://a/t', cache: { max_tokens: 'many' } }, path: ['cache', 'max_tokens'] },
      { name: 'an unknown cache key', config: { token_url: 'http://a/t', cache: { size: 1 } }, path: ['cache'] },
      { name: 'an invalid retry duration', config: { token_url: 'http://a/t', retry: { max_delay: 'fast' } }, path: ['retry', 'max_delay'] },
    ],
  })

  it('maps Oathkeeper\'s cache.max_tokens onto max_entries', () => {
    const cfg = OAuth2ClientCredentialsConfig.parse({ token_url: 'http://a/t', cache: { max_tokens: 1000 } })
    expect(cfg.cache.max_entries).toBe(1000)
    expect(cfg.cache.enabled).toBe(false)
  })

  describe('responsibility and Basic parsing', () => {
    it.each([
      { name: 'no Authorization header', authorization: undefined },
      { name: 'a Bearer token', authorization: 'Bearer abc' },
      { name: 'an empty Authorization header', authorization: '' },
      { name: 'another scheme starting like Basic', authorization: 'Basically abc' },
    ])('is not responsible for $name, and calls nothing', async ({ authorization }) => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, {}) }, makeDeps().deps)
      const r = await run(a, authorization)
      expect(r.ok && r.out).toBe(NOT_RESPONSIBLE)
      expect(r.s.subject).toBe('')
      expect(stub.hitsFor(path)).toBe(0)
    })

    it.each([
      { name: 'invalid base64', authorization: 'Basic !!!!' },
      { name: 'unpadded base64', authorization: `Basic ${Buffer.from('ab:c').toString('base64').replace(/=+$/, '')}` },
      { name: 'no colon', authorization: `Basic ${Buffer.from('client-only').toString('base64')}` },
      { name: 'an empty client id', authorization: basic('', 'secret') },
      { name: 'an invalid percent escape', authorization: basic('client%zz', 'secret') },
      { name: 'invalid UTF-8', authorization: `Basic ${Buffer.from([0x63, 0x3a, 0xc3, 0x28]).toString('base64')}` },
      { name: 'two credentials merged into one header (A48)', authorization: `${basic('a', 'b')}, ${basic('c', 'd')}` },
      { name: 'an over-long value', authorization: `Basic ${'QUFB'.repeat(5000)}` },
    ])('denies 401 malformed_basic_credentials for $name, and calls nothing', async ({ authorization }) => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, {}) }, makeDeps().deps)
      expect(await deny(a, authorization)).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'malformed_basic_credentials' })
      expect(stub.hitsFor(path)).toBe(0)
    })

    it('accepts the scheme in any case, and query-unescapes user and password (Oathkeeper)', async () => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, { 'my client/1': 'p@ss word:%' }) }, makeDeps().deps)
      const encoded = Buffer.from('my+client%2F1:p%40ss+word%3A%25').toString('base64')
      expect(await allow(a, `bAsIc ${encoded}`)).toBe('my client/1')
      expect(clientOf(stub.requests.at(-1)!)).toEqual({ id: 'my client/1', secret: 'p@ss word:%' })
    })
  })

  describe('the grant', () => {
    it('POSTs grant_type=client_credentials with the required scopes, credentials in a Basic header', async () => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }), required_scope: ['read', 'write'] }, makeDeps().deps)
      expect(await allow(a, basic('app', SECRET))).toBe('app')
      const r = stub.requests.at(-1)!
      expect(r.method).toBe('POST')
      expect(r.headers['content-type']).toBe('application/x-www-form-urlencoded')
      expect(r.headers['accept']).toBe('application/json')
      expect(Object.fromEntries(new URLSearchParams(r.body))).toEqual({ grant_type: 'client_credentials', scope: 'read write' })
      expect(r.body).not.toContain(SECRET)
    })

    it('sends no scope parameter without required_scope', async () => {
      const path = freshPath()
      await allow(make({ token_url: tokenEndpoint(path, { app: SECRET }) }, makeDeps().deps), basic('app', SECRET))
      expect(stub.requests.at(-1)!.body).toBe('grant_type=client_credentials')
    })

    it('sets only the subject (the client id); extra and headers are untouched', async () => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }) }, makeDeps().deps)
      const r = await run(a, basic('app', SECRET))
      expect(r.ok && r.s).toMatchObject({ subject: 'app', extra: {} })
    })

    it('accepts a form-encoded token response (golang.org/x/oauth2 does)', async () => {
      const path = freshPath()
      stub.setMode(path, { kind: 'custom', handle: (_r, res) => void res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded' }).end('access_token=abc&expires_in=60') })
      expect(await allow(make({ token_url: stub.url(path) }, makeDeps().deps), basic('app', SECRET))).toBe('app')
    })
  })

  describe('status mapping (Oathkeeper\'s table; fail closed)', () => {
    type Case = { name: string; mode: Parameters<Stub['setMode']>[1]; code: string; reason: string; headers?: unknown }
    const cases: Case[] = [
      { name: '401 invalid_client', mode: { kind: 'json', status: 401, body: { error: 'invalid_client' } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_client_credentials' },
      { name: '400 invalid_scope', mode: { kind: 'json', status: 400, body: { error: 'invalid_scope' } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_client_credentials' },
      { name: '403', mode: { kind: 'json', status: 403, body: {} }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_client_credentials' },
      { name: '404', mode: { kind: 'json', status: 404, body: {} }, code: 'ERR_UNAUTHENTICATED', reason: 'token_endpoint_rejected' },
      { name: '200 with an empty access_token', mode: { kind: 'json', body: { access_token: '' } }, code: 'ERR_UNAUTHENTICATED', reason: 'empty_access_token' },
      { name: '200 without access_token', mode: { kind: 'json', body: { token_type: 'bearer' } }, code: 'ERR_UNAUTHENTICATED', reason: 'empty_access_token' },
      {
        name: '429 with Retry-After',
        mode: { kind: 'json', status: 429, body: {}, headers: { 'retry-after': '30' } },
        code: 'ERR_TOO_MANY_REQUESTS',
        reason: 'token_endpoint_rate_limited',
        headers: [['Retry-After', '30']],
      },
      { name: '503', mode: { kind: '5xx', status: 503 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'token_endpoint_bad_status' },
      { name: '500', mode: { kind: '5xx', status: 500 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'token_endpoint_bad_status' },
      { name: '504', mode: { kind: '5xx', status: 504 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'token_endpoint_bad_status' },
      { name: '302 (not followed)', mode: { kind: 'redirect', location: 'https://login.example.com/' }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'token_endpoint_bad_status' },
      { name: '200 HTML', mode: 'html', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'token_endpoint_malformed' },
      { name: '200 garbage', mode: 'garbage', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'token_endpoint_malformed' },
      { name: 'a connection reset', mode: 'reset', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_reset' },
      { name: 'no answer', mode: 'hang', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_timeout' },
      { name: 'a 50 MiB body', mode: { kind: 'huge', mib: 50 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_too_large' },
    ]

    it.each(cases)('$name → $code $reason', async ({ mode, code, reason, headers }) => {
      const path = freshPath()
      stub.setMode(path, mode)
      const { deps, lines } = makeDeps({ timeout: '300ms' })
      const a = make({ token_url: stub.url(path) }, deps)
      const err = await deny(a, basic('app', SECRET))
      expect(err).toMatchObject({ code, reason })
      if (headers !== undefined) expect(err.headers).toEqual(headers)
      expect(lines.join('')).not.toContain(SECRET)
    })

    it('denies 503 upstream_connect when nothing listens', async () => {
      const a = make({ token_url: 'http://127.0.0.1:9/token' }, makeDeps().deps)
      expect(await deny(a, basic('app', SECRET))).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_connect' })
    })
  })

  describe('cache', () => {
    it('caches a grant: the second request with the same credentials calls nothing', async () => {
      const path = freshPath()
      const { deps } = makeDeps()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }, { expiresIn: 3600 }), cache: CACHED }, deps)
      expect(await allow(a, basic('app', SECRET))).toBe('app')
      expect(await allow(a, basic('app', SECRET))).toBe('app')
      expect(stub.hitsFor(path)).toBe(1)
      expect(deps.caches.stats()[0]).toMatchObject({ entries: 1, hits: 1 })
    })

    it('a cached grant never authenticates the same client id with another secret', async () => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }), cache: CACHED }, makeDeps().deps)
      await allow(a, basic('app', SECRET))
      expect(await deny(a, basic('app', 'wrong'))).toMatchObject({ reason: 'invalid_client_credentials' })
      expect(await deny(a, basic('app', `${SECRET} `))).toMatchObject({ reason: 'invalid_client_credentials' })
      expect(stub.hitsFor(path)).toBe(3)
    })

    it('keys by token_url and scopes too', async () => {
      const p1 = freshPath()
      const p2 = freshPath()
      const { deps } = makeDeps()
      const a1 = make({ token_url: tokenEndpoint(p1, { app: SECRET }), cache: CACHED }, deps)
      const a2 = make({ token_url: tokenEndpoint(p2, {}), cache: CACHED }, deps)
      const a1scoped = make({ token_url: stub.url(p1), required_scope: ['admin'], cache: CACHED }, deps)
      expect(deps.caches.names()).toHaveLength(1) // one shared cache: only the key tells them apart
      await allow(a1, basic('app', SECRET))
      expect(await deny(a2, basic('app', SECRET))).toMatchObject({ reason: 'invalid_client_credentials' })
      await allow(a1scoped, basic('app', SECRET))
      expect(stub.hitsFor(p1)).toBe(2)
      expect(stub.hitsFor(p2)).toBe(1)
    })

    it('lives at most expires_in, even with a longer ttl (fake clock)', async () => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }, { expiresIn: 10 }), cache: { enabled: true, ttl: '300s' } }, makeDeps({ now: clock.now }).deps)
      await allow(a, basic('app', SECRET))
      clock.advance(9_999)
      await allow(a, basic('app', SECRET))
      expect(stub.hitsFor(path)).toBe(1)
      clock.advance(2)
      await allow(a, basic('app', SECRET))
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('lives at most ttl when expires_in is longer or absent', async () => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }), cache: { enabled: true, ttl: '5s' } }, makeDeps({ now: clock.now }).deps)
      await allow(a, basic('app', SECRET))
      clock.advance(5_001)
      await allow(a, basic('app', SECRET))
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('caches a wrong secret as a negative: no call within negative_ttl, one after', async () => {
      const path = freshPath()
      const clock = manualClock()
      const { deps } = makeDeps({ now: clock.now })
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }), cache: { enabled: true, negative_ttl: '5s' } }, deps)
      expect(await deny(a, basic('app', 'wrong'))).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'invalid_client_credentials' })
      clock.advance(4_000)
      for (let i = 0; i < 100; i++) await deny(a, basic('app', 'wrong'))
      expect(stub.hitsFor(path)).toBe(1)
      expect(deps.caches.stats()[0]).toMatchObject({ negativeEntries: 1, negativeHits: 100 })
      clock.advance(1_001)
      await deny(a, basic('app', 'wrong'))
      expect(stub.hitsFor(path)).toBe(2)
      // The right secret is a different key: never blocked by the negative entry.
      await allow(a, basic('app', SECRET))
    })

    it('does not cache a 404, an empty token, a 429 or a 503', async () => {
      for (const mode of [{ kind: 'json' as const, status: 404, body: {} }, { kind: 'json' as const, body: { access_token: '' } }, { kind: 'json' as const, status: 429, body: {} }, { kind: '5xx' as const }]) {
        const path = freshPath()
        stub.setMode(path, mode)
        const { deps } = makeDeps()
        const a = make({ token_url: stub.url(path), cache: CACHED }, deps)
        await deny(a, basic('app', SECRET))
        await deny(a, basic('app', SECRET))
        expect(stub.hitsFor(path)).toBe(2)
        expect(deps.caches.stats()[0]).toMatchObject({ entries: 0, negativeEntries: 0 })
      }
    })

    it('without the cache every request asks the token endpoint (a rotated secret stops at once)', async () => {
      const path = freshPath()
      const clients: Record<string, string> = { app: SECRET }
      const a = make({ token_url: tokenEndpoint(path, clients) }, makeDeps().deps)
      await allow(a, basic('app', SECRET))
      clients['app'] = 'rotated'
      await deny(a, basic('app', SECRET))
      expect(stub.hitsFor(path)).toBe(2)
    })
  })

  describe('coalescing', () => {
    it.each([
      { name: 'cache enabled', cache: CACHED },
      { name: 'cache disabled', cache: { enabled: false } },
    ])('500 concurrent requests with the same credentials make one grant ($name)', async ({ cache }) => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }, { delayMs: 50 }), cache }, makeDeps().deps)
      const rs = await Promise.all(Array.from({ length: 500 }, () => run(a, basic('app', SECRET))))
      expect(rs.every((r) => r.ok && r.s.subject === 'app')).toBe(true)
      expect(stub.hitsFor(path)).toBe(1)
    })

    it('an aborted caller stops waiting with 503 while the shared grant goes on', async () => {
      const path = freshPath()
      const a = make({ token_url: tokenEndpoint(path, { app: SECRET }, { delayMs: 100 }), cache: CACHED }, makeDeps().deps)
      const ac = new AbortController()
      const first = run(a, basic('app', SECRET), ac.signal)
      const second = run(a, basic('app', SECRET))
      ac.abort()
      const r = await first
      expect(r.ok ? undefined : r.err).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'aborted' })
      expect((await second).ok).toBe(true)
      expect(stub.hitsFor(path)).toBe(1)
    })
  })

  describe('secrets', () => {
    it('the client secret appears in no log line, error, cache name or stat, whatever the endpoint does', async () => {
      const { deps, lines } = makeDeps({ timeout: '200ms' })
      const texts: string[] = []
      for (const mode of <StubMode[]>['html', 'garbage', 'reset', 'hang', { kind: '5xx' }, { kind: 'json' as const, status: 401, body: { error: 'invalid_client', error_description: `bad secret ${SECRET}` } }, { kind: 'json' as const, status: 429, body: {} }]) {
        const path = freshPath()
        stub.setMode(path, mode)
        const a = make({ token_url: stub.url(path), cache: CACHED }, deps)
        const err = await deny(a, basic('app', SECRET))
        texts.push(err.message, err.reason, JSON.stringify(err.headers), String(err.stack))
      }
      const path = freshPath()
      await allow(make({ token_url: tokenEndpoint(path, { app: SECRET }), cache: CACHED }, deps), basic('app', SECRET))
      texts.push(...lines, JSON.stringify(deps.caches.stats()), deps.caches.names().join(','))
      const all = texts.join('\n')
      for (const s of [SECRET, Buffer.from(`app:${SECRET}`).toString('base64'), 'at-for-app']) expect(all).not.toContain(s)
    })
  })
})
