/**
 * The HTTP API (`serve.api`): health probes and Oathkeeper's decisions API, served by a real
 * node:http server against the rule set holder of an in-process Portcullis, and spoken to with
 * node:http so any header, Host and raw target can be sent. Parity with the gRPC Check is asserted
 * request by request: same pipeline, same rule set, same caches, same answers.
 */
import { request, type OutgoingHttpHeaders } from 'node:http'
import type { ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkClient, httpRequest, type CheckClient } from '../helpers/check-client.js'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { startStub, type RecordedRequest, type Stub } from '../helpers/stub-server.js'
import { ApiConfigSchema, compileTrustedProxies, parseCidr } from '../../src/server/http-api-config.js'
import { startHttpApi, type DecisionEvent, type HttpApi, type Readiness } from '../../src/server/http-api.js'
import { HEADERS_TO_REMOVE, isDecisionsPath, toDecisionView } from '../../src/server/decisions.js'
import type { RuleSetHolder } from '../../src/server/grpc.js'
import { PipelineError } from '../../src/pipeline/errors.js'
import { InFlight } from '../../src/server/lifecycle.js'
import { Readiness as ReadinessState } from '../../src/server/readiness.js'
import { shedResponse } from '../../src/observability/memory-guard.js'

const HOST = 'app.example.com'
const U = `<http|https>://${HOST}`
const anon = [{ handler: 'anonymous' }]
const allow = { handler: 'allow' }
const noop = [{ handler: 'noop' }]
const xUser = { handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}' } } }

const RULES = [
  {
    id: 'public',
    match: { url: `${U}/public/<.*>`, methods: ['GET', 'HEAD'] },
    authenticators: anon,
    authorizer: allow,
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}', 'X-Portcullis-Rule': 'public' } } }],
  },
  { id: 'static', match: { url: `${U}/static/<.*>`, methods: ['GET'] }, authenticators: anon, authorizer: allow, mutators: noop },
  { id: 'admin', match: { url: `${U}/admin/<.*>`, methods: ['GET', 'POST'] }, authenticators: anon, authorizer: { handler: 'deny' }, mutators: noop },
  {
    id: 'api',
    match: { url: `${U}/api/<.*>`, methods: ['GET', 'POST'] },
    authenticators: [{ handler: 'unauthorized' }],
    authorizer: allow,
    mutators: noop,
    errors: [{ handler: 'www_authenticate', config: { realm: 'Portcullis test' } }],
  },
  {
    id: 'account',
    match: { url: `${U}/account/<.*>`, methods: ['GET'] },
    authenticators: [{ handler: 'unauthorized' }],
    authorizer: allow,
    mutators: noop,
    errors: [{ handler: 'redirect', config: { to: 'https://login.example.com/login', return_to_query_param: 'return_to' } }],
  },
  { id: 'secure', match: { url: `https://${HOST}/secure/<.*>`, methods: ['GET'] }, authenticators: anon, authorizer: allow, mutators: [xUser] },
  { id: 'root', match: { url: `${U}/`, methods: ['GET'] }, authenticators: anon, authorizer: allow, mutators: noop },
  { id: 'write', match: { url: `${U}/write/<.*>`, methods: ['POST', 'PUT'] }, authenticators: anon, authorizer: allow, mutators: [xUser] },
  {
    id: 'session',
    match: { url: `${U}/session/<.*>`, methods: ['GET'] },
    authenticators: [{ handler: 'cookie_session' }],
    authorizer: allow,
    mutators: [xUser],
  },
  {
    id: 'utf8',
    match: { url: `${U}/utf8/<.*>`, methods: ['GET'] },
    authenticators: anon,
    authorizer: allow,
    mutators: [{ handler: 'header', config: { headers: { 'X-Name': 'Zoë ✓' } } }],
  },
]

// ---------------------------------------------------------------------------------------------
// Harness

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
}

/**
 * One HTTP/1.1 request with node:http. `headers` may be an object or a flat raw list (to repeat a
 * header); Host is only sent when given.
 */
function send(
  port: number,
  path: string,
  o: { method?: string; headers?: OutgoingHttpHeaders | string[]; body?: string | Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: o.headers ?? {}, setHost: false, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.setTimeout(10_000, () => req.destroy(new Error(`${path} timed out`)))
    req.on('error', reject)
    req.end(o.body)
  })
}

/** The Oathkeeper / nginx / Traefik shape: `/decisions` + X-Forwarded-*. */
function forwarded(uri: string, o: { method?: string; proto?: string; host?: string; extra?: Record<string, string> } = {}): Record<string, string> {
  return {
    host: '127.0.0.1',
    'x-forwarded-method': o.method ?? 'GET',
    'x-forwarded-proto': o.proto ?? 'https',
    'x-forwarded-host': o.host ?? HOST,
    'x-forwarded-uri': uri,
    ...o.extra,
  }
}

