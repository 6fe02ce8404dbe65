/**
 * `oauth2_introspection` against a real HTTP introspection endpoint (test/helpers/stub-server.ts):
 * request shape, the response table (A38, A39), rule checks on every cache hit (A37), cache key
 * completeness (A36, CVE-2026-33496), coalescing (A40), TTL ≤ exp (A41), negative floods (A42),
 * pre_authorization token reuse, and that no token or secret ever reaches a log line or an error.
 */
import type { ServerResponse } from 'node:http'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CacheBudget } from '../../../../src/cache/budget.js'
import { CacheRegistry } from '../../../../src/cache/registry.js'
import { HttpClient } from '../../../../src/http/client.js'
import { OutboundConfigSchema } from '../../../../src/http/config.js'
import { OAuth2IntrospectionConfig, oauth2Introspection } from '../../../../src/pipeline/authn/oauth2-introspection.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { NOT_RESPONSIBLE, type Authenticator, type HandlerDeps, type Session } from '../../../../src/pipeline/types.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { expectSafePipelineError } from '../../../contract/safety.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'
import { startStub, type RecordedRequest, type Stub, type StubMode } from '../../../helpers/stub-server.js'

const T0 = 1_700_000_000_000
const SEC = Math.floor(T0 / 1000)

// ---------------------------------------------------------------------------------------------
// Fixtures

let stub: Stub

beforeAll(async () => {
  stub = await startStub()
})
afterAll(async () => {
  await stub.close()
})

/** A hand-driven wall clock shared by the handler (`deps.now`) and its caches. */
function manualClock(start = T0) {
  let t = start
  return {
    now: (): number => t,
    advance(ms: number): void {
      t += ms
    },
  }
}

/** Captures every pino line (level trace) so tests can assert nothing secret is logged. */
function memoryLog() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'))
      cb()
    },
  })
  return { log: pino({ level: 'trace' }, stream), lines }
}

const opened: HandlerDeps[] = []
afterEach(async () => {
  for (const d of opened.splice(0)) {
    d.caches.dispose()
    await d.http.close()
  }
})

/** Fresh deps per test: own caches (so tests never share entries), own HTTP pools, optional fake clock. */
function makeDeps(o: { now?: () => number; timeout?: string; retries?: number } = {}) {
  const mem = memoryLog()
  const now = o.now ?? Date.now
  const deps: HandlerDeps = {
    log: mem.log,
    caches: new CacheRegistry(new CacheBudget(256 * 1024 * 1024), o.now === undefined ? {} : { now: o.now }),
    // No outbound retries, so the stub's hit counters count calls (a retried 503 would be 3 hits).
    http: new HttpClient(
      OutboundConfigSchema.parse({ timeout: o.timeout ?? '1s', max_pending_per_origin: 4096, retry: { max_retries: o.retries ?? 0 }, breaker: { failure_threshold: 1_000_000 } }),
    ),
    now,
  }
  opened.push(deps)
  return { deps, lines: mem.lines }
}

function make(config: Record<string, unknown>, deps: HandlerDeps): Authenticator {
  return oauth2Introspection.create(OAuth2IntrospectionConfig.parse(config), deps)
}

let pathSeq = 0
/** A fresh endpoint path on the stub (so hit counters are per test). */
function freshPath(name = 'introspect'): string {
  return `/${name}-${++pathSeq}`
}

/**
 * An RFC 7662 endpoint at `path`: answers each token from `table` (default `{active:false}`),
 * optionally as a function of the whole recorded request.
 */
function idp(path: string, table: Record<string, unknown> | ((token: string, req: RecordedRequest) => unknown), delayMs = 0): string {
  stub.setMode(path, {
    kind: 'custom',
    handle(req, res: ServerResponse) {
      const token = new URLSearchParams(req.body).get('token') ?? ''
      const body = typeof table === 'function' ? table(token, req) : (table[token] ?? { active: false })
      const send = (): void => {
        const text = JSON.stringify(body)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) })
        res.end(text)
      }
      if (delayMs > 0) setTimeout(send, delayMs)
      else send()
    },
  })
  return stub.url(path)
}

const active = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ active: true, sub: 'alice', ...over })

function bearer(token: string, extra: Record<string, string> = {}) {
  return makeRequest({ headers: { authorization: `Bearer ${token}`, ...extra } })
}

/** Runs one authentication; returns the session or the (safety-checked) PipelineError. */
async function run(a: Authenticator, token: string, o: { headers?: Record<string, string>; host?: string; signal?: AbortSignal } = {}) {
  const req = makeRequest({ headers: { authorization: `Bearer ${token}`, ...(o.headers ?? {}) }, ...(o.host === undefined ? {} : { host: o.host }) })
  const s = makeSession(req)
  try {
    const out = await a.authenticate(req, s, o.signal ?? NO_ABORT)
    return { ok: true as const, out, s }
  } catch (err) {
    expectSafePipelineError(err, 'oauth2_introspection')
    if (token.length >= 8) expect(err.message).not.toContain(token)
    return { ok: false as const, err, s }
  }
}

async function deny(a: Authenticator, token: string, o: Parameters<typeof run>[2] = {}): Promise<PipelineError> {
  const r = await run(a, token, o)
  if (r.ok) throw new Error(`expected a denial, got success with subject ${r.s.subject}`)
  return r.err
}

async function allow(a: Authenticator, token: string, o: Parameters<typeof run>[2] = {}): Promise<Session> {
  const r = await run(a, token, o)
  if (!r.ok) throw new Error(`expected success, got ${r.err.code} ${r.err.reason}`)
  expect(r.out).toBeUndefined()
  return r.s
}

const CACHED = { enabled: true, ttl: '5m', negative_ttl: '10s' }

// ---------------------------------------------------------------------------------------------

