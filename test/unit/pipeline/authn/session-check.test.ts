/**
 * The remote session check shared by cookie_session and bearer_token, against a real HTTP stub:
 * how the outbound call is built (URL, method, exactly which headers), what every kind of answer
 * means (fail closed, security.md A43 and §5.3), and the cache (key, TTL, negatives, coalescing).
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { CacheBudget } from '../../../../src/cache/budget.js'
import { CacheRegistry } from '../../../../src/cache/registry.js'
import { HttpClient, OutboundConfigSchema } from '../../../../src/http/client.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import {
  compileJsonPath,
  createSessionCheck,
  sessionCheckShape,
  type SessionCheck,
} from '../../../../src/pipeline/authn/shared/session-check.js'
import type { HandlerDeps, Session } from '../../../../src/pipeline/types.js'
import { makeRequest, makeSession, SECRETS, type RequestInit } from '../../../helpers/session.js'
import { startStub, type RecordedRequest, type Stub, type StubMode } from '../../../helpers/stub-server.js'

const MiB = 1024 * 1024
/** The outbound deadline these tests run with, and the slack allowed on top of it. */
const TIMEOUT_MS = 150
const SLACK_MS = 150

const SharedConfig = z.strictObject(sessionCheckShape('subject'))

let stub: Stub
/** The client most tests use: a generous deadline, so a loaded CI machine cannot fail a success. */
let client: HttpClient
/** Outbound defaults as shipped (150 ms deadline), for the tests about deadlines. */
let strict: HttpClient
beforeAll(async () => {
  stub = await startStub()
  // No retries and a breaker that never opens: every test sees exactly its own calls.
  const outbound = { retry: { max_retries: 0 }, breaker: { failure_threshold: 1_000_000 } }
  client = new HttpClient(OutboundConfigSchema.parse({ ...outbound, timeout: '2s' }))
  strict = new HttpClient(OutboundConfigSchema.parse({ ...outbound, timeout: `${TIMEOUT_MS}ms` }))
})
afterAll(async () => {
  await client.close()
  await strict.close()
  await stub.close()
})

let seq = 0
/** A fresh path on the stub per test, so modes and hit counters never mix. */
function freshPath(suffix = '/sessions/whoami'): string {
  return `/t${++seq}${suffix}`
}

function deps(now?: () => number, http: HttpClient = client): HandlerDeps {
  return {
    log: pino({ level: 'silent' }),
    caches: new CacheRegistry(new CacheBudget(256 * MiB), now === undefined ? {} : { now }),
    http,
    now: now ?? Date.now,
  }
}

/** A check for `path` on the stub (answering `mode`), with config overrides. */
function setup(
  mode: StubMode | undefined,
  cfg: Record<string, unknown> = {},
  o: { path?: string; now?: () => number; carriers?: readonly string[]; http?: HttpClient } = {},
): { check: SessionCheck; path: string; url: string } {
  const path = o.path ?? freshPath()
  if (mode !== undefined) stub.setMode(path, mode)
  const url = stub.url(path)
  const config = SharedConfig.parse({ check_session_url: url, preserve_path: true, ...cfg })
  const check = createSessionCheck(config, deps(o.now, o.http), { handlerId: 'cookie_session', carriers: o.carriers ?? ['cookie'] })
  return { check, path, url }
}

const COOKIE = `session=${SECRETS.cookie}`

type Outcome = { ok: true; s: Session } | { ok: false; err: PipelineError }

/** Each run gets its own signal, as each Check does (one shared signal would collect listeners). */
async function run(check: SessionCheck, init: RequestInit = {}, signal: AbortSignal = new AbortController().signal): Promise<Outcome> {
  const req = makeRequest({ ...init, headers: { cookie: COOKIE, ...init.headers } })
  const s = makeSession(req)
  try {
    await check(req, s, req.headers.get('cookie') ?? '', signal)
    return { ok: true, s }
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError)
    const e = err as PipelineError
    // Never a credential, never the upstream body in what a client or a log can see.
    for (const text of [e.message, e.reason, ...e.headers.flat()]) {
      expect(text).not.toContain(SECRETS.cookie)
      expect(text).not.toContain('<html')
    }
    return { ok: false, err: e }
  }
}

async function denied(check: SessionCheck, init: RequestInit = {}, signal?: AbortSignal): Promise<PipelineError> {
  const r = await run(check, init, signal)
  if (r.ok) throw new Error(`expected a denial, got subject ${JSON.stringify(r.s.subject)}`)
  return r.err
}