function json(r: Reply): { error: { code: number; reason?: string; message?: string } } {
  expect(r.headers['content-type']).toMatch(/^application\/json/)
  return JSON.parse(r.body) as { error: { code: number; reason?: string; message?: string } }
}

/** Whoami stub: valid / hang sessions. */
function whoami(r: RecordedRequest, res: ServerResponse): void {
  const cookie = String(r.headers['cookie'] ?? '')
  if (cookie.includes('session=hang')) return
  res.writeHead(cookie.includes('session=valid') ? 200 : 401, { 'content-type': 'application/json' })
  res.end(JSON.stringify(cookie.includes('session=valid') ? { identity: { id: 'user-42' } } : { error: 'no session' }))
}

let stub: Stub
let s: Started
let grpc: CheckClient
let api: HttpApi
const events: DecisionEvent[] = []
let readiness: Readiness = { ready: true, reasons: [] }

beforeAll(async () => {
  stub = await startStub()
  stub.setMode('/sessions/whoami', whoami)
  s = await startWith(
    {
      ...ALL_HANDLERS,
      authenticators: {
        ...ALL_HANDLERS.authenticators,
        cookie_session: {
          enabled: true,
          config: { check_session_url: stub.url('/sessions/whoami'), preserve_path: true, subject_from: 'identity.id', cache: { enabled: true } },
        },
      },
      outbound: { timeout: '2s' },
    },
    RULES,
  )
  grpc = checkClient(s.port)
  api = await startHttpApi({
    holder: s.app.holder,
    log: s.app.log,
    config: ApiConfigSchema.parse({ port: 0 }),
    readiness: () => readiness,
    onDecision: (e) => void events.push(e),
  })
}, 30_000)

afterAll(async () => {
  grpc?.close()
  await api?.stop(1000)
  await s?.stop()
  await stub?.close()
})

// ---------------------------------------------------------------------------------------------

describe('config (serve.api)', () => {
  it('defaults: 127.0.0.1:4456, loopback trusted, Oathkeeper-like timeouts', () => {
    const c = ApiConfigSchema.parse({})
    expect(c).toEqual({
      host: '127.0.0.1',
      port: 4456,
      trusted_proxies: ['127.0.0.0/8', '::1/128'],
      max_check_duration_ms: 1000,
      max_header_bytes: 32768,
      timeout: { read: 5000, write: 10_000, idle: 120_000 },
    })
  })

  it.each([
    [{ trusted_proxies: ['10.0.0.0/33'] }, 'trusted_proxies'],
    [{ trusted_proxies: ['not-an-ip'] }, 'trusted_proxies'],
    [{ trusted_proxies: ['fe80::1%eth0/64'] }, 'trusted_proxies'],
    [{ trusted_proxies: ['10.0.0.0/08'] }, 'trusted_proxies'],
    [{ port: 70000 }, 'port'],
    [{ timeout: { read: '5' } }, 'timeout'],
    [{ timeout: { read: '1ms' } }, 'timeout.read'],
    [{ timeout: { idle: '2h' } }, 'timeout.idle'],
    [{ max_check_duration_ms: 20_000 }, 'timeout.write'],
    [{ max_header_bytes: 100 }, 'max_header_bytes'],
    [{ tls: {} }, ''],
  ])('rejects %j', (input, path) => {
    const r = ApiConfigSchema.safeParse(input)
    expect(r.success).toBe(false)
    expect(r.error!.issues[0]!.path.join('.')).toContain(path)
  })

  it('CIDRs and single addresses; IPv4-mapped IPv6 peers are checked as IPv4', () => {
    expect(parseCidr('10.1.2.3')).toEqual({ address: '10.1.2.3', prefix: 32, family: 'ipv4' })
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' })
    const t = compileTrustedProxies(['127.0.0.0/8', '::1/128', '10.1.2.3'])
    expect(t('127.0.0.1')).toBe(true)
    expect(t('127.255.0.9')).toBe(true)
    expect(t('::ffff:127.0.0.1')).toBe(true)
    expect(t('::1')).toBe(true)
    expect(t('10.1.2.3')).toBe(true)
    expect(t('10.1.2.4')).toBe(false)
    expect(t('::ffff:10.1.2.4')).toBe(false)
    expect(t('::2')).toBe(false)
    expect(t(undefined)).toBe(false)
    expect(t('garbage')).toBe(false)
    expect(compileTrustedProxies([])('127.0.0.1')).toBe(false)
  })
})

