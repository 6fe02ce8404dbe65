/**
 * cookie_session and bearer_token through the real gRPC server: a Check with a session cookie is
 * sent to a real session stub (Kratos `/sessions/whoami`-like), and the header mutator turns the
 * subject into `X-User`. Every failure of the session endpoint is a denial on the wire.
 */
import type { ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkClient, headerOf, httpRequest, type CheckClient } from '../helpers/check-client.js'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { startStub, type RecordedRequest, type Stub } from '../helpers/stub-server.js'

const H = 'https://app.example.com'
const IDENTITY = '9f425a8d-7efc-4768-8f23-7647a74fdf13'

/** The session stub: the answer depends on the session cookie, as a real session store's does. */
function whoami(r: RecordedRequest, res: ServerResponse): void {
  const cookie = String(r.headers['cookie'] ?? '')
  const token = String(r.headers['authorization'] ?? '')
  const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(JSON.stringify(body))
  }
  if (cookie.includes('session=valid') || token === 'Bearer ory_st_valid') {
    json(200, { id: 'sess-1', active: true, identity: { id: IDENTITY, traits: { email: 'alice@example.com' } } })
  } else if (cookie.includes('session=empty')) json(200, {})
  else if (cookie.includes('session=busy')) json(429, { error: 'slow down' }, { 'retry-after': '3' })
  else if (cookie.includes('session=down')) json(500, { error: 'db down' })
  else if (cookie.includes('session=hang')) return
  else json(401, { error: { code: 401, message: 'No valid session credentials found' } })
}

const header = { handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}', 'X-Email': '{{ print .Extra.identity.traits.email }}' } } }
const RULES = [
  {
    id: 'app',
    match: { url: `${H}/app/<.*>`, methods: ['GET', 'POST', 'DELETE', 'OPTIONS'] },
    authenticators: [{ handler: 'cookie_session' }],
    authorizer: { handler: 'allow' },
    mutators: [header],
  },
  {
    id: 'mixed',
    match: { url: `${H}/mixed/<.*>`, methods: ['GET'] },
    authenticators: [{ handler: 'cookie_session' }, { handler: 'bearer_token' }, { handler: 'anonymous' }],
    authorizer: { handler: 'allow' },
    // Only X-User: `.Extra.identity.traits` fails on an anonymous session, as it does in Go.
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}' } } }],
  },
]

let stub: Stub
let s: Started
let c: CheckClient
beforeAll(async () => {
  stub = await startStub()
  stub.setMode('/sessions/whoami', whoami)
  // A per-handler deadline well above a loaded CI machine's latency, well below the Check's (1 s).
  const check = { check_session_url: stub.url('/sessions/whoami'), preserve_path: true, subject_from: 'identity.id', extra_from: '@this', timeout: '400ms' }
  s = await startWith(
    {
      ...ALL_HANDLERS,
      authenticators: {
        ...ALL_HANDLERS.authenticators,
        cookie_session: { enabled: true, config: { ...check, only: ['session'] } },
        bearer_token: { enabled: true, config: { ...check, prefix: 'ory_st_' } },
      },
    },
    RULES,
  )
  c = checkClient(s.port)
})
afterAll(async () => {
  c?.close()
  await s?.stop()
  await stub?.close()
})

const lastCall = (): RecordedRequest => stub.requests.at(-1)!

