/**
 * End to end through a real Envoy 1.40 configured with the copy-paste example envoy/envoy-http.yaml
 * (ext_authz `http_service` → Portcullis's decisions API, addresses rewritten only): client →
 * Envoy → Portcullis `serve.api` (in-process, on the holder of an in-process Portcullis) → echo
 * upstream, which records what reaches it.
 *
 * Envoy 1.40 http_service behaviours pinned here (observed):
 * - the check request is the client's method, `/decisions` + the client's path and query, the
 *   client's Host, `content-length: 0`, Authorization and the `allowed_headers`, plus
 *   `headers_to_add` (which do take `%REQ(:SCHEME)%`-style formatters), `x-envoy-internal` and
 *   `x-envoy-expected-rq-timeout-ms`; client X-Forwarded-* copies are kept out by `disallowed_headers`;
 * - 200 → allowed: `allowed_upstream_headers` overwrite client copies, and the names in
 *   `x-envoy-auth-headers-to-remove` are removed from the upstream request;
 * - any other status below 500 → that status, body and `allowed_client_headers` to the client;
 * - 5xx or no answer → `status_on_error` (503) without Portcullis's body.
 * @module
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEchoServer, type EchoServer, type EchoedRequest, type EnvoyProcess } from '../helpers/envoy.js'
import { ENVOY_HTTP_CONFIG_PATH, startEnvoyWith } from '../helpers/envoy-http.js'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { ApiConfigSchema } from '../../src/server/http-api-config.js'
import { startHttpApi, type HttpApi } from '../../src/server/http-api.js'

const HOST = 'app.example.com'
const U = `<http|https>://<[^/]+>`
const anon = [{ handler: 'anonymous' }]
const noop = [{ handler: 'noop' }]

const RULES = [
  {
    id: 'public',
    match: { url: `${U}/public/<.*>`, methods: ['GET', 'HEAD', 'POST'] },
    authenticators: anon,
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}', 'X-Portcullis-Rule': 'public' } } }],
  },
  { id: 'static', match: { url: `${U}/static/<.*>`, methods: ['GET'] }, authenticators: anon, authorizer: { handler: 'allow' }, mutators: noop },
  { id: 'admin', match: { url: `${U}/admin/<.*>`, methods: ['GET', 'POST'] }, authenticators: anon, authorizer: { handler: 'deny' }, mutators: noop },
  {
    id: 'api',
    match: { url: `${U}/api/<.*>`, methods: ['GET'] },
    authenticators: [{ handler: 'unauthorized' }],
    authorizer: { handler: 'allow' },
    mutators: noop,
    errors: [{ handler: 'www_authenticate', config: { realm: 'Portcullis example' } }],
  },
  {
    id: 'account',
    match: { url: `${U}/account/<.*>`, methods: ['GET'] },
    authenticators: [{ handler: 'unauthorized' }],
    authorizer: { handler: 'allow' },
    mutators: noop,
    errors: [{ handler: 'redirect', config: { to: 'https://login.example.com/login', return_to_query_param: 'return_to' } }],
  },
  {
    id: 'secure',
    match: { url: `https://<[^/]+>/secure/<.*>`, methods: ['GET'] },
    authenticators: anon,
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers: { 'X-User': 'tls-only' } } }],
  },
]

let echo: EchoServer | undefined
let s: Started | undefined
let api: HttpApi | undefined
let envoy: EnvoyProcess | undefined
/** Raw headers + method + URL of every request Envoy sent to the decisions API. */
const checks: { method: string; url: string; headers: Map<string, string[]> }[] = []

beforeAll(async () => {
  echo = await startEchoServer()
  s = await startWith(ALL_HANDLERS, RULES)
  api = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0 }) })
  api.server.prependListener('request', (req) => {
    const headers = new Map<string, string[]>()
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i]!.toLowerCase()
      headers.set(k, [...(headers.get(k) ?? []), req.rawHeaders[i + 1]!])
    }
    checks.push({ method: req.method ?? '', url: req.url ?? '', headers })
  })
  envoy = await startEnvoyWith({ configPath: ENVOY_HTTP_CONFIG_PATH, clusters: { portcullis_api: api.port, upstream: echo.port } })
  // The first check pays for Envoy's connection and Portcullis's cold paths; on a busy machine
  // that can exceed the 250 ms timeout (→ 503). Warm up until the chain answers.
  const deadline = Date.now() + 15_000
  while ((await send('/nothing')).status === 503 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
}, 60_000)

afterAll(async () => {
  await envoy?.stop()
  await api?.stop(1000)
  await s?.stop()
  await echo?.close()
}, 30_000)

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
  readonly upstream: readonly EchoedRequest[]
}

async function send(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Reply> {
  if (envoy === undefined || echo === undefined) throw new Error('Envoy did not start (see beforeAll)')
  const port = envoy.port
  const seen = echo.requests.length
  const reply = await new Promise<Omit<Reply, 'upstream'>>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: HOST, ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.on('error', reject)
    req.end(body)
  })
  return { ...reply, upstream: echo.requests.slice(seen) }
}

function forwarded(r: Reply): EchoedRequest {
  expect(r.upstream, 'exactly one request should reach the upstream').toHaveLength(1)
  return r.upstream[0]!
}