describe('health', () => {
  it('/health/alive → 200 {"status":"ok"} (GET and HEAD); other methods 405', async () => {
    const r = await send(api.port, '/health/alive', { headers: { host: 'x' } })
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body)).toEqual({ status: 'ok' })
    expect((await send(api.port, '/health/alive', { method: 'HEAD', headers: { host: 'x' } })).status).toBe(200)
    const post = await send(api.port, '/health/alive', { method: 'POST', headers: { host: 'x' } })
    expect(post.status).toBe(405)
    expect(post.headers['allow']).toBe('GET, HEAD')
  })

  it('/health/ready follows the readiness state: 200 when ready, 503 with the reasons otherwise', async () => {
    expect((await send(api.port, '/health/ready?x=1', { headers: { host: 'x' } })).status).toBe(200)
    readiness = { ready: false, reasons: ['draining: shutting down', 'memory_guard'] }
    try {
      const r = await send(api.port, '/health/ready', { headers: { host: 'x' } })
      expect(r.status).toBe(503)
      expect(r.headers['cache-control']).toBe('no-store')
      expect(JSON.parse(r.body)).toEqual({ errors: { draining: 'shutting down', memory_guard: 'memory_guard' } })
      // Liveness does not depend on readiness.
      expect((await send(api.port, '/health/alive', { headers: { host: 'x' } })).status).toBe(200)
    } finally {
      readiness = { ready: true, reasons: [] }
    }
  })

  it('a readiness check that throws is "not ready", not a crash', async () => {
    const holder: RuleSetHolder = { current: s.app.holder.current }
    const broken = await startHttpApi({
      holder,
      log: s.app.log,
      config: ApiConfigSchema.parse({ port: 0 }),
      readiness: () => {
        throw new Error('boom')
      },
    })
    try {
      const r = await send(broken.port, '/health/ready', { headers: { host: 'x' } })
      expect(r.status).toBe(503)
      expect(JSON.parse(r.body)).toEqual({ errors: { readiness_check: 'the readiness check failed' } })
    } finally {
      await broken.stop(500)
    }
  })

  it('without a readiness function: ready iff a rule set with rules is loaded; no rule set → decisions 503', async () => {
    const holder: RuleSetHolder = { current: undefined }
    const bare = await startHttpApi({ holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0 }) })
    try {
      const r = await send(bare.port, '/health/ready', { headers: { host: 'x' } })
      expect(r.status).toBe(503)
      expect(JSON.parse(r.body)).toEqual({ errors: { rules_loaded: 'no access rules are loaded' } })
      const d = await send(bare.port, '/decisions/public/x', { headers: { host: HOST } })
      expect(d.status).toBe(503)
      expect(json(d).error.reason).toBe('not_ready')
      holder.current = s.app.holder.current
      expect((await send(bare.port, '/health/ready', { headers: { host: 'x' } })).status).toBe(200)
      expect((await send(bare.port, '/decisions/public/x', { headers: { host: HOST } })).status).toBe(200)
    } finally {
      await bare.stop(500)
    }
  })

  it('unknown routes → 404 JSON; /decisionsX is not the decisions route', async () => {
    for (const path of ['/', '/health', '/decisionsX/public/x', '//decisions/public/x', '/Decisions/public/x']) {
      const r = await send(api.port, path, { headers: { host: HOST } })
      expect(r.status, path).toBe(404)
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 404 } })
    }
    expect(isDecisionsPath('/decisions')).toBe(true)
    expect(isDecisionsPath('/decisions/')).toBe(true)
    expect(isDecisionsPath('/decisionsX')).toBe(false)
  })
})

