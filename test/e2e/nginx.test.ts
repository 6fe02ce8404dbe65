/**
 * End to end through a real nginx (Debian package; installed by the helper when missing and the
 * tests run as root): client → nginx `auth_request` → Portcullis decisions API (in-process, on the
 * rule set holder of an in-process Portcullis) → echo upstream (envoy/echo-server.mjs), which
 * records every request it gets, so "never reached the upstream" is observed, not inferred.
 *
 * Three nginx servers, one process:
 * - `plain`: the minimal recipe (auth_request + identity headers). nginx's own mapping of the
 *   subrequest's status applies: 2xx → upstream, 401/403 → that status, anything else → 500.
 * - `recipe`: the same plus `error_page 500 = @portcullis_denied`, which answers redirects, 400,
 *   404, 429 and 503 with the decision's status (and Location).
 * - `distrusted`: pointed at a second decisions API whose `trusted_proxies` is empty, so nginx's
 *   X-Forwarded-* headers are refused and every request is 403.
 *
 * nginx 1.22 behaviours pinned here (observed): the auth subrequest is always `GET /decisions`
 * without the client's query (hence X-Forwarded-Method and X-Forwarded-Uri); `proxy_set_header`
 * with an empty value omits the header, which replaces a client-sent copy either way; header names
 * with `_` are dropped by nginx (`underscores_in_headers off`); on a 401 nginx copies the decision's
 * WWW-Authenticate but sends its own HTML body.
 * @module
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEchoServer, type EchoServer, type EchoedRequest } from '../helpers/envoy.js'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { authRequestServer, ensureNginx, portcullisUpstream, startNginx, type NginxProcess } from '../helpers/nginx.js'
import { ApiConfigSchema } from '../../src/server/http-api-config.js'
import { startHttpApi, type HttpApi } from '../../src/server/http-api.js'

const HOST = 'app.example.com'
const U = `<http|https>://<[^/]+>`
const anon = [{ handler: 'anonymous' }]
const noop = [{ handler: 'noop' }]

const RULES = [
  {
    id: 'public',
    match: { url: `${U}/public/<.*>`, methods: ['GET', 'HEAD'] },
    authenticators: anon,
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}', 'X-Portcullis-Rule': 'public' } } }],
  },
  { id: 'static', match: { url: `${U}/static/<.*>`, methods: ['GET'] }, authenticators: anon, authorizer: { handler: 'allow' }, mutators: noop },
  { id: 'admin', match: { url: `${U}/admin/<.*>`, methods: ['GET', 'POST'] }, authenticators: anon, authorizer: { handler: 'deny' }, mutators: noop },
  {
    id: 'api',
    match: { url: `${U}/api/<.*>`, methods: ['GET', 'POST'] },
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
    id: 'write',
    match: { url: `${U}/write/<.*>`, methods: ['POST'] },
    authenticators: anon,
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers: { 'X-User': 'writer' } } }],
  },
]

const IDENTITY_HEADERS = ['X-User', 'X-Portcullis-Rule']

let echo: EchoServer | undefined
let s: Started | undefined
let api: HttpApi | undefined
let distrusting: HttpApi | undefined
let nginx: NginxProcess | undefined

beforeAll(async () => {
  const { bin, version, installed } = await ensureNginx()
  if (installed) console.log(`[nginx.test] installed ${version} with apt-get`)
  echo = await startEchoServer()
  s = await startWith(ALL_HANDLERS, RULES)
  api = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0 }) })
  distrusting = await startHttpApi({ holder: s.app.holder, log: s.app.log, config: ApiConfigSchema.parse({ port: 0, trusted_proxies: [] }) })
  const upstream = echo.port
  const trustedPort = api.port
  const distrustingPort = distrusting.port
  nginx = await startNginx({
    bin,
    listeners: ['plain', 'recipe', 'distrusted'],
    servers: (p) =>
      portcullisUpstream('portcullis_api', trustedPort) +
      portcullisUpstream('portcullis_distrusting', distrustingPort) +
      authRequestServer({ listen: p['plain']!, decisions: 'portcullis_api', upstream, identityHeaders: IDENTITY_HEADERS, errorPages: false }) +
      authRequestServer({ listen: p['recipe']!, decisions: 'portcullis_api', upstream, identityHeaders: IDENTITY_HEADERS, errorPages: true }) +
      authRequestServer({ listen: p['distrusted']!, decisions: 'portcullis_distrusting', upstream, identityHeaders: IDENTITY_HEADERS, errorPages: true }),
  })
}, 600_000)

afterAll(async () => {
  await nginx?.stop()
  await api?.stop(1000)
  await distrusting?.stop(1000)
  await s?.stop()
  await echo?.close()
}, 30_000)

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
  /** Requests that reached the upstream while this one was in flight. */
  readonly upstream: readonly EchoedRequest[]
}