async function allowed(check: SessionCheck, init: RequestInit = {}): Promise<Session> {
  const r = await run(check, init)
  if (!r.ok) throw new Error(`expected success, got ${r.err.code} ${r.err.reason}`)
  return r.s
}

/** What the stub received for `path` (the last request). */
function received(path: string): RecordedRequest {
  const r = [...stub.requests].reverse().find((x) => x.path === path)
  if (r === undefined) throw new Error(`no request for ${path}`)
  return r
}

/** Header names the check sent, minus what the HTTP client adds itself. */
function sentHeaderNames(r: RecordedRequest): string[] {
  const transport = new Set(['host', 'connection', 'content-length'])
  return Object.keys(r.headers).filter((h) => !transport.has(h)).sort()
}

const ALICE = { kind: 'json', body: { subject: 'alice', extra: { role: 'admin' } } } as const satisfies StubMode

describe('compileJsonPath (the supported GJSON subset)', () => {
  const cases: { path: string; doc: unknown; want: unknown }[] = [
    { path: 'subject', doc: { subject: 'a' }, want: 'a' },
    { path: 'identity.id', doc: { identity: { id: 'x' } }, want: 'x' },
    { path: 'identity.traits.email', doc: { identity: { traits: { email: 'e@x' } } }, want: 'e@x' },
    { path: 'a.0.b', doc: { a: [{ b: 1 }] }, want: 1 },
    { path: 'a.1', doc: { a: [1] }, want: undefined },
    { path: 'a.length', doc: { a: [1, 2] }, want: undefined },
    { path: 'a.b', doc: { a: 'str' }, want: undefined },
    { path: 'a', doc: null, want: undefined },
    { path: 'constructor', doc: {}, want: undefined },
    { path: 'toString', doc: { a: 1 }, want: undefined },
    { path: '__proto__', doc: {}, want: undefined },
    { path: '__proto__.x', doc: JSON.parse('{"__proto__":{"x":1}}'), want: 1 },
    { path: '0', doc: { '0': 'zero' }, want: 'zero' },
    { path: '@this', doc: { a: 1 }, want: { a: 1 } },
  ]
  it.each(cases)('$path on $doc → $want', ({ path, doc, want }) => {
    expect(compileJsonPath(path)(doc)).toEqual(want)
  })
})