describe('Envoy ext_authz http_service (envoy/envoy-http.yaml) → Portcullis /decisions', () => {
  it('what Envoy sends: client method, /decisions + path and query, Host, X-Forwarded-Proto from the connection', async () => {
    checks.length = 0
    const r = await send('/public/x?q=1', {
      cookie: 'session=abc',
      // Client copies of the forwarded headers must never reach Portcullis.
      'x-forwarded-proto': 'https',
      'x-forwarded-uri': '/static/x',
      'x-forwarded-host': 'evil.example.com',
      'x-forwarded-method': 'DELETE',
    })
    expect(r.status).toBe(200)
    expect(checks).toHaveLength(1)
    const c = checks[0]!
    expect(c.method).toBe('GET')
    expect(c.url).toBe('/decisions/public/x?q=1')
    expect(c.headers.get('host')).toEqual([HOST])
    expect(c.headers.get('x-forwarded-proto')).toEqual(['http'])
    for (const h of ['x-forwarded-uri', 'x-forwarded-host', 'x-forwarded-method']) expect(c.headers.get(h), h).toBeUndefined()
    expect(c.headers.get('cookie')).toEqual(['session=abc'])
    expect(c.headers.get('x-request-id')).toHaveLength(1)
    expect(c.headers.get('content-length')).toEqual(['0'])
    // Authorization is always sent (the anonymous authenticator then declines: 401 from the
    // fallback, as Oathkeeper's `anonymous` only takes requests without credentials).
    checks.length = 0
    expect((await send('/public/x', { authorization: 'Bearer t' })).status).toBe(401)
    expect(checks[0]!.headers.get('authorization')).toEqual(['Bearer t'])
  })

  it('allowed: the upstream gets the identity headers; spoofed copies are overwritten; the query is intact', async () => {
    const r = await send('/public/page?a=1&b=%20', { 'x-user': 'admin', 'x-portcullis-rule': 'forged' })
    expect(r.status).toBe(200)
    const up = forwarded(r)
    expect(up.path).toBe('/public/page?a=1&b=%20')
    expect(up.headers['x-user']).toEqual(['anonymous'])
    expect(up.headers['x-portcullis-rule']).toEqual(['public'])
  })

  it('a rule that sets no identity header: client copies are removed (x-envoy-auth-headers-to-remove)', async () => {
    const r = await send('/static/app.css', { 'x-user': 'admin', 'x-portcullis-rule': 'forged' })
    expect(r.status).toBe(200)
    const up = forwarded(r)
    expect(up.headers['x-user']).toBeUndefined()
    expect(up.headers['x-portcullis-rule']).toBeUndefined()
    expect(up.headers['x-envoy-auth-headers-to-remove']).toBeUndefined()
  })

  it('denied 403: status and JSON body from the error handler; the upstream is not called', async () => {
    const r = await send('/admin/users', {}, 'POST', 'x=1')
    expect(r.status).toBe(403)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 403 } })
    expect(r.upstream).toHaveLength(0)
  })

  it('denied 401 with WWW-Authenticate and the text body', async () => {
    const r = await send('/api/things')
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe('Basic realm="Portcullis example"')
    expect(r.body).toBe('Unauthorized\n')
    expect(r.upstream).toHaveLength(0)
  })

  it('redirect: 302 with Location; return_to is the original http URL with its query', async () => {
    const r = await send('/account/settings?tab=keys')
    expect(r.status).toBe(302)
    const location = new URL(String(r.headers['location']))
    expect(location.origin + location.pathname).toBe('https://login.example.com/login')
    expect(location.searchParams.get('return_to')).toBe(`http://${HOST}/account/settings?tab=keys`)
    expect(r.upstream).toHaveLength(0)
  })

  it('no rule: 404 JSON; the upstream is not called', async () => {
    const r = await send('/nothing/here')
    expect(r.status).toBe(404)
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 404 } })
    expect(r.upstream).toHaveLength(0)
  })

  it('a smuggled X-Forwarded-Uri cannot turn a denied path into an allowed one', async () => {
    const r = await send('/admin/users', { 'x-forwarded-uri': '/public/x', 'x-forwarded-host': HOST })
    expect(r.status).toBe(403)
    expect(r.upstream).toHaveLength(0)
  })

  it('a client-sent X-Forwarded-Proto: https over plain HTTP does not satisfy an https-only rule', async () => {
    const r = await send('/secure/x', { 'x-forwarded-proto': 'https' })
    expect(r.status).toBe(404)
    expect(r.upstream).toHaveLength(0)
  })

  it('the method is the client\'s (POST allowed on public, body not sent to Portcullis); HEAD works', async () => {
    checks.length = 0
    const post = await send('/public/form', { 'content-type': 'text/plain' }, 'POST', 'hello')
    expect(post.status).toBe(200)
    expect(forwarded(post).method).toBe('POST')
    expect(checks[0]!.method).toBe('POST')
    expect(checks[0]!.headers.get('content-length')).toEqual(['0'])
    const head = await send('/public/x', {}, 'HEAD')
    expect(head.status).toBe(200)
  })

  it('header names with "_" are rejected by Envoy (400) before any check', async () => {
    const r = await send('/public/x', { x_user: 'admin' })
    expect(r.status).toBe(400)
    expect(r.upstream).toHaveLength(0)
  })

  it('Portcullis unreachable → 503 (status_on_error), fail closed', async () => {
    await api!.stop(1000)
    const r = await send('/public/x')
    expect(r.status).toBe(503)
    expect(r.upstream).toHaveLength(0)
  })
})
