/**
 * `oauth2_introspection` end to end: client → real Envoy 1.40 (envoy/envoy.yaml) → Portcullis
 * (built CLI, test/fixtures/e2e-introspection/) → introspection endpoint (HTTP stub) → echo
 * upstream. The echo server records what reached the upstream, so "not forwarded" is observed,
 * not inferred from a status code.
 * @module
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT, startEchoServer, startEnvoy, type EchoServer, type EchoedRequest, type EnvoyProcess } from '../helpers/envoy.js'
import { startPortcullis, type PortcullisProcess } from '../helpers/portcullis.js'
import { startStub, type Stub } from '../helpers/stub-server.js'

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'e2e-introspection')

let idp: Stub | undefined
let dir: string | undefined
let echo: EchoServer | undefined
let portcullis: PortcullisProcess | undefined
let envoy: EnvoyProcess | undefined
let idpClosed = false

beforeAll(async () => {
  idp = await startStub()
  idp.setMode('/introspect', {
    kind: 'custom',
    handle(req, res) {
      const token = new URLSearchParams(req.body).get('token')
      const body = token === 'opaque-active-token' ? { active: true, sub: 'user-42', scope: 'read' } : { active: false }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    },
  })
  dir = await mkdtemp(join(tmpdir(), 'portcullis-e2e-introspection-'))
  const config = (await readFile(join(FIXTURES, 'portcullis.yaml'), 'utf8')).replaceAll('__INTROSPECTION_URL__', idp.url('/introspect'))
  await writeFile(join(dir, 'portcullis.yaml'), config)
  await writeFile(join(dir, 'rules.yaml'), await readFile(join(FIXTURES, 'rules.yaml'), 'utf8'))

  echo = await startEchoServer()
  portcullis = await startPortcullis({ config: join(dir, 'portcullis.yaml') })
  envoy = await startEnvoy({ portcullisPort: portcullis.grpcPort, upstreamPort: echo.port })
  // Warm up Envoy's HTTP/2 connection and Portcullis's cold paths (see test/e2e/envoy.test.ts):
  // a first Check over the 250 ms ext_authz timeout fails closed with 503.
  const deadline = Date.now() + 15_000
  while ((await send('/api/warmup', 'warmup-token')).status === 503 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
  }
}, 60_000)

afterAll(async () => {
  await envoy?.stop()
  await portcullis?.stop()
  await echo?.close()
  if (!idpClosed) await idp?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
}, 30_000)

interface Reply {
  readonly status: number
  readonly body: string
  readonly upstream: readonly EchoedRequest[]
}

async function send(path: string, token: string | undefined, headers: Record<string, string> = {}): Promise<Reply> {
  if (envoy === undefined || echo === undefined) throw new Error('Envoy did not start (see beforeAll)')
  const seen = echo.requests.length
  const port = envoy.port
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const h: Record<string, string> = { host: 'api.example.com', ...headers }
    if (token !== undefined) h['authorization'] = `Bearer ${token}`
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers: h }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
  return { ...reply, upstream: echo.requests.slice(seen) }
}

const logs = (): string => [...(portcullis?.logs().slice(-20) ?? []), ...(envoy?.logs().slice(-10) ?? [])].join('\n')

describe('oauth2_introspection through Envoy', () => {
  it('forwards a request with an active opaque token, X-User = its sub (overwriting a spoofed one)', async () => {
    const r = await send('/api/orders', 'opaque-active-token', { 'x-user': 'admin' })
    expect(r.status, `${r.body}\n${logs()}`).toBe(200)
    expect(r.upstream).toHaveLength(1)
    expect(r.upstream[0]!.path).toBe('/api/orders')
    expect(r.upstream[0]!.headers['x-user']).toEqual(['user-42'])
  })

  it('answers an inactive token with 401 and does not reach the upstream', async () => {
    const r = await send('/api/orders', 'opaque-revoked-token')
    expect(r.status, logs()).toBe(401)
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 401, reason: 'token_inactive' } })
    expect(r.upstream).toEqual([])
  })

  it('answers 503 when the introspection endpoint is down, and does not reach the upstream', async () => {
    await idp?.close()
    idpClosed = true
    // A token never seen before: nothing cached can answer for it.
    const r = await send('/api/orders', 'opaque-unseen-token')
    expect(r.status, logs()).toBe(503)
    // Portcullis's denial (a reason in the JSON body), not Envoy's status_on_error (empty body).
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 503, reason: 'upstream_connect' } })
    expect(r.upstream).toEqual([])
    expect(portcullis?.logs().join('\n')).not.toContain('opaque-unseen-token')
  })
})
