/**
 * End to end through a real Envoy: client → Envoy (envoy/envoy.yaml) → Portcullis (`portcullis
 * serve` with portcullis.yaml + rules/example.yaml) → echo upstream (envoy/echo-server.mjs).
 * The echo server records every request it receives, which is how "never reached the upstream"
 * is proven rather than inferred from a status code.
 *
 * Envoy 1.40 behaviours pinned here (observed, see also security.md §4.1):
 * - `ok_response.headers`: only the legacy BoolValue `append` is honoured. `append: false` (or
 *   unset) overwrites a client-sent header, whatever `append_action` says; `append: true`
 *   comma-joins onto a client-sent value ("admin,anonymous") and adds nothing when the client
 *   sent none. Portcullis sends `append: false` + `append_action: OVERWRITE_IF_EXISTS_OR_ADD`,
 *   and the spoofing tests below prove the result is an overwrite.
 * - Paths are normalised before ext_authz (`%2e%2e` is `..`); escaped slashes and backslashes
 *   (`%2F`, `%5C`) and header names with underscores are rejected by Envoy itself with 400.
 * @module
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEchoServer, startEnvoy, type EchoServer, type EchoedRequest, type EnvoyProcess } from '../helpers/envoy.js'
import { startPortcullis, type PortcullisProcess } from '../helpers/portcullis.js'

const HOST = 'app.example.com'

let echo: EchoServer | undefined
let portcullis: PortcullisProcess | undefined
let envoy: EnvoyProcess | undefined

beforeAll(async () => {
  echo = await startEchoServer()
  portcullis = await startPortcullis()
  envoy = await startEnvoy({ portcullisPort: portcullis.grpcPort, upstreamPort: echo.port })
  // The first Check pays for Envoy's HTTP/2 connection and Portcullis's cold code paths; on a
  // busy machine (test files run in parallel) that can exceed the 250 ms ext_authz timeout and
  // fail closed with 503. Warm up until the chain answers, so each test sees steady state.
  const deadline = Date.now() + 15_000
  while ((await send('/nothing')).status === 503 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
  }
}, 60_000)

afterAll(async () => {
  await envoy?.stop()
  await portcullis?.stop()
  await echo?.close()
}, 30_000)

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
  /** Requests that reached the upstream while this one was in flight. */
  readonly upstream: readonly EchoedRequest[]
}

/**
 * Sends one request through Envoy with node:http, so the path goes out byte for byte (fetch
 * would resolve `%2e%2e` itself) and any header, Host included, can be set or repeated.
 */
async function send(path: string, headers: Record<string, string | string[]> = {}, method = 'GET'): Promise<Reply> {
  if (envoy === undefined || echo === undefined) throw new Error('Envoy did not start (see beforeAll)')
  const port = envoy.port
  const seen = echo.requests.length
  const reply = await new Promise<Omit<Reply, 'upstream'>>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: HOST, ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      )
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
  return { ...reply, upstream: echo.requests.slice(seen) }
}

/** The single request the upstream saw, with a readable failure if there were 0 or several. */
function forwarded(reply: Reply): EchoedRequest {
  expect(reply.status, reply.body).toBe(200)
  expect(reply.upstream).toHaveLength(1)
  return reply.upstream[0] as EchoedRequest
}

function portcullisLogs(): string {
  return portcullis?.logs().slice(-20).join('\n') ?? ''
}

describe('allowed requests reach the upstream with the identity Portcullis set', () => {
  it('forwards /public/x with X-User = anonymous subject and X-Portcullis-Rule = public', async () => {
    const up = forwarded(await send('/public/x'))
    expect(up.path).toBe('/public/x')
    expect(up.headers['x-user']).toEqual(['anonymous'])
    expect(up.headers['x-portcullis-rule']).toEqual(['public'])
  })

  it('overwrites a client-sent X-User (append: false wins over the spoofed value)', async () => {
    const up = forwarded(await send('/public/x', { 'X-User': 'admin' }))
    expect(up.headers['x-user']).toEqual(['anonymous'])
  })

  it('overwrites X-User sent twice by the client with exactly one value', async () => {
    const up = forwarded(await send('/public/x', { 'X-User': ['admin', 'root'] }))
    expect(up.headers['x-user']).toEqual(['anonymous'])
  })

  it('removes a client-sent X-User on a rule that sets no identity (static, noop mutator)', async () => {
    const up = forwarded(await send('/static/x', { 'X-User': 'admin' }))
    expect(up.path).toBe('/static/x')
    expect(up.headers['x-user']).toBeUndefined()
  })

  it('forwards the normalised path, the one the rule was matched against', async () => {
    const up = forwarded(await send('/public/./a/../x'))
    expect(up.path).toBe('/public/x')
  })
})

describe('denied requests never reach the upstream', () => {
  it('answers /admin/x with 403 and a JSON body', async () => {
    const r = await send('/admin/x')
    expect(r.status, portcullisLogs()).toBe(403)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(() => JSON.parse(r.body) as unknown).not.toThrow()
    expect(r.upstream).toEqual([])
  })

  it('answers /api/x with 401 and WWW-Authenticate for the rule realm', async () => {
    const r = await send('/api/x')
    expect(r.status, portcullisLogs()).toBe(401)
    expect(r.headers['www-authenticate']).toMatch(/^Basic realm="?Portcullis example"?$/)
    expect(r.upstream).toEqual([])
  })

  it('redirects /account/x to the login page with return_to', async () => {
    const r = await send('/account/x')
    expect(r.status, portcullisLogs()).toBe(302)
    const location = String(r.headers.location)
    expect(location.startsWith('https://login.example.com/login?return_to='), location).toBe(true)
    expect(new URL(location).searchParams.get('return_to')).toContain('/account/x')
    expect(r.upstream).toEqual([])
  })

  it('answers a path no rule matches with 404', async () => {
    const r = await send('/nothing')
    expect(r.status, portcullisLogs()).toBe(404)
    expect(r.upstream).toEqual([])
  })

  // Dot segments are resolved by Envoy (normalize_path), so Portcullis checks — and would
  // forward — /admin/x; escaped slashes and backslashes are rejected by Envoy before ext_authz.
  it.each([
    { path: '/public/%2e%2e/admin/x', status: 403, why: 'normalised to /admin/x' },
    { path: '/public/%2E%2E/admin/x', status: 403, why: 'normalised to /admin/x' },
    { path: '/public/../admin/x', status: 403, why: 'normalised to /admin/x' },
    { path: '/public/..%2fadmin/x', status: 400, why: 'escaped slash rejected by Envoy' },
    { path: '/public/..%2Fadmin/x', status: 400, why: 'escaped slash rejected by Envoy' },
    { path: '/public/..%5cadmin/x', status: 400, why: 'escaped backslash rejected by Envoy' },
  ])('hostile path $path: $status ($why), upstream not reached', async ({ path, status }) => {
    const r = await send(path)
    expect(r.status).not.toBe(200)
    expect(r.upstream).toEqual([])
    expect(r.status).toBe(status)
  })

  it('rejects a header spelled with an underscore (X_User) with 400 before ext_authz', async () => {
    const r = await send('/public/x', { X_User: 'admin' })
    expect(r.status).toBe(400)
    expect(r.upstream).toEqual([])
  })
})

// Keep last: it stops Portcullis.
describe('Portcullis down', () => {
  it('fails closed with 503 (status_on_error) and does not reach the upstream', async () => {
    await portcullis?.stop()
    const r = await send('/public/x')
    expect(r.status).toBe(503)
    expect(r.upstream).toEqual([])
  })
})
