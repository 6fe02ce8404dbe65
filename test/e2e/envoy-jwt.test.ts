/**
 * End to end through a real Envoy with the `jwt` authenticator: client → Envoy (envoy/envoy.yaml)
 * → Portcullis (`portcullis serve`, config and rules from test/fixtures/e2e-jwt/) → echo upstream,
 * with the IdP's key set served by the stub server. Proves on the wire that a valid token reaches
 * the upstream with `X-User` from its subject (a client-sent `X-User` overwritten), that expired
 * and forged tokens are 401 (JSON, or WWW-Authenticate where the rule says so) without reaching
 * the upstream, and that a key set unreachable from the start is a 503 denial from Portcullis.
 * Needs `npm run build` first, as test/e2e/envoy.test.ts.
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT, startEchoServer, startEnvoy, type EchoServer, type EchoedRequest, type EnvoyProcess } from '../helpers/envoy.js'
import { claimsAt, jwksOf, makeKey, seconds, serveJwks, signJwt, signRaw } from '../helpers/jwt.js'
import { startPortcullis, type PortcullisProcess } from '../helpers/portcullis.js'
import { startStub, type Stub } from '../helpers/stub-server.js'

const HOST = 'app.example.com'
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'e2e-jwt')
const idpKey = makeKey('RS256', 'e2e-1')
const attacker = makeKey('RS256', 'e2e-1', { seed: 'attacker' })

let idp: Stub | undefined
let echo: EchoServer | undefined
let portcullis: PortcullisProcess | undefined
let envoy: EnvoyProcess | undefined
let dir: string | undefined

beforeAll(async () => {
  idp = await startStub()
  serveJwks(idp, '/.well-known/jwks.json', jwksOf(idpKey))
  // A port nothing listens on: the key set of rule jwt-down is down from the start.
  const gone = await startStub()
  const downUrl = gone.url('/jwks.json')
  await gone.close()

  dir = mkdtempSync(join(tmpdir(), 'portcullis-e2e-jwt-'))
  const fill = (name: string): void => {
    const text = readFileSync(join(FIXTURES, name), 'utf8')
      .replaceAll('__JWKS_URL__', idp!.url('/.well-known/jwks.json'))
      .replaceAll('__JWKS_DOWN_URL__', downUrl)
    writeFileSync(join(dir!, name), text)
  }
  fill('portcullis.yaml')
  fill('rules.yaml')

  echo = await startEchoServer()
  portcullis = await startPortcullis({ config: join(dir, 'portcullis.yaml') })
  envoy = await startEnvoy({ portcullisPort: portcullis.grpcPort, upstreamPort: echo.port })
  // Warm up Envoy's HTTP/2 connection to Portcullis (see test/e2e/envoy.test.ts).
  const deadline = Date.now() + 15_000
  while ((await send('/nothing')).status === 503 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
  }
}, 60_000)

afterAll(async () => {
  await envoy?.stop()
  await portcullis?.stop()
  await echo?.close()
  await idp?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
}, 30_000)

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
  readonly upstream: readonly EchoedRequest[]
}

async function send(path: string, headers: Record<string, string> = {}): Promise<Reply> {
  if (envoy === undefined || echo === undefined) throw new Error('Envoy did not start (see beforeAll)')
  const port = envoy.port
  const seen = echo.requests.length
  const reply = await new Promise<Omit<Reply, 'upstream'>>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers: { host: HOST, ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
  return { ...reply, upstream: echo.requests.slice(seen) }
}

const logs = (): string => portcullis?.logs().slice(-20).join('\n') ?? ''
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

describe('jwt through Envoy', () => {
  it('forwards a valid token with X-User = sub, overwriting a client-sent X-User', async () => {
    const token = await signJwt(idpKey, claimsAt(Date.now(), { scope: 'read write' }))
    const r = await send('/jwt/x', { ...bearer(token), 'x-user': 'mallory' })
    expect(r.status, `${r.body}\n${logs()}`).toBe(200)
    expect(r.upstream).toHaveLength(1)
    expect(r.upstream[0]!.headers['x-user']).toEqual(['alice'])
    expect(r.upstream[0]!.headers['x-scopes']).toEqual(['[read write]'])
  })

  it('answers an expired token with 401 JSON, upstream not reached', async () => {
    const token = await signJwt(idpKey, claimsAt(Date.now(), { exp: seconds(Date.now()) - 60 }))
    const r = await send('/jwt/x', bearer(token))
    expect(r.status, logs()).toBe(401)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 401 } })
    expect(r.body).not.toContain(token.split('.')[2]!)
    expect(r.upstream).toEqual([])
  })

  it('answers a forged token (right kid, wrong key) with 401 and WWW-Authenticate', async () => {
    const token = signRaw(attacker, { alg: 'RS256', kid: 'e2e-1' }, claimsAt(Date.now()))
    const r = await send('/www/x', bearer(token))
    expect(r.status, logs()).toBe(401)
    expect(r.headers['www-authenticate']).toMatch(/^Basic realm="?Portcullis JWT"?$/)
    expect(r.upstream).toEqual([])
  })

  it('answers alg none with 401', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')
    const payload = Buffer.from(JSON.stringify(claimsAt(Date.now()))).toString('base64url')
    const r = await send('/jwt/x', bearer(`${header}.${payload}.`))
    expect(r.status, logs()).toBe(401)
    expect(r.upstream).toEqual([])
  })

  it('answers 503 from Portcullis (not Envoy) when the key set was down from the start', async () => {
    const token = await signJwt(idpKey, claimsAt(Date.now()))
    const r = await send('/down/x', bearer(token))
    expect(r.status, logs()).toBe(503)
    // Portcullis's JSON error body, not Envoy's status_on_error (which has no body).
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 503 } })
    expect(r.upstream).toEqual([])
  })

  it('did not fetch the key set per request', () => {
    // One fetch at start; a second only if that one failed (a cold process on a busy machine).
    expect(idp!.hitsFor('/.well-known/jwks.json')).toBeLessThanOrEqual(2)
  })
})