describe('decisions: the request decided on', () => {
  it('Envoy http_service shape: original method, /decisions + original path and query, Host', async () => {
    const r = await send(api.port, '/decisions/public/x?a=1', { headers: { host: HOST, 'x-forwarded-proto': 'https' } })
    expect(r.status).toBe(200)
    expect(r.body).toBe('')
    expect(r.headers['x-user']).toBe('anonymous')
    expect(r.headers['x-portcullis-rule']).toBe('public')
    // X-Name is managed too (rule utf8 sets it); this rule does not, so the proxy must remove it.
    expect(r.headers[HEADERS_TO_REMOVE]).toBe('x-name')
  })

  it('Oathkeeper / nginx shape: /decisions + X-Forwarded-Method/-Proto/-Host/-Uri', async () => {
    const r = await send(api.port, '/decisions', { headers: forwarded('/public/x') })
    expect(r.status).toBe(200)
    expect(r.headers['x-user']).toBe('anonymous')
  })

  it('the method comes from X-Forwarded-Method (nginx subrequests are always GET)', async () => {
    expect((await send(api.port, '/decisions', { headers: forwarded('/write/x', { method: 'POST' }) })).status).toBe(200)
    expect((await send(api.port, '/decisions', { headers: forwarded('/write/x', { method: 'GET' }) })).status).toBe(404)
    // Without the header, the request's own method (Envoy re-issues the original method).
    expect((await send(api.port, '/decisions/write/x', { method: 'PUT', headers: { host: HOST } })).status).toBe(200)
  })

  it('the scheme comes from X-Forwarded-Proto, else http', async () => {
    expect((await send(api.port, '/decisions/secure/x', { headers: { host: HOST } })).status).toBe(404)
    expect((await send(api.port, '/decisions/secure/x', { headers: { host: HOST, 'x-forwarded-proto': 'https' } })).status).toBe(200)
    expect((await send(api.port, '/decisions', { headers: forwarded('/secure/x', { proto: 'HTTPS' }) })).status).toBe(200)
  })

  it('the host comes from X-Forwarded-Host, else Host; the default port is dropped, others kept', async () => {
    expect((await send(api.port, '/decisions/public/x', { headers: { host: 'other.example.com', 'x-forwarded-host': HOST } })).status).toBe(200)
    expect((await send(api.port, '/decisions/public/x', { headers: { host: HOST, 'x-forwarded-host': 'other.example.com' } })).status).toBe(404)
    expect((await send(api.port, '/decisions', { headers: forwarded('/public/x', { host: `${HOST}:443` }) })).status).toBe(200)
    expect((await send(api.port, '/decisions', { headers: forwarded('/public/x', { host: `${HOST}:8443` }) })).status).toBe(404)
  })

  it('/decisions alone is the root path; /decisions?q keeps the query', async () => {
    expect((await send(api.port, '/decisions', { headers: { host: HOST } })).status).toBe(200)
    expect((await send(api.port, '/decisions/', { headers: { host: HOST } })).status).toBe(200)
    expect((await send(api.port, '/decisions?x=1', { headers: { host: HOST } })).status).toBe(200)
  })

  it("X-Forwarded-Uri keeps ITS query (Oathkeeper drops it): the redirect's return_to proves it", async () => {
    const r = await send(api.port, '/decisions', { headers: forwarded('/account/settings?tab=keys&x=%20y') })
    expect(r.status).toBe(302)
    const location = new URL(String(r.headers['location']))
    expect(location.origin + location.pathname).toBe('https://login.example.com/login')
    expect(location.searchParams.get('return_to')).toBe(`https://${HOST}/account/settings?tab=keys&x=%20y`)
    // With X-Forwarded-Uri, a query on the /decisions request itself (nginx never sends one) is ignored.
    const r2 = await send(api.port, '/decisions?evil=1', { headers: forwarded('/account/settings') })
    expect(new URL(String(r2.headers['location'])).searchParams.get('return_to')).toBe(`https://${HOST}/account/settings`)
    // Envoy shape: the query of the /decisions request is the original one.
    const r3 = await send(api.port, '/decisions/account/a?b=c', { headers: { host: HOST, 'x-forwarded-proto': 'https' } })
    expect(new URL(String(r3.headers['location'])).searchParams.get('return_to')).toBe(`https://${HOST}/account/a?b=c`)
  })

  it('the same target in the path and in X-Forwarded-Uri (nginx proxy_pass …/decisions$request_uri) is accepted', async () => {
    const r = await send(api.port, '/decisions/public/x?q=1', { headers: forwarded('/public/x?q=1') })
    expect(r.status).toBe(200)
  })

  it('paths are canonicalised exactly as for gRPC (dot segments resolved, trailing slash removed)', async () => {
    expect((await send(api.port, '/decisions', { headers: forwarded('/static/../public/./x/') })).status).toBe(200)
    expect((await send(api.port, '/decisions', { headers: forwarded('/public/%2e%2e/admin/x') })).status).toBe(403)
  })
})

describe('decisions: answers', () => {
  it('deny 403: the error handler status, JSON body', async () => {
    const r = await send(api.port, '/decisions', { headers: forwarded('/admin/x') })
    expect(r.status).toBe(403)
    const e = json(r).error
    expect(e.code).toBe(403)
    expect(e.reason).toBeTypeOf('string') // verbose json handler (ALL_HANDLERS)
  })

  it('deny 401 with WWW-Authenticate and the text body', async () => {
    const r = await send(api.port, '/decisions', { headers: forwarded('/api/x') })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe('Basic realm="Portcullis test"')
    expect(r.headers['content-type']).toMatch(/^text\/plain/)
    expect(r.body).toBe('Unauthorized\n')
  })

  it('no rule → 404 JSON (fallback json handler)', async () => {
    const r = await send(api.port, '/decisions', { headers: forwarded('/nothing/here') })
    expect(r.status).toBe(404)
    expect(json(r).error.code).toBe(404)
  })

  it('managed identity headers the rule does not set are listed in x-envoy-auth-headers-to-remove', async () => {
    const r = await send(api.port, '/decisions/static/app.css', { headers: { host: HOST, 'x-user': 'admin' } })
    expect(r.status).toBe(200)
    expect(r.headers['x-user']).toBeUndefined()
    expect(String(r.headers[HEADERS_TO_REMOVE]).split(', ').sort()).toEqual(['x-name', 'x-portcullis-rule', 'x-user'])
  })

  it('client look-alikes of managed headers (x_user) are added to the removals even on rules that set the header', async () => {
    const r = await send(api.port, '/decisions/public/x', { headers: { host: HOST, x_user: 'admin' } })
    expect(r.status).toBe(200)
    expect(r.headers['x-user']).toBe('anonymous')
    expect(String(r.headers[HEADERS_TO_REMOVE]).split(', ')).toContain('x_user')
  })

  it('non-ASCII header values go out as their UTF-8 bytes (as Envoy forwards them over gRPC)', async () => {
    const r = await send(api.port, '/decisions/utf8/x', { headers: { host: HOST } })
    expect(r.status).toBe(200)
    expect(Buffer.from(String(r.headers['x-name']), 'latin1').toString('utf8')).toBe('Zoë ✓')
  })

  it('HEAD decisions answer headers only', async () => {
    const r = await send(api.port, '/decisions/public/x', { method: 'HEAD', headers: { host: HOST } })
    expect(r.status).toBe(200)
    expect(r.headers['x-user']).toBe('anonymous')
  })

  it('every answer is reported once (rule, outcome, reason, status)', async () => {
    events.length = 0
    await send(api.port, '/decisions', { headers: forwarded('/admin/x') })
    await send(api.port, '/decisions', { headers: forwarded('/public/x') })
    expect(events.map((e) => [e.ruleId, e.decision, e.status])).toEqual([
      ['admin', 'deny', 403],
      ['public', 'allow', 200],
    ])
    expect(events[0]!.reason).toBeTypeOf('string')
    expect(events[1]!.durationMs).toBeGreaterThanOrEqual(0)
  })
})