describe('config', () => {
  it('has Oathkeeper defaults except force_method (GET) and the cache (off, ttl 10s)', () => {
    const c = SharedConfig.parse({ check_session_url: 'http://kratos:4433/sessions/whoami' })
    expect(c).toMatchObject({
      preserve_path: false,
      preserve_query: true,
      preserve_host: false,
      force_method: 'GET',
      forward_http_headers: [],
      additional_headers: {},
      subject_from: 'subject',
      extra_from: 'extra',
    })
    expect(c.timeout).toBeUndefined()
    expect(c.cache).toMatchObject({ enabled: false, ttl: 10_000, negative_ttl: 5_000 })
  })

  it('reads empty paths as the defaults, methods case-insensitively, header names lower-case', () => {
    const c = SharedConfig.parse({
      check_session_url: 'https://idp/x',
      subject_from: '',
      extra_from: '',
      force_method: 'post',
      forward_http_headers: ['X-Tenant', 'Authorization'],
      timeout: '80ms',
    })
    expect(c).toMatchObject({ subject_from: 'subject', extra_from: 'extra', force_method: 'POST', forward_http_headers: ['x-tenant', 'authorization'], timeout: 80 })
  })

  const invalid: { name: string; cfg: Record<string, unknown>; path: string }[] = [
    { name: 'a relative check_session_url', cfg: { check_session_url: '/sessions/whoami' }, path: 'check_session_url' },
    { name: 'a non-http check_session_url', cfg: { check_session_url: 'ftp://idp/x' }, path: 'check_session_url' },
    { name: 'userinfo in check_session_url', cfg: { check_session_url: 'http://u:p@idp/x' }, path: 'check_session_url' },
    { name: 'a fragment in check_session_url', cfg: { check_session_url: 'http://idp/x#y' }, path: 'check_session_url' },
    { name: 'force_method DELETE', cfg: { force_method: 'DELETE' }, path: 'force_method' },
    { name: 'force_method HEAD', cfg: { force_method: 'HEAD' }, path: 'force_method' },
    { name: 'forwarding Host', cfg: { forward_http_headers: ['Host'] }, path: 'forward_http_headers.0' },
    { name: 'forwarding Connection', cfg: { forward_http_headers: ['X-Ok', 'Connection'] }, path: 'forward_http_headers.1' },
    { name: 'forwarding Content-Length', cfg: { forward_http_headers: ['Content-Length'] }, path: 'forward_http_headers.0' },
    { name: 'a header name with a space', cfg: { forward_http_headers: ['X Tenant'] }, path: 'forward_http_headers.0' },
    { name: 'an additional header value with CR/LF', cfg: { additional_headers: { 'X-A': 'a\r\nx-b: c' } }, path: 'additional_headers.X-A' },
    { name: 'GJSON wildcards in subject_from', cfg: { subject_from: 'identity.*' }, path: 'subject_from' },
    { name: 'GJSON queries in subject_from', cfg: { subject_from: 'friends.#(age>40).name' }, path: 'subject_from' },
    { name: 'GJSON pipes in subject_from', cfg: { subject_from: 'a|b' }, path: 'subject_from' },
    { name: 'an escaped dot in subject_from', cfg: { subject_from: 'a\\.b' }, path: 'subject_from' },
    { name: 'an empty segment in subject_from', cfg: { subject_from: 'a..b' }, path: 'subject_from' },
    { name: '@this as subject_from (the subject must be a string in an object)', cfg: { subject_from: '@this' }, path: 'subject_from' },
    { name: 'another GJSON modifier in extra_from', cfg: { extra_from: '@reverse' }, path: 'extra_from' },
    { name: 'a zero timeout', cfg: { timeout: '0s' }, path: 'timeout' },
    { name: 'a timeout above 60s', cfg: { timeout: '2m' }, path: 'timeout' },
    { name: 'an unknown cache key', cfg: { cache: { enabled: true, max_tokens: 5 } }, path: 'cache' },
  ]
  it.each(invalid)('rejects $name', ({ cfg, path }) => {
    const r = SharedConfig.safeParse({ check_session_url: 'http://idp/x', ...cfg })
    expect(r.success).toBe(false)
    expect(r.error!.issues.map((i) => i.path.join('.'))).toContain(path)
  })
})