describe('authn oauth2_introspection', () => {
  runAuthenticatorContract({
    factory: oauth2Introspection,
    validConfigs: [
      // Port 9 (discard) on loopback: nothing listens, so a credential is a 503, never an allow.
      { introspection_url: 'http://127.0.0.1:9/introspect' },
      {
        introspection_url: 'https://idp.example.com/oauth2/introspect',
        scope_strategy: 'wildcard',
        required_scope: ['photos.*'],
        target_audience: ['api'],
        trusted_issuers: ['https://idp.example.com/'],
        prefix: 'ory_at_',
        token_from: { header: 'X-Token' },
        preserve_host: true,
        introspection_request_headers: { 'X-Api-Key': 'k' },
        pre_authorization: { enabled: true, client_id: 'c', client_secret: 's', token_url: 'https://idp.example.com/oauth2/token', audience: 'a', scope: ['introspect'] },
        retry: { max_delay: '100ms', give_up_after: '1s' },
        cache: { enabled: true, ttl: '1m', max_cost: 1_048_576, negative_ttl: '2s' },
      },
      { introspection_url: 'http://127.0.0.1:9/i', pre_authorization: { enabled: false } },
    ],
    invalidConfigs: [
      { name: 'no introspection_url', config: {}, path: ['introspection_url'] },
      { name: 'a relative introspection_url', config: { introspection_url: '/introspect' }, path: ['introspection_url'] },
      { name: 'a non-http introspection_url', config: { introspection_url: 'file:///etc/passwd' }, path: ['introspection_url'] },
      { name: 'credentials in the introspection_url', config: { introspection_url: 'https://u:p@idp/i' }, path: ['introspection_url'] },
      { name: 'a link-local introspection_url', config: { introspection_url: 'http://169.254.169.254/latest' }, path: ['introspection_url'] },
      { name: 'an unknown scope_strategy', config: { introspection_url: 'http://a/i', scope_strategy: 'regex' }, path: ['scope_strategy'] },
      { name: 'a required_scope with a space', config: { introspection_url: 'http://a/i', required_scope: ['read write'] }, path: ['required_scope', 0] },
      { name: 'an empty target_audience entry', config: { introspection_url: 'http://a/i', target_audience: [''] }, path: ['target_audience', 0] },
      {
        name: 'pre_authorization enabled without token_url',
        config: { introspection_url: 'http://a/i', pre_authorization: { enabled: true, client_id: 'c', client_secret: 's' } },
        path: ['pre_authorization', 'token_url'],
      },
      {
        name: 'pre_authorization enabled without client_secret',
        config: { introspection_url: 'http://a/i', pre_authorization: { enabled: true, client_id: 'c', token_url: 'http://a/t' } },
        path: ['pre_authorization', 'client_secret'],
      },
      { name: 'a reserved request header', config: { introspection_url: 'http://a/i', introspection_request_headers: { 'Content-Type': 'text/plain' } }, path: ['introspection_request_headers', 'Content-Type'] },
      { name: 'a request header value with CR/LF', config: { introspection_url: 'http://a/i', introspection_request_headers: { 'X-A': 'a\r\nX-B: b' } }, path: ['introspection_request_headers', 'X-A'] },
      {
        name: 'an Authorization request header with pre_authorization',
        config: {
          introspection_url: 'http://a/i',
          introspection_request_headers: { Authorization: 'Basic x' },
          pre_authorization: { enabled: true, client_id: 'c', client_secret: 's', token_url: 'http://a/t' },
        },
        path: ['introspection_request_headers', 'Authorization'],
      },
      { name: 'X-Forwarded-Host with preserve_host', config: { introspection_url: 'http://a/i', preserve_host: true, introspection_request_headers: { 'X-Forwarded-Host': 'h' } }, path: ['introspection_request_headers', 'X-Forwarded-Host'] },
      { name: 'an invalid retry duration', config: { introspection_url: 'http://a/i', retry: { give_up_after: 'soon' } }, path: ['retry', 'give_up_after'] },
      { name: 'a cache max_cost below the minimum', config: { introspection_url: 'http://a/i', cache: { max_cost: 10 } }, path: ['cache', 'max_cost'] },
      { name: 'an unknown cache key', config: { introspection_url: 'http://a/i', cache: { max_tokens: 10 } }, path: ['cache'] },
    ],
  })

  describe('responsibility', () => {
    it('is not responsible without a bearer token, and calls nothing', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, {}) }, makeDeps().deps)
      for (const headers of [{}, { authorization: 'Basic YTpi' }, { authorization: 'Bearer ' }, { cookie: 'session=x' }]) {
        const req = makeRequest({ headers })
        const s = makeSession(req)
        expect(await a.authenticate(req, s, NO_ABORT)).toBe(NOT_RESPONSIBLE)
        expect(s).toEqual(makeSession(req))
      }
      expect(stub.hitsFor(path)).toBe(0)
    })

    it('is not responsible for a token without the configured prefix, and sends the whole token when it has it', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { 'ory_at_abc': active() }), prefix: 'ory_at_' }, makeDeps().deps)
      const req = bearer('other_abc')
      expect(await a.authenticate(req, makeSession(req), NO_ABORT)).toBe(NOT_RESPONSIBLE)
      expect(stub.hitsFor(path)).toBe(0)
      expect((await allow(a, 'ory_at_abc')).subject).toBe('alice')
      expect(new URLSearchParams(stub.requests.at(-1)!.body).get('token')).toBe('ory_at_abc')
    })

    it('reads the token from token_from', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { t1: active() }), token_from: { query_parameter: 'access_token' } }, makeDeps().deps)
      const req = makeRequest({ query: 'access_token=t1' })
      const s = makeSession(req)
      expect(await a.authenticate(req, s, NO_ABORT)).toBeUndefined()
      expect(s.subject).toBe('alice')
    })

    it('denies 401 a merged "Bearer a, Bearer b" header without calling the endpoint (A48)', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { a: active() }) }, makeDeps().deps)
      const req = makeRequest({ headers: { authorization: 'Bearer a, Bearer b' } })
      await expect(a.authenticate(req, makeSession(req), NO_ABORT)).rejects.toMatchObject({ code: 'ERR_UNAUTHENTICATED' })
      expect(stub.hitsFor(path)).toBe(0)
    })
  })

  describe('the introspection request', () => {
    it('POSTs a form with the token and, for strategy none, the required scopes for the server to enforce', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { 'tok+/=': active() }), required_scope: ['read', 'write:all'] }, makeDeps().deps)
      await allow(a, 'tok+/=')
      const r = stub.requests.at(-1)!
      expect(r.method).toBe('POST')
      expect(r.headers['content-type']).toBe('application/x-www-form-urlencoded')
      expect(r.headers['accept']).toBe('application/json')
      expect(r.body).toBe('token=tok%2B%2F%3D&scope=read+write%3Aall')
    })

    it('sends an empty scope parameter for strategy none without required scopes (as Oathkeeper)', async () => {
      const path = freshPath()
      await allow(make({ introspection_url: idp(path, { t: active() }) }, makeDeps().deps), 't')
      expect(stub.requests.at(-1)!.body).toBe('token=t&scope=')
    })

    it('sends no scope parameter when Portcullis checks scopes itself', async () => {
      const path = freshPath()
      await allow(make({ introspection_url: idp(path, { t: active({ scope: 'read' }) }), scope_strategy: 'exact', required_scope: ['read'] }, makeDeps().deps), 't')
      expect(stub.requests.at(-1)!.body).toBe('token=t')
    })

    it('adds the static request headers and, with preserve_host, X-Forwarded-Host from the request', async () => {
      const path = freshPath()
      const a = make(
        { introspection_url: idp(path, { t: active() }), preserve_host: true, introspection_request_headers: { 'X-Api-Key': 'k1', Authorization: 'Basic cnM6cnM=' } },
        makeDeps().deps,
      )
      await allow(a, 't', { host: 'shop.example.com' })
      const r = stub.requests.at(-1)!
      expect(r.headers['x-api-key']).toBe('k1')
      expect(r.headers['authorization']).toBe('Basic cnM6cnM=')
      expect(r.headers['x-forwarded-host']).toBe('shop.example.com')
    })

    it('sends no X-Forwarded-Host without preserve_host', async () => {
      const path = freshPath()
      await allow(make({ introspection_url: idp(path, { t: active() }) }, makeDeps().deps), 't')
      expect(stub.requests.at(-1)!.headers['x-forwarded-host']).toBeUndefined()
    })
  })

  describe('success', () => {
    it('sets subject = sub and extra = ext plus username, client_id, scope and aud (Oathkeeper)', async () => {
      const path = freshPath()
      const a = make(
        {
          introspection_url: idp(path, {
            t: active({ ext: { tenant: 't1', roles: ['admin'], username: 'from-ext' }, username: 'al', client_id: 'app', scope: 'read write', aud: ['api', 'web'], iss: 'https://idp/' }),
          }),
        },
        makeDeps().deps,
      )
      const s = await allow(a, 't')
      expect(s.subject).toBe('alice')
      expect(s.extra).toEqual({ tenant: 't1', roles: ['admin'], username: 'al', client_id: 'app', scope: 'read write', aud: ['api', 'web'] })
    })

    it('sets username, client_id and scope to "" when absent, and no aud when empty', async () => {
      const path = freshPath()
      const s = await allow(make({ introspection_url: idp(path, { t: active({ aud: [] }) }) }, makeDeps().deps), 't')
      expect(s.extra).toEqual({ username: '', client_id: '', scope: '' })
    })

    it('accepts a single aud string and token_type Bearer', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { t: active({ aud: 'api', token_type: 'Bearer', token_use: 'access_token' }) }), target_audience: ['api'] }, makeDeps().deps)
      expect((await allow(a, 't')).extra['aud']).toEqual(['api'])
    })

    it('gives every request its own extra object, and a "__proto__" claim in ext stays an own property', async () => {
      const path = freshPath()
      const body = '{"active":true,"sub":"alice","ext":{"__proto__":{"admin":true},"n":1}}'
      stub.setMode(path, { kind: 'custom', handle: (_r, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(body) })
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, makeDeps().deps)
      const first = await allow(a, 't')
      first.extra['n'] = 2
      const second = await allow(a, 't')
      expect(second.extra['n']).toBe(1)
      expect((second.extra as { admin?: unknown }).admin).toBeUndefined()
      expect(Object.hasOwn(second.extra, '__proto__')).toBe(true)
      expect(stub.hitsFor(path)).toBe(1)
    })
  })

  describe('endpoint failures deny 503 and are never cached (A39)', () => {
    const cases: { name: string; mode: Parameters<Stub['setMode']>[1]; reason: string }[] = [
      { name: '503', mode: { kind: '5xx', status: 503 }, reason: 'introspection_bad_status' },
      { name: '500', mode: { kind: '5xx', status: 500 }, reason: 'introspection_bad_status' },
      { name: '401 {"error":"invalid_request"} (the endpoint refused Portcullis)', mode: { kind: 'json', status: 401, body: { error: 'invalid_request' } }, reason: 'introspection_bad_status' },
      { name: '404', mode: { kind: 'json', status: 404, body: {} }, reason: 'introspection_bad_status' },
      { name: '302 to a 200 JSON (redirect not followed)', mode: { kind: 'redirect', location: '/introspect-redirect-target' }, reason: 'introspection_bad_status' },
      { name: '200 HTML login page', mode: 'html', reason: 'introspection_malformed' },
      { name: '200 not JSON', mode: 'garbage', reason: 'introspection_malformed' },
      { name: '200 JSON array', mode: { kind: 'json', body: [{ active: true, sub: 'x' }] }, reason: 'introspection_malformed' },
      { name: '200 JSON null', mode: { kind: 'json', body: null }, reason: 'introspection_malformed' },
      { name: '200 JSON string', mode: { kind: 'json', body: 'active' }, reason: 'introspection_malformed' },
      { name: 'a 50 MiB body', mode: { kind: 'huge', mib: 50 }, reason: 'upstream_too_large' },
      { name: 'a connection reset', mode: 'reset', reason: 'upstream_reset' },
      { name: 'no answer (timeout)', mode: 'hang', reason: 'upstream_timeout' },
      { name: 'a slow answer past the deadline', mode: { kind: 'slow', delayMs: 2_000, then: { kind: 'json', body: { active: true, sub: 'x' } } }, reason: 'upstream_timeout' },
    ]

    it.each(cases)('$name → 503 $reason; the next request calls again', async ({ mode, reason }) => {
      stub.setMode('/introspect-redirect-target', { kind: 'json', body: { active: true, sub: 'x' } })
      const path = freshPath()
      stub.setMode(path, mode)
      const { deps, lines } = makeDeps({ timeout: '300ms' })
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, deps)
      for (let i = 1; i <= 2; i++) {
        const err = await deny(a, 'secret-token-A39')
        expect(err).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason })
        expect(stub.hitsFor(path)).toBe(i)
      }
      expect(deps.caches.stats()[0]).toMatchObject({ entries: 0, negativeEntries: 0, inflight: 0 })
      expect(lines.join('')).not.toContain('secret-token-A39')
    })

    it('denies 503 when nothing listens (connect error)', async () => {
      const a = make({ introspection_url: 'http://127.0.0.1:9/introspect' }, makeDeps().deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_connect' })
    })

    it('passes a 429 on with its Retry-After and X-Ratelimit-* headers, not cached', async () => {
      const path = freshPath()
      stub.setMode(path, { kind: 'json', status: 429, body: {}, headers: { 'retry-after': '7', 'x-ratelimit-limit': '100', 'x-ratelimit-remaining': '0', 'x-other': 'no' } })
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, makeDeps().deps)
      const err = await deny(a, 't')
      expect(err).toMatchObject({ code: 'ERR_TOO_MANY_REQUESTS', reason: 'introspection_rate_limited' })
      expect(err.headers).toEqual([
        ['Retry-After', '7'],
        ['X-Ratelimit-Limit', '100'],
        ['X-Ratelimit-Remaining', '0'],
      ])
      await deny(a, 't')
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('drops a Retry-After value with control characters', async () => {
      const path = freshPath()
      stub.setMode(path, { kind: 'custom', handle: (_r, res) => void res.writeHead(429, { 'retry-after': '5\u0001' }).end() })
      const err = await deny(make({ introspection_url: stub.url(path) }, makeDeps().deps), 't')
      expect(err.headers).toEqual([])
    })
  })

  describe('response shapes (A38)', () => {
    const invalid: { name: string; body: unknown }[] = [
      { name: '{"active":"true"}', body: { active: 'true', sub: 'x' } },
      { name: '{"active":"false"}', body: { active: 'false', sub: 'x' } },
      { name: '{"active":1}', body: { active: 1, sub: 'x' } },
      { name: '{"sub":"x"} (no active)', body: { sub: 'x' } },
      { name: '{}', body: {} },
      { name: 'exp as a string', body: active({ exp: String(SEC + 3600) }) },
      { name: 'exp not finite (1e400 parses to Infinity)', body: '__raw__{"active":true,"sub":"x","exp":1e400}' },
      { name: 'exp so large that exp × 1000 overflows', body: active({ exp: 1e307 }) },
      { name: 'aud a number', body: active({ aud: 5 }) },
      { name: 'aud with a nested array', body: active({ aud: [['api']] }) },
      { name: 'ext an array', body: active({ ext: ['a'] }) },
      { name: 'sub a number', body: active({ sub: 42 }) },
      { name: 'iss an object', body: active({ iss: { a: 1 } }) },
      { name: 'scope a number', body: active({ scope: 7 }) },
    ]

    it.each(invalid)('$name → 401 introspection_invalid_response, not cached', async ({ body }) => {
      const path = freshPath()
      if (typeof body === 'string' && body.startsWith('__raw__')) {
        const text = body.slice(7)
        stub.setMode(path, { kind: 'custom', handle: (_r, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(text) })
      } else {
        stub.setMode(path, { kind: 'json', body })
      }
      const { deps } = makeDeps()
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'introspection_invalid_response' })
      await deny(a, 't')
      expect(stub.hitsFor(path)).toBe(2)
      expect(deps.caches.stats()[0]).toMatchObject({ entries: 0, negativeEntries: 0 })
    })

    it('{"active":false} → 401 token_inactive, cached as a negative', async () => {
      const path = freshPath()
      stub.setMode(path, { kind: 'json', body: { active: false } })
      const { deps } = makeDeps()
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'token_inactive' })
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'token_inactive' })
      expect(stub.hitsFor(path)).toBe(1)
      expect(deps.caches.stats()[0]).toMatchObject({ entries: 0, negativeEntries: 1, negativeHits: 1 })
    })

    it.each([
      { name: 'no sub', body: { active: true } },
      { name: 'an empty sub', body: { active: true, sub: '' } },
    ])('active with $name → 401 no_subject (Oathkeeper: subject ""), cached as a negative', async ({ body }) => {
      const path = freshPath()
      stub.setMode(path, { kind: 'json', body })
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, makeDeps().deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'no_subject' })
      await deny(a, 't')
      expect(stub.hitsFor(path)).toBe(1)
    })

    it('accepts null for optional claims', async () => {
      const path = freshPath()
      stub.setMode(path, { kind: 'json', body: { active: true, sub: 'alice', exp: null, aud: null, scope: null, ext: null, iss: null } })
      expect((await allow(make({ introspection_url: stub.url(path) }, makeDeps().deps), 't')).extra).toEqual({ username: '', client_id: '', scope: '' })
    })
  })

  describe('rule checks', () => {
    type Case = { name: string; config?: Record<string, unknown>; claims: Record<string, unknown>; want: 'allow' | { code: string; reason: string } }
    const forbidden = (reason: string) => ({ code: 'ERR_FORBIDDEN', reason })
    const cases: Case[] = [
      { name: 'token_use refresh_token → 403', claims: { token_use: 'refresh_token' }, want: forbidden('token_use_not_access_token') },
      { name: 'token_use access_token → allow', claims: { token_use: 'access_token' }, want: 'allow' },
      { name: 'token_type refresh_token → 403', claims: { token_type: 'refresh_token' }, want: forbidden('token_use_not_access_token') },
      { name: 'token_type id_token → 403', claims: { token_type: 'ID_TOKEN' }, want: forbidden('token_use_not_access_token') },
      { name: 'exp in the past → 401', claims: { exp: SEC - 1 }, want: { code: 'ERR_UNAUTHENTICATED', reason: 'token_expired' } },
      { name: 'exp in the future → allow', claims: { exp: SEC + 60 }, want: 'allow' },
      { name: 'a missing audience → 403', config: { target_audience: ['api'] }, claims: { aud: ['web'] }, want: forbidden('audience_mismatch') },
      { name: 'only one of two audiences → 403 (AND)', config: { target_audience: ['api', 'web'] }, claims: { aud: ['api'] }, want: forbidden('audience_mismatch') },
      { name: 'all audiences → allow', config: { target_audience: ['api', 'web'] }, claims: { aud: ['web', 'api', 'x'] }, want: 'allow' },
      { name: 'no aud at all with target_audience → 403', config: { target_audience: ['api'] }, claims: {}, want: forbidden('audience_mismatch') },
      { name: 'an untrusted issuer → 403', config: { trusted_issuers: ['https://a/'] }, claims: { iss: 'https://b/' }, want: forbidden('untrusted_issuer') },
      { name: 'no issuer with trusted_issuers → 403', config: { trusted_issuers: ['https://a/'] }, claims: {}, want: forbidden('untrusted_issuer') },
      { name: 'a trusted issuer → allow', config: { trusted_issuers: ['https://b/', 'https://a/'] }, claims: { iss: 'https://a/' }, want: 'allow' },
      { name: 'exact: granted → allow', config: { scope_strategy: 'exact', required_scope: ['read', 'write'] }, claims: { scope: 'write read' }, want: 'allow' },
      { name: 'exact: one missing → 403', config: { scope_strategy: 'exact', required_scope: ['read', 'write'] }, claims: { scope: 'read' }, want: forbidden('missing_scope') },
      { name: 'exact: no scope claim → 403', config: { scope_strategy: 'exact', required_scope: ['read'] }, claims: {}, want: forbidden('missing_scope') },
      { name: 'hierarchic: foo grants foo.bar', config: { scope_strategy: 'hierarchic', required_scope: ['foo.bar'] }, claims: { scope: 'foo' }, want: 'allow' },
      { name: 'hierarchic: foo.bar does not grant foo', config: { scope_strategy: 'hierarchic', required_scope: ['foo'] }, claims: { scope: 'foo.bar' }, want: forbidden('missing_scope') },
      { name: 'wildcard: foo.* grants foo.bar', config: { scope_strategy: 'wildcard', required_scope: ['foo.bar'] }, claims: { scope: 'foo.*' }, want: 'allow' },
      { name: 'wildcard: foo.* does not grant foo', config: { scope_strategy: 'wildcard', required_scope: ['foo'] }, claims: { scope: 'foo.*' }, want: forbidden('missing_scope') },
      { name: 'a scope array is read as well', config: { scope_strategy: 'exact', required_scope: ['read'] }, claims: { scope: ['read'] }, want: 'allow' },
      { name: 'none: scopes are the server\'s business', config: { scope_strategy: 'none', required_scope: ['read'] }, claims: {}, want: 'allow' },
    ]

    it.each(cases)('$name', async ({ config, claims, want }) => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ introspection_url: idp(path, { t: active(claims) }), ...config }, makeDeps({ now: clock.now }).deps)
      const r = await run(a, 't')
      if (want === 'allow') expect(r.ok, r.ok ? '' : `${r.err.code} ${r.err.reason}`).toBe(true)
      else expect(r.ok ? r : r.err).toMatchObject(want)
      if (!r.ok) expect(r.s.subject).toBe('')
    })

    it('re-applies audience and scope checks on a cache hit: a token cached by a lenient rule is refused by a strict one (A37)', async () => {
      const path = freshPath()
      const url = idp(path, { T: active({ aud: ['other'], scope: 'read' }) })
      const { deps } = makeDeps()
      const lenient = make({ introspection_url: url, cache: CACHED }, deps)
      const needsAud = make({ introspection_url: url, cache: CACHED, target_audience: ['billing'] }, deps)
      const needsScope = make({ introspection_url: url, cache: CACHED, scope_strategy: 'exact', required_scope: ['write'] }, deps)
      const needsIss = make({ introspection_url: url, cache: CACHED, trusted_issuers: ['https://idp-a/'] }, deps)
      await allow(lenient, 'T')
      expect(await deny(needsAud, 'T')).toMatchObject({ code: 'ERR_FORBIDDEN', reason: 'audience_mismatch' })
      expect(await deny(needsIss, 'T')).toMatchObject({ code: 'ERR_FORBIDDEN', reason: 'untrusted_issuer' })
      expect(stub.hitsFor(path)).toBe(1) // both answered from the entry the lenient rule stored
      // Strategy exact sends no scope parameter, so the same cached answer serves it too.
      expect(await deny(needsScope, 'T')).toMatchObject({ code: 'ERR_FORBIDDEN', reason: 'missing_scope' })
      expect(deps.caches.names()).toHaveLength(1)
      expect(deps.caches.stats()[0]).toMatchObject({ loads: 2, entries: 2 })
      await allow(lenient, 'T')
      expect(stub.hitsFor(path)).toBe(2)
    })
  })

  describe('cache key completeness (A36, CVE-2026-33496)', () => {
    it.each(['I1 then I2', 'I2 then I1'])('token active at I1 and inactive at I2: %s, I2 is called', async (order) => {
      const p1 = freshPath('i1')
      const p2 = freshPath('i2')
      const { deps } = makeDeps()
      const users = make({ introspection_url: idp(p1, { T: active({ scope: 'read' }) }), cache: CACHED }, deps)
      const billing = make({ introspection_url: idp(p2, { T: { active: false } }), cache: CACHED }, deps)
      // Same cache configuration: one shared cache, so only the key can tell the endpoints apart.
      expect(deps.caches.names()).toHaveLength(1)
      if (order === 'I1 then I2') {
        await allow(users, 'T')
        expect(await deny(billing, 'T')).toMatchObject({ reason: 'token_inactive' })
      } else {
        expect(await deny(billing, 'T')).toMatchObject({ reason: 'token_inactive' })
        await allow(users, 'T')
      }
      expect(stub.hitsFor(p1)).toBe(1)
      expect(stub.hitsFor(p2)).toBe(1)
      // And the entries stay apart afterwards.
      await allow(users, 'T')
      await deny(billing, 'T')
      expect(stub.hitsFor(p1) + stub.hitsFor(p2)).toBe(2)
    })

    it('keys by the scope parameter sent with strategy none (the server enforced it), so that case is cached safely', async () => {
      const path = freshPath()
      // The server grants "read" only: it answers active only when asked for scopes it granted.
      const url = idp(path, (_t, req) => {
        const asked = (new URLSearchParams(req.body).get('scope') ?? '').split(' ').filter(Boolean)
        return asked.every((s) => s === 'read') ? active() : { active: false }
      })
      const { deps } = makeDeps()
      const read = make({ introspection_url: url, cache: CACHED, required_scope: ['read'] }, deps)
      const write = make({ introspection_url: url, cache: CACHED, required_scope: ['write'] }, deps)
      await allow(read, 'T')
      expect(await deny(write, 'T')).toMatchObject({ reason: 'token_inactive' })
      await allow(read, 'T')
      await deny(write, 'T')
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('keys by the static request headers (which client asks may change the answer)', async () => {
      const path = freshPath()
      const url = idp(path, (_t, req) => (req.headers['x-client'] === 'a' ? active() : { active: false }))
      const { deps } = makeDeps()
      const a = make({ introspection_url: url, cache: CACHED, introspection_request_headers: { 'X-Client': 'a' } }, deps)
      const b = make({ introspection_url: url, cache: CACHED, introspection_request_headers: { 'X-Client': 'b' } }, deps)
      await allow(a, 'T')
      await deny(b, 'T')
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('keys by the forwarded host with preserve_host', async () => {
      const path = freshPath()
      const url = idp(path, (_t, req) => (req.headers['x-forwarded-host'] === 'a.example.com' ? active() : { active: false }))
      const a = make({ introspection_url: url, cache: CACHED, preserve_host: true }, makeDeps().deps)
      await allow(a, 'T', { host: 'a.example.com' })
      await deny(a, 'T', { host: 'b.example.com' })
      await allow(a, 'T', { host: 'a.example.com' })
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('keys by the pre_authorization client', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      stub.setMode(tp, {
        kind: 'custom',
        handle(req, res) {
          const id = Buffer.from(String(req.headers['authorization']).slice(6), 'base64').toString().split(':')[0]
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `at-${id}`, expires_in: 3600 }))
        },
      })
      const url = idp(ip, (_t, req) => (req.headers['authorization'] === 'Bearer at-c1' ? active() : { active: false }))
      const { deps } = makeDeps()
      const pre = (id: string) => ({ enabled: true, client_id: id, client_secret: 's', token_url: stub.url(tp) })
      const c1 = make({ introspection_url: url, cache: CACHED, pre_authorization: pre('c1') }, deps)
      const c2 = make({ introspection_url: url, cache: CACHED, pre_authorization: pre('c2') }, deps)
      await allow(c1, 'T')
      await deny(c2, 'T')
      expect(stub.hitsFor(ip)).toBe(2)
    })

    it('never uses a raw token as a cache key', async () => {
      const path = freshPath()
      const { deps } = makeDeps()
      const a = make({ introspection_url: idp(path, { 'raw-token-value': active() }), cache: CACHED }, deps)
      await allow(a, 'raw-token-value')
      const cache = deps.caches.get(deps.caches.names()[0]!)!
      // AuthCache rejects non-credentialKey keys outright; the stored entry count proves a store happened.
      expect(cache.stats().entries).toBe(1)
    })
  })

  describe('coalescing (A40)', () => {
    it.each([
      { name: 'cache enabled', cache: CACHED },
      { name: 'cache disabled (coalescing only)', cache: { enabled: false } },
    ])('1 000 concurrent requests with one uncached token make exactly 1 call, all allowed ($name)', async ({ cache }) => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { T: active({ ext: { n: 1 } }) }, 50), cache }, makeDeps().deps)
      const results = await Promise.all(Array.from({ length: 1000 }, () => run(a, 'T')))
      expect(stub.hitsFor(path)).toBe(1)
      expect(results.every((r) => r.ok && r.s.subject === 'alice')).toBe(true)
    })

    it('when that one call fails, all 1 000 deny 503 and the next request calls again', async () => {
      const path = freshPath()
      stub.setMode(path, { kind: 'slow', delayMs: 50, then: { kind: '5xx', status: 503 } })
      const { deps } = makeDeps() // (outbound retries off: one call is one HTTP request)
      const a = make({ introspection_url: stub.url(path), cache: CACHED }, deps)
      const results = await Promise.all(Array.from({ length: 1000 }, () => run(a, 'T')))
      expect(stub.hitsFor(path)).toBe(1)
      expect(results.every((r) => !r.ok && r.err.code === 'ERR_UPSTREAM_UNAVAILABLE')).toBe(true)
      idp(path, { T: active() })
      await allow(a, 'T')
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('an aborted caller stops waiting with 503; the shared call still answers the others and is cached', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { T: active() }, 100), cache: CACHED }, makeDeps().deps)
      const ac = new AbortController()
      const aborted = run(a, 'T', { signal: ac.signal })
      const other = run(a, 'T')
      ac.abort()
      const r = await aborted
      expect(r.ok ? undefined : r.err).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'aborted' })
      expect((await other).ok).toBe(true)
      await allow(a, 'T')
      expect(stub.hitsFor(path)).toBe(1)
    })

    it('an already-aborted signal is refused before any call', async () => {
      const path = freshPath()
      const a = make({ introspection_url: idp(path, { T: active() }) }, makeDeps().deps)
      const ac = new AbortController()
      ac.abort()
      expect(await deny(a, 'T', { signal: ac.signal })).toMatchObject({ reason: 'aborted' })
      expect(stub.hitsFor(path)).toBe(0)
    })
  })

  describe('cache lifetime (A41)', () => {
    it('exp = now + 2 s with ttl 300 s: allowed from the cache at +1 s, denied 401 at +3 s', async () => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ introspection_url: idp(path, { T: active({ exp: SEC + 2 }) }), cache: { enabled: true, ttl: '300s' } }, makeDeps({ now: clock.now }).deps)
      await allow(a, 'T')
      clock.advance(1_000)
      await allow(a, 'T')
      expect(stub.hitsFor(path)).toBe(1)
      clock.advance(2_000)
      expect(await deny(a, 'T')).toMatchObject({ code: 'ERR_UNAUTHENTICATED', reason: 'token_expired' })
    })

    it('re-checks exp on a hit even if the entry outlived it (clock step): never allows past exp', async () => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ introspection_url: idp(path, { T: active({ exp: SEC + 2 }) }), cache: { enabled: true, ttl: '300s' } }, makeDeps({ now: clock.now }).deps)
      await allow(a, 'T')
      clock.advance(2_000) // exactly exp
      expect(await deny(a, 'T')).toMatchObject({ reason: 'token_expired' })
    })

    it('a ttl shorter than exp bounds the entry: re-introspected after ttl', async () => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ introspection_url: idp(path, { T: active({ exp: SEC + 3600 }) }), cache: { enabled: true, ttl: '1s' } }, makeDeps({ now: clock.now }).deps)
      await allow(a, 'T')
      clock.advance(999)
      await allow(a, 'T')
      expect(stub.hitsFor(path)).toBe(1)
      clock.advance(2)
      await allow(a, 'T')
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('a revoked token is refused once its entry expires (ttl bounds revocation latency)', async () => {
      const path = freshPath()
      const clock = manualClock()
      const table: Record<string, unknown> = { T: active() }
      const a = make({ introspection_url: idp(path, (t) => table[t]), cache: { enabled: true, ttl: '10s' } }, makeDeps({ now: clock.now }).deps)
      await allow(a, 'T')
      table['T'] = { active: false }
      clock.advance(10_001)
      expect(await deny(a, 'T')).toMatchObject({ reason: 'token_inactive' })
    })

    it('without the cache every request asks the endpoint (revocation visible at once, as Oathkeeper)', async () => {
      const path = freshPath()
      const table: Record<string, unknown> = { T: active() }
      const a = make({ introspection_url: idp(path, (t) => table[t]) }, makeDeps().deps)
      await allow(a, 'T')
      await allow(a, 'T')
      table['T'] = { active: false }
      await deny(a, 'T')
      expect(stub.hitsFor(path)).toBe(3)
    })
  })

  describe('negative floods (A42)', () => {
    it('10 000 requests with one inactive token: 1 call per negative_ttl window', async () => {
      const path = freshPath()
      const clock = manualClock()
      const a = make({ introspection_url: idp(path, {}), cache: { enabled: true, negative_ttl: '5s' } }, makeDeps({ now: clock.now }).deps)
      for (let batch = 0; batch < 10; batch++) {
        const rs = await Promise.all(Array.from({ length: 1000 }, () => run(a, 'inactive')))
        expect(rs.every((r) => !r.ok && r.err.reason === 'token_inactive')).toBe(true)
        clock.advance(400) // 10 batches span 4 s < negative_ttl
      }
      expect(stub.hitsFor(path)).toBe(1)
      clock.advance(1_001)
      await deny(a, 'inactive')
      expect(stub.hitsFor(path)).toBe(2)
    })

    it('100 000 distinct inactive tokens do not evict a cached valid token', async () => {
      // The endpoint is an in-process fake here: 100 000 loopback HTTP calls take a minute on a
      // 2-core box and prove nothing the HTTP tests above do not. What is under test is the cache.
      let calls = 0
      const fakeHttp = {
        request: async (r: { body?: string }) => {
          calls++
          const token = new URLSearchParams(r.body).get('token')
          const body = Buffer.from(JSON.stringify(token === 'valid' ? active() : { active: false }))
          return { status: 200, headers: { 'content-type': 'application/json' }, body, json: () => JSON.parse(body.toString()) as unknown }
        },
      } as unknown as HttpClient
      const { deps } = makeDeps()
      // A negative cache far too small for the flood (≈50 entries): it must churn within itself.
      const a = make({ introspection_url: 'http://idp.invalid/introspect', cache: { enabled: true, ttl: '1h', max_cost: 64 * 1024, negative_max_cost: 16 * 1024 } }, { ...deps, http: fakeHttp })
      await allow(a, 'valid')
      const N = 100_000
      const BATCH = 1000
      // Straight to authenticate(): run()'s per-error assertions would dominate the time.
      const once = async (token: string): Promise<string> => {
        const req = bearer(token)
        try {
          await a.authenticate(req, makeSession(req), NO_ABORT)
          return 'allowed'
        } catch (err) {
          return (err as PipelineError).reason
        }
      }
      for (let i = 0; i < N; i += BATCH) {
        const rs = await Promise.all(Array.from({ length: BATCH }, (_, j) => once(`flood-${i + j}`)))
        if (!rs.every((r) => r === 'token_inactive')) throw new Error(`batch ${i}: an inactive token was not denied 401`)
      }
      expect(calls).toBe(N + 1)
      await allow(a, 'valid')
      expect(calls).toBe(N + 1)
      const s = deps.caches.stats()[0]!
      expect(s).toMatchObject({ entries: 1, evictions: 0, hits: 1 })
      expect(s.negativeEvictions).toBeGreaterThan(N - 100)
      expect(s.negativeBytes).toBeLessThanOrEqual(16 * 1024)
    }, 60_000)

    it('5 000 distinct inactive tokens over real HTTP do not evict a cached valid token', async () => {
      const path = freshPath()
      const { deps } = makeDeps()
      const a = make({ introspection_url: idp(path, { valid: active() }), cache: { enabled: true, ttl: '1h', max_cost: 64 * 1024, negative_max_cost: 16 * 1024 } }, deps)
      await allow(a, 'valid')
      for (let i = 0; i < 5_000; i += 250) {
        const rs = await Promise.all(Array.from({ length: 250 }, (_, j) => run(a, `flood-${i + j}`)))
        const bad = rs.find((r) => r.ok || r.err.reason !== 'token_inactive')
        if (bad !== undefined) throw new Error(`batch ${i}: ${bad.ok ? 'allowed' : `${bad.err.code} ${bad.err.reason}`}`)
      }
      await allow(a, 'valid')
      expect(stub.hitsFor(path)).toBe(5_001)
      expect(deps.caches.stats()[0]).toMatchObject({ entries: 1, evictions: 0 })
    }, 60_000)
  })

  describe('pre_authorization', () => {
    function tokenEndpoint(path: string, o: { expiresIn?: number; delayMs?: number; status?: number } = {}) {
      let n = 0
      stub.setMode(path, {
        kind: 'custom',
        handle(_req, res) {
          const token = `pre-at-${++n}`
          const send = (): void => {
            if (o.status !== undefined && o.status !== 200) {
              res.writeHead(o.status, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}')
              return
            }
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, token_type: 'bearer', ...(o.expiresIn === undefined ? {} : { expires_in: o.expiresIn }) }))
          }
          if (o.delayMs !== undefined) setTimeout(send, o.delayMs)
          else send()
        },
      })
      return stub.url(path)
    }
    const SECRET = 'pre-auth-client-secret-XYZ'
    const preAuth = (tokenUrl: string) => ({ enabled: true, client_id: 'portcullis id', client_secret: SECRET, token_url: tokenUrl, audience: 'introspection', scope: ['introspect', 'other'] })

    it('fetches one token, presents it as Bearer on every call, and reuses it', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      const { deps, lines } = makeDeps()
      const seen: string[] = []
      const url = idp(ip, (_t, req) => {
        seen.push(String(req.headers['authorization']))
        return active()
      })
      const a = make({ introspection_url: url, pre_authorization: preAuth(tokenEndpoint(tp, { expiresIn: 3600 })) }, deps)
      for (const t of ['a', 'b', 'c']) await allow(a, t)
      expect(stub.hitsFor(tp)).toBe(1)
      expect(seen).toEqual(['Bearer pre-at-1', 'Bearer pre-at-1', 'Bearer pre-at-1'])
      const grant = stub.requests.find((r) => r.path === tp)!
      expect(grant.method).toBe('POST')
      expect(grant.headers['content-type']).toBe('application/x-www-form-urlencoded')
      expect(Object.fromEntries(new URLSearchParams(grant.body))).toEqual({ grant_type: 'client_credentials', scope: 'introspect other', audience: 'introspection' })
      expect(grant.headers['authorization']).toBe(`Basic ${Buffer.from(`portcullis+id:${SECRET}`).toString('base64')}`)
      expect(grant.body).not.toContain(SECRET)
      expect(lines.join('')).not.toContain(SECRET)
    })

    it('refreshes the token 10 s before expires_in, once', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      const clock = manualClock()
      const seen: string[] = []
      const url = idp(ip, (_t, req) => {
        seen.push(String(req.headers['authorization']))
        return active()
      })
      const a = make({ introspection_url: url, pre_authorization: preAuth(tokenEndpoint(tp, { expiresIn: 60 })) }, makeDeps({ now: clock.now }).deps)
      await allow(a, 't1')
      clock.advance(49_999)
      await allow(a, 't2')
      expect(stub.hitsFor(tp)).toBe(1)
      clock.advance(1)
      await allow(a, 't3')
      await allow(a, 't4')
      expect(stub.hitsFor(tp)).toBe(2)
      expect(seen).toEqual(['Bearer pre-at-1', 'Bearer pre-at-1', 'Bearer pre-at-2', 'Bearer pre-at-2'])
    })

    it('coalesces concurrent refreshes into one grant', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      const a = make({ introspection_url: idp(ip, () => active()), pre_authorization: preAuth(tokenEndpoint(tp, { expiresIn: 3600, delayMs: 50 })) }, makeDeps().deps)
      const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => run(a, `tok-${i}`)))
      expect(rs.every((r) => r.ok)).toBe(true)
      expect(stub.hitsFor(tp)).toBe(1)
      expect(stub.hitsFor(ip)).toBe(100)
    })

    it('fetches a new token when the introspection endpoint refuses the current one (401)', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      const url = idp(ip, () => active())
      const a = make({ introspection_url: url, pre_authorization: preAuth(tokenEndpoint(tp, { expiresIn: 3600 })) }, makeDeps().deps)
      await allow(a, 't1')
      stub.setMode(ip, { kind: 'sequence', steps: [{ kind: 'json', status: 401, body: { error: 'invalid_token' } }, { kind: 'json', body: active() }] })
      expect(await deny(a, 't2')).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'introspection_bad_status' })
      await allow(a, 't3')
      expect(stub.hitsFor(tp)).toBe(2)
      expect(stub.requests.at(-1)!.headers['authorization']).toBe('Bearer pre-at-2')
    })

    it.each([
      { name: 'rejects the client (401)', o: { status: 401 }, reason: 'pre_authorization_rejected' },
      { name: 'fails (503)', o: { status: 503 }, reason: 'pre_authorization_token_endpoint_bad_status' },
      { name: 'rate limits (429)', o: { status: 429 }, reason: 'pre_authorization_rate_limited' },
    ])('denies 503 without calling the introspection endpoint when the token endpoint $name', async ({ o, reason }) => {
      const ip = freshPath()
      const tp = freshPath('token')
      const { deps, lines } = makeDeps()
      const a = make({ introspection_url: idp(ip, () => active()), pre_authorization: preAuth(tokenEndpoint(tp, o)), cache: CACHED }, deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason })
      await deny(a, 't')
      expect(stub.hitsFor(tp)).toBe(2) // failures are not remembered
      expect(stub.hitsFor(ip)).toBe(0)
      expect(lines.join('')).not.toContain(SECRET)
    })

    it('denies 503 when the granted token could not go into a header (CR/LF)', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      stub.setMode(tp, { kind: 'json', body: { access_token: 'a\r\nX-Injected: 1', expires_in: 60 } })
      const a = make({ introspection_url: idp(ip, () => active()), pre_authorization: preAuth(stub.url(tp)) }, makeDeps().deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'pre_authorization_token_endpoint_malformed' })
      expect(stub.hitsFor(ip)).toBe(0)
    })

    it('denies 503 when the token endpoint is unreachable', async () => {
      const ip = freshPath()
      const a = make({ introspection_url: idp(ip, () => active()), pre_authorization: preAuth('http://127.0.0.1:9/token') }, makeDeps().deps)
      expect(await deny(a, 't')).toMatchObject({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'pre_authorization_upstream_connect' })
    })
  })

  describe('secrets', () => {
    it('no token, pre-authorization secret or static header credential appears in any log line or error', async () => {
      const ip = freshPath()
      const tp = freshPath('token')
      stub.setMode(tp, { kind: 'json', body: { access_token: 'PRE-AUTH-ACCESS-TOKEN', expires_in: 60 } })
      const { deps, lines } = makeDeps({ timeout: '200ms' })
      const cfg = {
        introspection_url: stub.url(ip),
        cache: CACHED,
        pre_authorization: { enabled: true, client_id: 'cid', client_secret: 'CLIENT-SECRET-123', token_url: stub.url(tp) },
        introspection_request_headers: { 'X-Api-Key': 'STATIC-API-KEY-456' },
      }
      const a = make(cfg, deps)
      const errors: PipelineError[] = []
      for (const mode of <StubMode[]>['html', 'garbage', 'reset', 'hang', { kind: '5xx' }, { kind: 'json' as const, body: { active: 'true' } }, { kind: 'json' as const, body: { active: false } }]) {
        stub.setMode(ip, mode)
        errors.push(await deny(a, `USER-TOKEN-${errors.length}`))
      }
      stub.setMode(ip, { kind: 'json', body: active() })
      await allow(a, 'USER-TOKEN-OK')
      const text = lines.join('\n') + errors.map((e) => `${e.message} ${e.reason} ${JSON.stringify(e.headers)}`).join('\n')
      for (const secret of ['USER-TOKEN', 'CLIENT-SECRET-123', 'PRE-AUTH-ACCESS-TOKEN', 'STATIC-API-KEY-456', Buffer.from('cid:CLIENT-SECRET-123').toString('base64')]) {
        expect(text).not.toContain(secret)
      }
      expect(lines.length).toBeGreaterThan(0) // debug lines were written, and checked
    })
  })
})