describe('decisions: same pipeline and caches as gRPC', () => {
  const cases = [
    { method: 'GET', scheme: 'https', path: '/public/x?a=1' },
    { method: 'GET', scheme: 'http', path: '/static/a.css', headers: { 'x-user': 'spoof', x_user: 'spoof' } },
    { method: 'POST', scheme: 'https', path: '/admin/x' },
    { method: 'GET', scheme: 'https', path: '/api/x' },
    { method: 'GET', scheme: 'https', path: '/account/x?next=%2Fhome' },
    { method: 'GET', scheme: 'http', path: '/secure/x' },
    { method: 'GET', scheme: 'https', path: '/nothing' },
    { method: 'DELETE', scheme: 'https', path: '/public/x' },
    { method: 'GET', scheme: 'https', path: '/public/..%2Fadmin' },
    { method: 'GET', scheme: 'https', path: '/session/x', headers: { cookie: 'session=valid' } },
    { method: 'GET', scheme: 'https', path: '/session/x', headers: { cookie: 'session=nope' } },
  ]
  it.each(cases)('$method $scheme $path: the HTTP answer equals the gRPC denied/ok response', async (c) => {
    const g = await grpc.check(httpRequest({ method: c.method, scheme: c.scheme, host: HOST, path: c.path, headers: c.headers ?? {} }))
    const h = await send(api.port, '/decisions', {
      headers: { ...forwarded(c.path, { method: c.method, proto: c.scheme }), ...(c.headers ?? {}) },
    })
    if (g.status?.code === 0) {
      expect(h.status).toBe(200)
      for (const o of g.okResponse!.headers) expect(h.headers[o.header!.key]).toBe(o.header!.value)
      const removed = g.okResponse!.headersToRemove
      if (removed.length === 0) expect(h.headers[HEADERS_TO_REMOVE]).toBeUndefined()
      else expect(String(h.headers[HEADERS_TO_REMOVE]).split(', ')).toEqual(removed)
    } else {
      const d = g.deniedResponse!
      expect(h.status).toBe(d.status!.code)
      for (const o of d.headers) expect(h.headers[o.header!.key]).toBe(o.header!.value)
      // A request rejected before the pipeline (400) names the offending header over HTTP;
      // every pipeline answer (error handlers) is byte for byte the same.
      if (h.status !== 400) expect(h.body).toBe(d.body)
    }
  })

  it('a session cached by a gRPC Check is a cache hit for the HTTP decision (one cache)', async () => {
    const before = stub.hitsFor('/sessions/whoami')
    const g = await grpc.check(httpRequest({ host: HOST, path: '/session/cached', headers: { cookie: 'session=valid; n=1' } }))
    expect(g.status?.code).toBe(0)
    expect(stub.hitsFor('/sessions/whoami')).toBe(before + 1)
    const h = await send(api.port, '/decisions', { headers: { ...forwarded('/session/cached'), cookie: 'session=valid; n=1' } })
    expect(h.status).toBe(200)
    expect(h.headers['x-user']).toBe('user-42')
    expect(stub.hitsFor('/sessions/whoami')).toBe(before + 1)
  })

  it('a reload (holder.current swapped) applies to the next decision', async () => {
    const holder = s.app.holder
    const old = holder.current
    try {
      holder.current = undefined
      expect((await send(api.port, '/decisions', { headers: forwarded('/public/x') })).status).toBe(503)
    } finally {
      holder.current = old
    }
    expect((await send(api.port, '/decisions', { headers: forwarded('/public/x') })).status).toBe(200)
  })

  it("Envoy's x-envoy-expected-rq-timeout-ms shortens the deadline: a hung session store → 503 before Envoy gives up", async () => {
    const started = performance.now()
    const r = await send(api.port, '/decisions/session/x', {
      headers: { host: HOST, cookie: 'session=hang', 'x-envoy-expected-rq-timeout-ms': '150' },
    })
    const ms = performance.now() - started
    expect(r.status).toBe(503)
    expect(ms).toBeGreaterThanOrEqual(140)
    expect(ms).toBeLessThan(1000) // max_check_duration_ms (1 s) and the outbound timeout (2 s) are longer
  })
})