describe('the outbound call', () => {
  it('preserve_path false (Oathkeeper default): the request path replaces the check URL path, the URL query stays', async () => {
    const base = freshPath('')
    stub.setMode(`${base}/app/page`, ALICE)
    const { check } = setup(undefined, { check_session_url: stub.url(`${base}/sessions/whoami?from=cfg`), preserve_path: false })
    await allowed(check, { path: `${base}/app/page`, query: 'x=1' })
    expect(received(`${base}/app/page`).url).toBe(`${base}/app/page?from=cfg`)
  })

  it('preserve_query false: the request query replaces the check URL query (and none drops it)', async () => {
    const path = freshPath()
    stub.setMode(path, ALICE)
    const { check } = setup(undefined, { check_session_url: stub.url(`${path}?from=cfg`), preserve_query: false }, { path })
    await allowed(check, { path: '/app', query: 'x=1&y=%20' })
    expect(received(path).url).toBe(`${path}?x=1&y=%20`)
    await allowed(check, { path: '/app' })
    expect(received(path).url).toBe(path)
  })

  it('preserve_path and preserve_query: exactly the configured URL, whatever the request', async () => {
    const path = freshPath()
    stub.setMode(path, ALICE)
    const { check } = setup(undefined, { check_session_url: stub.url(`${path}?a=b`) }, { path })
    await allowed(check, { path: '/other/place', query: 'evil=1' })
    expect(received(path).url).toBe(`${path}?a=b`)
  })

  it('calls with GET whatever the request method (deviation: Oathkeeper forwards the client method)', async () => {
    const { check, path } = setup(ALICE)
    for (const method of ['OPTIONS', 'DELETE', 'POST', 'PATCH']) {
      await allowed(check, { method })
      expect(received(path).method).toBe('GET')
    }
  })

  it('force_method POST: calls with POST and an empty body (the request body is never forwarded)', async () => {
    const { check, path } = setup(ALICE, { force_method: 'POST' })
    await allowed(check, { method: 'PUT' })
    expect(received(path).method).toBe('POST')
    expect(received(path).body).toBe('')
  })

  it('a session endpoint that answers 200 only to non-GET methods cannot be tricked by the client method', async () => {
    const { check } = setup({
      kind: 'custom',
      handle: (r, res) => {
        res.writeHead(r.method === 'GET' ? 401 : 200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ subject: 'mallory' }))
      },
    })
    const err = await denied(check, { method: 'OPTIONS', path: '/settings' })
    expect(err.code).toBe('ERR_UNAUTHENTICATED')
  })

  it('forwards only the credential carrier and the allow-listed headers, plus accept: application/json', async () => {
    const { check, path } = setup(ALICE, { forward_http_headers: ['X-Tenant', 'X-Absent'] })
    await allowed(check, {
      headers: {
        authorization: `Bearer ${SECRETS.bearer}`,
        'x-tenant': 't1',
        'x-request-id': 'r1',
        'user-agent': 'curl',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-host': 'evil.example',
        'content-type': 'text/plain',
      },
    })
    const r = received(path)
    expect(sentHeaderNames(r)).toEqual(['accept', 'cookie', 'x-tenant'])
    expect(r.headers).toMatchObject({ accept: 'application/json', cookie: COOKIE, 'x-tenant': 't1' })
  })

  it('additional_headers are set after forwarding (they win over a forwarded value)', async () => {
    const { check, path } = setup(ALICE, { forward_http_headers: ['X-Tenant'], additional_headers: { 'X-Tenant': 'static', 'X-Api-Key': 'k1' } })
    await allowed(check, { headers: { 'x-tenant': 'client' } })
    expect(received(path).headers).toMatchObject({ 'x-tenant': 'static', 'x-api-key': 'k1', cookie: COOKIE })
  })

  it('preserve_host sends X-Forwarded-Host from the request host, never the client header', async () => {
    const { check, path } = setup(ALICE, { preserve_host: true, additional_headers: { 'X-Forwarded-Host': 'static.example' } })
    await allowed(check, { host: 'app.example.com', headers: { 'x-forwarded-host': 'evil.example' } })
    expect(received(path).headers['x-forwarded-host']).toBe('app.example.com')
  })

  it('without preserve_host no X-Forwarded-Host is sent', async () => {
    const { check, path } = setup(ALICE)
    await allowed(check, { headers: { 'x-forwarded-host': 'evil.example' } })
    expect(received(path).headers['x-forwarded-host']).toBeUndefined()
  })
})