describe('cookie_session through the gRPC server', () => {
  it('a valid session cookie is allowed and X-User is the identity id (client copy overwritten)', async () => {
    const r = await c.check(httpRequest({ host: 'app.example.com', path: '/app/dashboard', headers: { cookie: 'theme=dark; session=valid', 'x-user': 'admin' } }))
    expect(r.status?.code).toBe(0)
    expect(headerOf(r, 'x-user')).toBe(IDENTITY)
    expect(headerOf(r, 'x-email')).toBe('alice@example.com')
    expect(r.dynamicMetadata).toMatchObject({ rule_id: 'app', decision: 'allow' })
    const call = lastCall()
    expect(call.method).toBe('GET')
    expect(call.url).toBe('/sessions/whoami')
    expect(call.headers['cookie']).toBe('theme=dark; session=valid')
  })

  it('the session endpoint is called with GET whatever the client method', async () => {
    for (const method of ['DELETE', 'OPTIONS', 'POST']) {
      const r = await c.check(httpRequest({ method, host: 'app.example.com', path: '/app/settings', headers: { cookie: 'session=valid' } }))
      expect(r.status?.code).toBe(0)
      expect(lastCall().method).toBe('GET')
    }
  })

  const denials = [
    { name: 'no cookie → 401 (no authenticator responsible)', cookie: undefined, grpc: 16, http: 401, calls: 0 },
    { name: 'another cookie only → 401 (only: [session])', cookie: 'theme=dark', grpc: 16, http: 401, calls: 0 },
    { name: 'an unknown session → 401', cookie: 'session=forged', grpc: 16, http: 401, calls: 1 },
    { name: 'A43: 200 {} → 401, never an empty subject', cookie: 'session=empty', grpc: 16, http: 401, calls: 1 },
    { name: 'session store 500 → 503', cookie: 'session=down', grpc: 14, http: 503, calls: 1 },
    { name: 'session store hangs → 503 within the outbound deadline', cookie: 'session=hang', grpc: 14, http: 503, calls: 1 },
    { name: 'A49: session=valid; session=forged → 401, store not called', cookie: 'session=valid; session=forged', grpc: 16, http: 401, calls: 0 },
  ]
  it.each(denials)('$name', async ({ cookie, grpc, http, calls }) => {
    const before = stub.hits
    const started = performance.now()
    const r = await c.check(httpRequest({ host: 'app.example.com', path: '/app/x', headers: cookie === undefined ? {} : { cookie } }))
    expect(r.status?.code).toBe(grpc)
    expect(r.deniedResponse?.status?.code).toBe(http)
    expect(performance.now() - started).toBeLessThan(1000)
    expect(stub.hits - before).toBe(calls)
  })

  it('429 from the session store → 429 with Retry-After', async () => {
    const r = await c.check(httpRequest({ host: 'app.example.com', path: '/app/x', headers: { cookie: 'session=busy' } }))
    expect(r.deniedResponse?.status?.code).toBe(429)
    expect(headerOf(r, 'retry-after')).toBe('3')
  })
})

describe('a chain cookie_session → bearer_token → anonymous', () => {
  it('a cookie: cookie_session decides', async () => {
    const r = await c.check(httpRequest({ host: 'app.example.com', path: '/mixed/a', headers: { cookie: 'session=valid' } }))
    expect(r.status?.code).toBe(0)
    expect(headerOf(r, 'x-user')).toBe(IDENTITY)
  })

  it('a session token with the prefix: bearer_token decides', async () => {
    const r = await c.check(httpRequest({ host: 'app.example.com', path: '/mixed/a', headers: { authorization: 'Bearer ory_st_valid' } }))
    expect(r.status?.code).toBe(0)
    expect(headerOf(r, 'x-user')).toBe(IDENTITY)
    expect(lastCall().headers['authorization']).toBe('Bearer ory_st_valid')
  })

  it('a bad session token: 401, no fall-through to anonymous', async () => {
    const r = await c.check(httpRequest({ host: 'app.example.com', path: '/mixed/a', headers: { authorization: 'Bearer ory_st_bad' } }))
    expect(r.deniedResponse?.status?.code).toBe(401)
  })

  it('no credential → anonymous; a token of another kind → 401 (neither is responsible)', async () => {
    const anon = await c.check(httpRequest({ host: 'app.example.com', path: '/mixed/a' }))
    expect(anon.status?.code).toBe(0)
    expect(headerOf(anon, 'x-user')).toBe('anonymous')
    // A JWT-like token: bearer_token is not responsible (prefix), anonymous neither (Authorization present).
    const other = await c.check(httpRequest({ host: 'app.example.com', path: '/mixed/a', headers: { authorization: 'Bearer a.b.c' } }))
    expect(other.deniedResponse?.status?.code).toBe(401)
  })
})