describe('decisions: trust in forwarded headers', () => {
  let untrusted: HttpApi
  beforeAll(async () => {
    untrusted = await startHttpApi({
      holder: s.app.holder,
      log: s.app.log,
      config: ApiConfigSchema.parse({ port: 0, trusted_proxies: ['10.0.0.0/8'] }),
    })
  })
  afterAll(async () => {
    await untrusted?.stop(500)
  })

  it.each([
    ['X-Forwarded-Uri', { 'x-forwarded-uri': '/public/x' }],
    ['X-Forwarded-Host', { 'x-forwarded-host': HOST }],
    ['X-Forwarded-Proto', { 'x-forwarded-proto': 'https' }],
    ['X-Forwarded-Method', { 'x-forwarded-method': 'GET' }],
    ['X-Forwarded-For', { 'x-forwarded-for': '1.2.3.4' }],
    ['X-Forwarded-Prefix', { 'x-forwarded-prefix': '/x' }],
    ['Forwarded', { forwarded: 'for=1.2.3.4;proto=https' }],
  ])('from an untrusted peer, %s → 403 untrusted_forwarded_headers, not decided on', async (_name, extra) => {
    const r = await send(untrusted.port, '/decisions/public/x', { headers: { host: HOST, ...extra } })
    expect(r.status).toBe(403)
    expect(json(r).error).toMatchObject({ code: 403, reason: 'untrusted_forwarded_headers' })
  })

  it('from an untrusted peer without forwarded headers, the request itself is decided on', async () => {
    const r = await send(untrusted.port, '/decisions/public/x', { headers: { host: HOST } })
    expect(r.status).toBe(200)
    expect(r.headers['x-user']).toBe('anonymous')
  })

  it('an empty trusted_proxies list trusts nobody, loopback included', async () => {
    const none = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0, trusted_proxies: [] }) })
    try {
      expect((await send(none.port, '/decisions', { headers: forwarded('/public/x') })).status).toBe(403)
    } finally {
      await none.stop(500)
    }
  })

  it('toDecisionView: the trust check uses the TCP peer, IPv6 and IPv4-mapped included', () => {
    const t = compileTrustedProxies(['127.0.0.0/8', '::1/128'])
    const req = (peer: string | undefined) => ({ method: 'GET', url: '/decisions', rawHeaders: ['Host', 'x', 'X-Forwarded-Uri', '/a', 'X-Forwarded-Host', HOST], peer })
    expect(toDecisionView(req('::1'), t).path).toBe('/a')
    expect(toDecisionView(req('::ffff:127.0.0.1'), t).host).toBe(HOST)
    for (const peer of ['10.0.0.1', '::ffff:10.0.0.1', '::2', undefined]) {
      expect(() => toDecisionView(req(peer), t)).toThrow(PipelineError)
    }
  })

  it('the source address is the last X-Forwarded-For entry from a trusted proxy, else the peer', () => {
    const t = compileTrustedProxies(['127.0.0.0/8'])
    const base = ['Host', HOST]
    expect(toDecisionView({ method: 'GET', url: '/decisions/x', rawHeaders: base, peer: '::ffff:127.0.0.1' }, t).sourceIp).toBe('127.0.0.1')
    const xff = [...base, 'X-Forwarded-For', '6.6.6.6, 10.0.0.9', 'X-Forwarded-For', '203.0.113.7']
    expect(toDecisionView({ method: 'GET', url: '/decisions/x', rawHeaders: xff, peer: '127.0.0.1' }, t).sourceIp).toBe('203.0.113.7')
    const junk = [...base, 'X-Forwarded-For', 'unknown']
    expect(toDecisionView({ method: 'GET', url: '/decisions/x', rawHeaders: junk, peer: '127.0.0.1' }, t).sourceIp).toBeUndefined()
  })

  it('the consumed X-Forwarded-* headers and Host are not request headers of the view; pseudo-headers are', () => {
    const t = compileTrustedProxies(['127.0.0.0/8'])
    const v = toDecisionView(
      { method: 'GET', url: '/decisions', rawHeaders: ['Host', 'auth:4456', 'X-Forwarded-Uri', '/a?b', 'X-Forwarded-Host', HOST, 'X-Request-Id', 'r-1', 'Cookie', 'a=1'], peer: '127.0.0.1' },
      t,
    )
    expect(v.id).toBe('r-1')
    expect(v.query).toBe('b')
    expect(v.headers.get('host')).toBeUndefined()
    expect(v.headers.get('x-forwarded-uri')).toBeUndefined()
    expect(v.headers.get(':authority')).toBe(HOST)
    expect(v.headers.get(':path')).toBe('/a?b')
    expect(v.headers.get('cookie')).toBe('a=1')
  })
})