describe('the answer (fail closed)', () => {
  it('200 with a subject: sets subject and extra', async () => {
    const { check } = setup(ALICE)
    const s = await allowed(check)
    expect(s.subject).toBe('alice')
    expect(s.extra).toEqual({ role: 'admin' })
  })

  it('Kratos /sessions/whoami: subject_from identity.id, extra_from @this', async () => {
    const whoami = {
      id: 'sess-1',
      active: true,
      identity: { id: '9f425a8d-7efc-4768-8f23-7647a74fdf13', traits: { email: 'alice@example.com' } },
    }
    const { check } = setup({ kind: 'json', body: whoami }, { subject_from: 'identity.id', extra_from: '@this' })
    const s = await allowed(check)
    expect(s.subject).toBe('9f425a8d-7efc-4768-8f23-7647a74fdf13')
    expect(s.extra).toEqual(whoami)
  })

  it.each([
    { name: 'missing', body: { subject: 'alice' } },
    { name: 'a string', body: { subject: 'alice', extra: 'x' } },
    { name: 'an array', body: { subject: 'alice', extra: ['x'] } },
    { name: 'null', body: { subject: 'alice', extra: null } },
  ])('extra that is $name becomes {}', async ({ body }) => {
    const { check } = setup({ kind: 'json', body })
    expect((await allowed(check)).extra).toEqual({})
  })

  const denials: { name: string; mode: StubMode; code: string; reason: string }[] = [
    { name: '200 {} (Oathkeeper: authenticated as "")', mode: { kind: 'json', body: {} }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 {"subject":""}', mode: { kind: 'json', body: { subject: '' } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 {"subject":123}', mode: { kind: 'json', body: { subject: 123 } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 {"subject":null}', mode: { kind: 'json', body: { subject: null } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 {"subject":["alice"]}', mode: { kind: 'json', body: { subject: ['alice'] } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 {"subject":{"id":"alice"}}', mode: { kind: 'json', body: { subject: { id: 'alice' } } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 subject with CR/LF (A21)', mode: { kind: 'json', body: { subject: 'alice\r\nx-roles: admin' } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 subject with NUL', mode: { kind: 'json', body: { subject: 'alice\u0000' } }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_subject' },
    { name: '200 HTML login page', mode: 'html', code: 'ERR_UNAUTHENTICATED', reason: 'invalid_session_response' },
    { name: '200 invalid JSON', mode: 'garbage', code: 'ERR_UNAUTHENTICATED', reason: 'invalid_session_response' },
    { name: '200 a JSON array', mode: { kind: 'json', body: [{ subject: 'alice' }] }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_session_response' },
    { name: '200 a JSON string', mode: { kind: 'json', body: 'alice' }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_session_response' },
    { name: '200 JSON null', mode: { kind: 'json', body: null }, code: 'ERR_UNAUTHENTICATED', reason: 'invalid_session_response' },
    { name: '401', mode: { kind: 'json', status: 401, body: { error: 'no session' } }, code: 'ERR_UNAUTHENTICATED', reason: 'session_invalid' },
    { name: '403', mode: { kind: 'json', status: 403, body: { error: 'forbidden' } }, code: 'ERR_UNAUTHENTICATED', reason: 'session_invalid' },
    { name: '404', mode: { kind: 'json', status: 404, body: {} }, code: 'ERR_UNAUTHENTICATED', reason: 'session_check_rejected' },
    { name: '204', mode: { kind: 'custom', handle: (_r, res) => void res.writeHead(204).end() }, code: 'ERR_UNAUTHENTICATED', reason: 'session_check_rejected' },
    { name: '201 with a subject', mode: { kind: 'json', status: 201, body: { subject: 'alice' } }, code: 'ERR_UNAUTHENTICATED', reason: 'session_check_rejected' },
    { name: '500 (Oathkeeper: 401)', mode: { kind: '5xx', status: 500 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_server_error' },
    { name: '502', mode: { kind: '5xx', status: 502 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_server_error' },
    { name: '503', mode: '5xx', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_server_error' },
    { name: 'a connection reset (Oathkeeper: 403)', mode: 'reset', code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_reset' },
    { name: 'a 5 MiB body', mode: { kind: 'huge', mib: 5 }, code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_too_large' },
  ]
  it.each(denials)('$name → $code ($reason)', async ({ mode, code, reason }) => {
    const { check } = setup(mode)
    const err = await denied(check)
    expect({ code: err.code, reason: err.reason }).toEqual({ code, reason })
  })

  it('302 → 200 HTML: the redirect is not followed, deny 401 (A43)', async () => {
    const login = freshPath('/login')
    stub.setMode(login, 'html')
    const { check } = setup({ kind: 'redirect', location: login })
    const err = await denied(check)
    expect({ code: err.code, reason: err.reason }).toEqual({ code: 'ERR_UNAUTHENTICATED', reason: 'session_check_redirect' })
    expect(stub.hitsFor(login)).toBe(0)
  })

  it('429 → 429 with Retry-After and X-RateLimit-* copied', async () => {
    const { check } = setup({ kind: 'json', status: 429, body: {}, headers: { 'retry-after': '7', 'x-ratelimit-remaining': '0', 'x-other': 'no' } })
    const err = await denied(check)
    expect(err.code).toBe('ERR_TOO_MANY_REQUESTS')
    expect(err.reason).toBe('upstream_rate_limited')
    expect(err.headers).toEqual([
      ['Retry-After', '7'],
      ['X-RateLimit-Remaining', '0'],
    ])
  })

  it('429 without Retry-After, or with an implausible one, copies nothing', async () => {
    const { check } = setup({ kind: 'json', status: 429, body: {}, headers: { 'retry-after': 'x'.repeat(500) } })
    const err = await denied(check)
    expect(err.code).toBe('ERR_TOO_MANY_REQUESTS')
    expect(err.headers).toEqual([])
  })

  it.each<{ name: string; mode: StubMode }>([
    { name: 'an endpoint that never answers', mode: 'hang' },
    { name: 'an endpoint slower than the deadline', mode: { kind: 'slow', delayMs: 2_000, then: ALICE } },
    { name: 'a body that never ends', mode: { kind: 'never-ending', intervalMs: 10 } },
  ])('$name → 503 upstream_timeout within the outbound deadline', async ({ mode }) => {
    const { check } = setup(mode, {}, { http: strict })
    const started = performance.now()
    const err = await denied(check)
    const ms = performance.now() - started
    expect({ code: err.code, reason: err.reason }).toEqual({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_timeout' })
    expect(ms).toBeLessThan(TIMEOUT_MS + SLACK_MS)
  })

  it('the handler timeout overrides the outbound deadline', async () => {
    const { check } = setup('hang', { timeout: '40ms' })
    const started = performance.now()
    expect((await denied(check)).reason).toBe('upstream_timeout')
    expect(performance.now() - started).toBeLessThan(40 + SLACK_MS / 2)
  })

  it('connection refused → 503 upstream_connect', async () => {
    const dead = await startStub()
    const url = dead.url('/sessions/whoami')
    await dead.close()
    const check = createSessionCheck(SharedConfig.parse({ check_session_url: url, preserve_path: true }), deps(), {
      handlerId: 'cookie_session',
      carriers: ['cookie'],
    })
    const err = await denied(check)
    expect({ code: err.code, reason: err.reason }).toEqual({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_connect' })
  })

  it('a Check cancelled mid-call stops waiting at once → 503 upstream_aborted', async () => {
    for (const cache of [false, true]) {
      const { check } = setup('hang', { timeout: '5s', cache: { enabled: cache } })
      const ac = new AbortController()
      setTimeout(() => ac.abort(), 20)
      const started = performance.now()
      const err = await denied(check, {}, ac.signal)
      expect({ code: err.code, reason: err.reason }).toEqual({ code: 'ERR_UPSTREAM_UNAVAILABLE', reason: 'upstream_aborted' })
      expect(performance.now() - started).toBeLessThan(20 + SLACK_MS)
    }
  })
})

describe('cache', () => {
  /** A clock the test moves by hand. */
  function clock() {
    let t = 1_700_000_000_000
    return { now: () => t, advance: (ms: number) => void (t += ms) }
  }

  it('disabled (default): every request calls the endpoint', async () => {
    const { check, path } = setup(ALICE)
    await allowed(check)
    await allowed(check)
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('a hit avoids the second call; another cookie is another entry', async () => {
    const { check, path } = setup(ALICE, { cache: { enabled: true } })
    expect((await allowed(check)).subject).toBe('alice')
    expect((await allowed(check)).subject).toBe('alice')
    expect(stub.hitsFor(path)).toBe(1)
    await allowed(check, { headers: { cookie: 'session=other' } })
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('a positive entry lives exactly cache.ttl (the revocation window), reads do not extend it', async () => {
    const c = clock()
    const { check, path } = setup(ALICE, { cache: { enabled: true, ttl: '10s' } }, { now: c.now })
    await allowed(check)
    for (let i = 0; i < 4; i++) {
      c.advance(2_400)
      await allowed(check)
    }
    expect(stub.hitsFor(path)).toBe(1)
    c.advance(400) // 10 000 ms after the store
    await allowed(check)
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('401 is cached as a negative for negative_ttl, then asked again', async () => {
    const c = clock()
    const { check, path } = setup({ kind: 'json', status: 401, body: {} }, { cache: { enabled: true, negative_ttl: '5s' } }, { now: c.now })
    expect((await denied(check)).reason).toBe('session_invalid')
    c.advance(4_999)
    expect((await denied(check)).reason).toBe('session_invalid')
    expect(stub.hitsFor(path)).toBe(1)
    c.advance(1)
    await denied(check)
    expect(stub.hitsFor(path)).toBe(2)
  })

  it.each<{ name: string; mode: StubMode }>([
    { name: '503', mode: '5xx' },
    { name: 'a timeout', mode: { kind: 'slow', delayMs: 2_000, then: ALICE } },
    { name: '429', mode: { kind: 'json', status: 429, body: {} } },
    { name: '200 {}', mode: { kind: 'json', body: {} } },
    { name: '200 HTML', mode: 'html' },
    { name: 'a redirect', mode: { kind: 'redirect', location: '/login' } },
  ])('$name is never cached: the next request asks again', async ({ mode }) => {
    const { check, path } = setup(mode, { cache: { enabled: true }, timeout: '100ms' })
    await denied(check)
    await denied(check)
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('a session that recovers after a 503 is served fresh (the failure left nothing behind)', async () => {
    const { check, path } = setup({ kind: 'sequence', steps: ['5xx', ALICE] }, { cache: { enabled: true } })
    expect((await denied(check)).code).toBe('ERR_UPSTREAM_UNAVAILABLE')
    expect((await allowed(check)).subject).toBe('alice')
    expect((await allowed(check)).subject).toBe('alice')
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('200 concurrent checks of one cookie make one call (coalescing) and all succeed', async () => {
    const { check, path } = setup({ kind: 'slow', delayMs: 50, then: ALICE }, { cache: { enabled: true } })
    const all = await Promise.all(Array.from({ length: 200 }, () => allowed(check)))
    expect(stub.hitsFor(path)).toBe(1)
    expect(new Set(all.map((s) => s.subject))).toEqual(new Set(['alice']))
  })

  it('200 concurrent checks sharing a failing call all deny 503, and the next one calls again', async () => {
    const { check, path } = setup({ kind: 'slow', delayMs: 50, then: '5xx' }, { cache: { enabled: true } })
    const all = await Promise.all(Array.from({ length: 200 }, () => denied(check)))
    expect(stub.hitsFor(path)).toBe(1)
    expect(new Set(all.map((e) => e.reason))).toEqual(new Set(['upstream_server_error']))
    await denied(check)
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('the key holds every forwarded header value, and no header that is not forwarded', async () => {
    const { check, path } = setup(ALICE, { cache: { enabled: true }, forward_http_headers: ['X-Tenant'] })
    await allowed(check, { headers: { 'x-tenant': 'a', 'x-request-id': '1', traceparent: 'x' } })
    await allowed(check, { headers: { 'x-tenant': 'a', 'x-request-id': '2', traceparent: 'y' } })
    expect(stub.hitsFor(path)).toBe(1)
    await allowed(check, { headers: { 'x-tenant': 'b' } })
    expect(stub.hitsFor(path)).toBe(2)
    await allowed(check) // x-tenant absent is not x-tenant ""
    await allowed(check, { headers: { 'x-tenant': '' } })
    expect(stub.hitsFor(path)).toBe(4)
  })

  it('the key holds the URL as built: with preserve_path false, another request path is another entry', async () => {
    const base = freshPath('')
    stub.setMode(`${base}/a`, ALICE)
    stub.setMode(`${base}/b`, { kind: 'json', status: 401, body: {} })
    const { check } = setup(undefined, { check_session_url: stub.url(`${base}/whoami`), preserve_path: false, cache: { enabled: true } })
    await allowed(check, { path: `${base}/a` })
    expect((await denied(check, { path: `${base}/b` })).reason).toBe('session_invalid')
    await allowed(check, { path: `${base}/a` })
    expect(stub.hitsFor(`${base}/a`)).toBe(1)
  })

  it('the key holds the method and the forwarded host', async () => {
    const { check, path } = setup(ALICE, { cache: { enabled: true }, preserve_host: true })
    await allowed(check, { host: 'a.example.com' })
    await allowed(check, { host: 'a.example.com' })
    await allowed(check, { host: 'b.example.com' })
    expect(stub.hitsFor(path)).toBe(2)
  })

  it('cached values are frozen; each session gets its own top-level extra', async () => {
    const { check } = setup({ kind: 'json', body: { subject: 'alice', extra: { roles: ['a'], org: { id: 1 } } } }, { cache: { enabled: true } })
    const first = await allowed(check)
    first.extra['added'] = true
    expect(() => (first.extra['roles'] as string[]).push('admin')).toThrow(TypeError)
    const second = await allowed(check)
    expect(second.extra).toEqual({ roles: ['a'], org: { id: 1 } })
    expect(second.extra).not.toBe(first.extra)
  })

  it('rules with the same config share one cache; another config gets its own', async () => {
    const path = freshPath()
    stub.setMode(path, ALICE)
    const d = deps()
    const cfg = SharedConfig.parse({ check_session_url: stub.url(path), preserve_path: true, cache: { enabled: true } })
    const a = createSessionCheck(cfg, d, { handlerId: 'cookie_session', carriers: ['cookie'] })
    const b = createSessionCheck(cfg, d, { handlerId: 'cookie_session', carriers: ['cookie'] })
    const other = createSessionCheck({ ...cfg, subject_from: 'extra.role' }, d, { handlerId: 'cookie_session', carriers: ['cookie'] })
    await allowed(a)
    await allowed(b)
    expect(stub.hitsFor(path)).toBe(1)
    expect((await allowed(other)).subject).toBe('admin')
    expect(stub.hitsFor(path)).toBe(2)
    expect(d.caches.names()).toHaveLength(2)
  })
})