type Server = 'plain' | 'recipe' | 'distrusted'

/** One request through nginx; node:http sends the path byte for byte. */
async function send(
  server: Server,
  path: string,
  o: { method?: string; headers?: Record<string, string> | string[]; body?: string } = {},
): Promise<Reply> {
  if (nginx === undefined || echo === undefined) throw new Error('nginx did not start (see beforeAll)')
  const port = nginx.ports[server]!
  const seen = echo.requests.length
  const method = o.method ?? 'GET'
  const headers = Array.isArray(o.headers) ? ['Host', HOST, ...o.headers] : { host: HOST, ...o.headers }
  const reply = await new Promise<Omit<Reply, 'upstream'>>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, setHost: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.on('error', reject)
    req.end(o.body)
  })
  return { ...reply, upstream: echo.requests.slice(seen) }
}

/** The single request the upstream saw. */
function forwarded(r: Reply): EchoedRequest {
  expect(r.upstream, 'exactly one request should reach the upstream').toHaveLength(1)
  return r.upstream[0]!
}

describe('nginx auth_request → Portcullis /decisions', () => {
  it('allowed: reaches the upstream with the identity headers; a spoofed X-User is replaced', async () => {
    for (const server of ['plain', 'recipe'] as const) {
      const r = await send(server, '/public/page?a=1&b=%20', { headers: { 'X-User': 'admin', 'X-Portcullis-Rule': 'forged' } })
      expect(r.status, server).toBe(200)
      const up = forwarded(r)
      expect(up.path).toBe('/public/page?a=1&b=%20')
      expect(up.headers['x-user']).toEqual(['anonymous'])
      expect(up.headers['x-portcullis-rule']).toEqual(['public'])
    }
  })

  it('a rule that sets no identity header: a client-sent X-User never reaches the upstream', async () => {
    const r = await send('plain', '/static/app.css', { headers: { 'X-User': 'admin' } })
    expect(r.status).toBe(200)
    const up = forwarded(r)
    expect(up.headers['x-user']).toBeUndefined()
    expect(up.headers['x-portcullis-rule']).toBeUndefined()
  })

  it('look-alike header names with "_" (X_User) are dropped by nginx, never forwarded', async () => {
    const r = await send('plain', '/static/app.css', { headers: ['X_User', 'admin'] })
    expect(r.status).toBe(200)
    const up = forwarded(r)
    expect(up.headers['x_user']).toBeUndefined()
    expect(up.headers['x-user']).toBeUndefined()
  })

  it('denied 403 (authorizer deny): 403 to the client, the upstream is not called', async () => {
    for (const server of ['plain', 'recipe'] as const) {
      const r = await send(server, '/admin/users', { method: 'POST', body: 'x=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
      expect(r.status, server).toBe(403)
      expect(r.upstream).toHaveLength(0)
    }
  })

  it('denied 401: nginx passes the decision\'s WWW-Authenticate (with its own body); the upstream is not called', async () => {
    const r = await send('plain', '/api/things')
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe('Basic realm="Portcullis example"')
    expect(r.upstream).toHaveLength(0)
  })

  it('a redirect denial: plain nginx answers 500; the error_page recipe answers 302 with the decision\'s Location', async () => {
    const plain = await send('plain', '/account/settings?tab=keys')
    expect(plain.status).toBe(500)
    expect(plain.upstream).toHaveLength(0)

    const r = await send('recipe', '/account/settings?tab=keys')
    expect(r.status).toBe(302)
    expect(r.upstream).toHaveLength(0)
    const location = new URL(String(r.headers['location']))
    expect(location.origin + location.pathname).toBe('https://login.example.com/login')
    // The original URL keeps its query (X-Forwarded-Uri's; Oathkeeper would lose it behind nginx).
    expect(location.searchParams.get('return_to')).toBe(`http://${HOST}/account/settings?tab=keys`)
  })

  it('no rule (404): plain nginx answers 500, the recipe 404; the upstream is not called', async () => {
    expect((await send('plain', '/nothing/here')).status).toBe(500)
    const r = await send('recipe', '/nothing/here')
    expect(r.status).toBe(404)
    expect(r.upstream).toHaveLength(0)
  })

  it('the method is the client\'s (X-Forwarded-Method), although nginx\'s subrequest is a GET', async () => {
    const post = await send('recipe', '/write/doc', { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } })
    expect(post.status).toBe(200)
    const up = forwarded(post)
    expect(up.method).toBe('POST')
    expect(up.headers['x-user']).toEqual(['writer'])
    const get = await send('recipe', '/write/doc')
    expect(get.status).toBe(404)
    expect(get.upstream).toHaveLength(0)
  })

  it('paths are decided on as the upstream will read them: dot segments resolved, encoded slashes refused', async () => {
    const up = await send('recipe', '/static/../public/x')
    expect(up.status).toBe(200)
    expect(forwarded(up).headers['x-user']).toEqual(['anonymous'])

    const dots = await send('recipe', '/public/%2e%2e/admin/users')
    expect(dots.status).toBe(403)
    expect(dots.upstream).toHaveLength(0)

    const slash = await send('recipe', '/public/..%2Fadmin/users')
    expect(slash.status).toBe(400)
    expect(slash.upstream).toHaveLength(0)
  })

  it('HEAD is decided on as HEAD', async () => {
    const r = await send('plain', '/public/x', { method: 'HEAD' })
    expect(r.status).toBe(200)
    expect(forwarded(r).method).toBe('HEAD')
  })

  it('a decisions API that does not trust nginx refuses its X-Forwarded-* headers: 403 for everything', async () => {
    for (const path of ['/public/x', '/static/x', '/admin/x']) {
      const r = await send('distrusted', path)
      expect(r.status, path).toBe(403)
      expect(r.upstream).toHaveLength(0)
    }
  })

  it('200 concurrent mixed requests over nginx\'s keep-alive pool: every answer right, only allowed ones forwarded', async () => {
    const plan = Array.from({ length: 200 }, (_, i) => (['/public/p', '/admin/a', '/api/b', '/static/c'] as const)[i % 4]!)
    const expected: Record<string, number> = { '/public/p': 200, '/admin/a': 403, '/api/b': 401, '/static/c': 200 }
    const before = echo!.requests.length
    const replies = await Promise.all(plan.map((p, i) => send('plain', `${p}?i=${i}`, { headers: { 'X-User': 'forged' } })))
    replies.forEach((r, i) => expect(r.status, plan[i]).toBe(expected[plan[i]!]))
    const reached = echo!.requests.slice(before)
    expect(reached).toHaveLength(100)
    for (const up of reached) {
      expect(up.path).toMatch(/^\/(public\/p|static\/c)\?i=\d+$/)
      expect(up.headers['x-user']).toEqual(up.path.startsWith('/public') ? ['anonymous'] : undefined)
    }
  })
})