describe('decisions: bad input never crashes, and is never decided on', () => {
  const bad: [name: string, headers: Record<string, string> | string[], reason: string, status: number][] = [
    ['repeated X-Forwarded-Uri', ['Host', 'x', 'X-Forwarded-Uri', '/public/x', 'X-Forwarded-Uri', '/admin/x', 'X-Forwarded-Host', HOST], 'duplicate_header', 400],
    ['repeated X-Forwarded-Host', ['Host', 'x', 'X-Forwarded-Host', HOST, 'X-Forwarded-Host', 'evil.com', 'X-Forwarded-Uri', '/public/x'], 'duplicate_header', 400],
    ['repeated Host', ['Host', HOST, 'Host', 'evil.com'], 'duplicate_header', 400],
    ['X-Forwarded-Proto: ftp', forwarded('/public/x', { proto: 'ftp' }), 'invalid_scheme', 400],
    ['X-Forwarded-Proto list', forwarded('/public/x', { proto: 'https, http' }), 'invalid_scheme', 400],
    ['X-Forwarded-Method not a token', forwarded('/public/x', { method: 'GE(T' }), 'invalid_method', 400],
    ['X-Forwarded-Host with a path', forwarded('/public/x', { host: 'evil.com/x' }), 'invalid_host', 400],
    ['X-Forwarded-Host with userinfo', forwarded('/public/x', { host: 'a@evil.com' }), 'invalid_host', 400],
    ['X-Forwarded-Host list', forwarded('/public/x', { host: `${HOST}, evil.com` }), 'invalid_host', 400],
    ['X-Forwarded-Uri absolute-form', forwarded('http://evil.com/public/x'), 'absolute_form', 400],
    ['X-Forwarded-Uri empty', forwarded(''), 'empty_target', 400],
    ['X-Forwarded-Uri %2F', forwarded('/public/..%2Fadmin/x'), 'encoded_slash', 400],
    ['X-Forwarded-Uri //', forwarded('//evil.com/x'), 'double_slash', 400],
    ['X-Forwarded-Uri backslash', forwarded('/public/..\\admin'), 'backslash', 400],
    ['X-Forwarded-Uri above root', forwarded('/../admin'), 'dot_segment_above_root', 400],
  ]
  it.each(bad.map(([name, headers, reason, status]) => ({ name, headers, reason, status })))('$name → $status $reason', async ({ headers, reason, status }) => {
    const r = await send(api.port, '/decisions', { headers })
    expect(r.status).toBe(status)
    const body = json(r)
    expect(body.error.reason).toBe(reason)
    // Messages name the header, never quote the value.
    expect(body.error.message).not.toContain('evil')
  })

  it('a path after /decisions that disagrees with X-Forwarded-Uri → 400 (a smuggled X-Forwarded-Uri cannot override Envoy)', async () => {
    const r = await send(api.port, '/decisions/admin/x', { headers: forwarded('/public/x') })
    expect(r.status).toBe(400)
    expect(json(r).error.reason).toBe('conflicting_forwarded_uri')
  })

  it('a request head over max_header_bytes → 431 from node:http; the server keeps serving', async () => {
    const r = await send(api.port, '/decisions/public/x', { headers: { host: HOST, cookie: 'a='.padEnd(40_000, 'x') } })
    expect(r.status).toBe(431)
    expect((await send(api.port, '/decisions/public/x', { headers: { host: HOST } })).status).toBe(200)
  })

  it('more than 256 header lines → 400 too_many_headers (none silently dropped)', async () => {
    const raw = ['Host', HOST]
    for (let i = 0; i < 300; i++) raw.push(`x-h${i}`, 'v')
    const r = await send(api.port, '/decisions/public/x', { headers: raw })
    expect(r.status).toBe(400)
    expect(json(r).error.reason).toBe('too_many_headers')
  })

  it('a request body is not read: answered, then the connection is closed', async () => {
    const body = Buffer.alloc(4 * 1024 * 1024, 0x61)
    const r = await send(api.port, '/decisions/write/x', { method: 'POST', headers: { host: HOST, 'content-length': String(body.length) }, body })
    expect(r.status).toBe(200)
    expect(r.headers['connection']).toBe('close')
    expect((await send(api.port, '/decisions/public/x', { headers: { host: HOST } })).status).toBe(200)
  })

  it('raw garbage, absolute-form targets and slow heads do not take the server down', async () => {
    const raw = (bytes: string): Promise<string> =>
      new Promise((resolve) => {
        const sock = connect(api.port, '127.0.0.1')
        const chunks: Buffer[] = []
        sock.on('data', (c: Buffer) => chunks.push(c))
        sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
        sock.on('error', () => resolve(Buffer.concat(chunks).toString('latin1')))
        sock.setTimeout(3000, () => sock.destroy())
        sock.end(bytes)
      })
    expect(await raw('\x00\x01\x02 garbage\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(await raw(`GET http://evil.com/decisions/public/x HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 404/)
    expect(await raw(`GET /decisions/public/x HTTP/1.1\r\nHost: ${HOST}\r\nX-Bad: a\x00b\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400/)
    expect(await raw(`GET /decisions/public/x HTTP/1.0\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400/)
    expect((await send(api.port, '/health/alive', { headers: { host: 'x' } })).status).toBe(200)
  })
})

describe('wiring with the process-wide state (readiness, memory guard, shutdown in-flight registry)', () => {
  it("readiness: () => state.check() (src/server/readiness.ts) drives /health/ready with the state's names and messages", async () => {
    const state = new ReadinessState()
    const own = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0 }), readiness: () => state.check() })
    try {
      const r = await send(own.port, '/health/ready', { headers: { host: 'x' } })
      expect(r.status).toBe(503)
      expect(JSON.parse(r.body)).toEqual({ errors: { rules_loaded: 'no access rules are loaded' } })
      state.set('rules_loaded', true)
      expect((await send(own.port, '/health/ready', { headers: { host: 'x' } })).status).toBe(200)
      state.set('shutdown', false, 'shutting down')
      expect(JSON.parse((await send(own.port, '/health/ready', { headers: { host: 'x' } })).body)).toEqual({ errors: { shutdown: 'shutting down' } })
    } finally {
      state.stop()
      await own.stop(500)
    }
  })

  it("guard: while the memory guard sheds, decisions get its denial at once (status, Retry-After, body)", async () => {
    let shedding = true
    let shed = 0
    const seen: DecisionEvent[] = []
    const own = await startHttpApi({
      holder: s.app.holder,
      log: s.app.log,
      config: ApiConfigSchema.parse({ port: 0 }),
      guard: { shedding: () => shedding, shed: () => (shed++, shedResponse(503)) },
      onDecision: (e) => void seen.push(e),
    })
    try {
      const r = await send(own.port, '/decisions/public/x', { headers: { host: HOST } })
      expect(r.status).toBe(503)
      expect(r.headers['retry-after']).toBe('1')
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 503 } })
      expect(shed).toBe(1)
      expect(seen[0]).toMatchObject({ decision: 'deny', reason: 'memory_guard_shed', status: 503 })
      // Health is not shed.
      expect((await send(own.port, '/health/alive', { headers: { host: 'x' } })).status).toBe(200)
      shedding = false
      expect((await send(own.port, '/decisions/public/x', { headers: { host: HOST } })).status).toBe(200)
    } finally {
      await own.stop(500)
    }
  })

  it('inflight: a decision still running when the grace period ends is answered 503 shutting_down, never left hanging', async () => {
    const inflight = new InFlight()
    const own = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0 }), inflight })
    try {
      const pending = send(own.port, '/decisions/session/x', { headers: { host: HOST, cookie: 'session=hang' } })
      const deadline = Date.now() + 2000
      while (inflight.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      expect(inflight.size).toBe(1)
      expect(inflight.denyAll()).toBe(1)
      const r = await pending
      expect(r.status).toBe(503)
      expect(json(r).error.reason).toBe('shutting_down')
      expect(inflight.size).toBe(0)
      expect(own.inFlight()).toBe(0)
      // An answered decision leaves the registry too.
      expect((await send(own.port, '/decisions/public/x', { headers: { host: HOST } })).status).toBe(200)
      expect(inflight.size).toBe(0)
    } finally {
      await own.stop(500)
    }
  })
})

describe('stop', () => {
  it('lets an in-flight decision finish, then refuses new connections', async () => {
    const own = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0 }) })
    stub.setMode('/sessions/whoami', { kind: 'slow', delayMs: 200, then: { kind: 'json', body: { identity: { id: 'slow-user' } } } })
    try {
      const inFlight = send(own.port, '/decisions/session/slow', { headers: { host: HOST, cookie: 'session=slow' } })
      await new Promise((r) => setTimeout(r, 50))
      expect(own.inFlight()).toBe(1)
      const stopped = own.stop(2000)
      const r = await inFlight
      expect(r.status).toBe(200)
      expect(r.headers['x-user']).toBe('slow-user')
      await stopped
      await expect(send(own.port, '/health/alive', { headers: { host: 'x' } })).rejects.toThrow(/ECONNREFUSED/)
    } finally {
      stub.setMode('/sessions/whoami', whoami)
      await own.stop(100)
    }
  })
})
