/**
 * A real grpc-js client against the real server on an ephemeral port: every outcome the rule
 * pipeline can produce, as Envoy would see it on the wire.
 */
import * as grpc from '@grpc/grpc-js'
import { service as HealthService } from 'grpc-health-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkClient, headerOf, httpRequest, type CheckClient } from '../helpers/check-client.js'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth.js'

const H = 'https://api.example.com'
const rule = (id: string, url: string, extra: Record<string, unknown>) => ({
  id,
  match: { url, methods: ['GET', 'POST'] },
  authenticators: [{ handler: 'anonymous' }],
  authorizer: { handler: 'allow' },
  mutators: [{ handler: 'noop' }],
  ...extra,
})
const RULES = [
  rule('public', `${H}/public/<.*>`, {
    mutators: [
      {
        handler: 'header',
        config: { headers: { 'X-User': '{{ print .Subject }}', 'X-Path': '{{ index .MatchContext.RegexpCaptureGroups 0 }}' } },
      },
    ],
  }),
  rule('static', `${H}/static/<.*>`, {}),
  rule('admin', `${H}/admin/<.*>`, { authorizer: { handler: 'deny' } }),
  rule('api', `${H}/api/<.*>`, {
    authenticators: [{ handler: 'unauthorized' }],
    errors: [{ handler: 'www_authenticate', config: { realm: 'api' } }],
  }),
  rule('account', `${H}/account/<.*>`, {
    authenticators: [{ handler: 'unauthorized' }],
    errors: [{ handler: 'redirect', config: { to: 'https://login.example.com/login', return_to_query_param: 'return_to' } }],
  }),
  rule('dup-a', `${H}/dup/<.*>`, {}),
  rule('dup-b', `${H}/dup/<[a-z]+>`, {}),
  rule('crlf', `${H}/crlf`, {
    authenticators: [{ handler: 'anonymous', config: { subject: 'alice\r\nx-roles: admin' } }],
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}' } } }],
  }),
]

let s: Started
let c: CheckClient
beforeAll(async () => {
  s = await startWith(ALL_HANDLERS, RULES)
  c = checkClient(s.port)
})
afterAll(async () => {
  c?.close()
  await s?.stop()
})

describe('allow', () => {
  it('sets mutator headers with overwrite semantics and rule metadata', async () => {
    const r = await c.check(httpRequest({ path: '/public/docs?x=1' }))
    expect(r.status?.code).toBe(0)
    expect(headerOf(r, 'x-user')).toBe('anonymous')
    expect(headerOf(r, 'x-path')).toBe('docs')
    const h = r.okResponse!.headers.find((o) => o.header?.key === 'x-user')!
    expect(h.append).toBe(false)
    expect(r.okResponse!.headersToRemove).toEqual([])
    expect(r.dynamicMetadata).toMatchObject({ rule_id: 'public', decision: 'allow' })
  })

  it('removes managed identity headers the rule does not set', async () => {
    const r = await c.check(httpRequest({ path: '/static/a.css', headers: { 'x-user': 'admin' } }))
    expect(r.status?.code).toBe(0)
    expect(r.okResponse!.headers).toEqual([])
    expect([...r.okResponse!.headersToRemove].sort()).toEqual(['x-path', 'x-user'])
  })

  it('removes client look-alikes of managed headers (x_user)', async () => {
    const r = await c.check(httpRequest({ path: '/public/x', headers: { x_user: 'admin', 'x-user': 'admin' } }))
    expect(r.status?.code).toBe(0)
    expect(headerOf(r, 'x-user')).toBe('anonymous')
    expect(r.okResponse!.headersToRemove).toEqual(['x_user'])
  })
})

describe('deny', () => {
  const cases = [
    { name: 'deny authorizer → 403', path: '/admin/users', grpc: 7, http: 403 },
    { name: 'no rule → 404', path: '/nothing', grpc: 5, http: 404 },
    { name: 'two rules → 500', path: '/dup/x', grpc: 13, http: 500 },
    { name: 'unauthorized → 401', path: '/api/x', grpc: 16, http: 401 },
    { name: 'redirect error handler → 302', path: '/account/me', grpc: 16, http: 302 },
    { name: 'encoded dot segments resolve before matching → admin rule', path: '/public/%2e%2e/admin/users', grpc: 7, http: 403 },
    { name: 'double slash → 400', path: '//admin/users', grpc: 3, http: 400 },
    { name: 'backslash → 400', path: '/public\\..\\admin/users', grpc: 3, http: 400 },
    { name: 'encoded slash → 400', path: '/public/..%2fadmin/users', grpc: 3, http: 400 },
    { name: 'traversal is resolved before matching → admin rule', path: '/public/../admin/users', grpc: 7, http: 403 },
    { name: 'query is never matched', path: '/admin/users?x=/public/a', grpc: 7, http: 403 },
    { name: 'CR/LF in a header value → 500', path: '/crlf', grpc: 13, http: 500 },
  ]
  it.each(cases)('$name', async ({ path, grpc: code, http }) => {
    const r = await c.check(httpRequest({ path }))
    expect(r.status?.code).toBe(code)
    expect(r.deniedResponse?.status?.code).toBe(http)
  })

  it('401 carries WWW-Authenticate from the rule', async () => {
    const r = await c.check(httpRequest({ path: '/api/x' }))
    expect(headerOf(r, 'www-authenticate')).toMatch(/^Basic realm=/)
  })

  it('302 carries Location with return_to built from the request, not X-Forwarded-*', async () => {
    const r = await c.check(httpRequest({ path: '/account/me?tab=1', headers: { 'x-forwarded-host': 'evil.example' } }))
    const loc = headerOf(r, 'location')!
    expect(loc.startsWith('https://login.example.com/login?return_to=')).toBe(true)
    expect(decodeURIComponent(loc.split('return_to=')[1]!)).toBe('https://api.example.com/account/me?tab=1')
  })

  it('JSON error body names the outcome', async () => {
    const r = await c.check(httpRequest({ path: '/nothing' }))
    expect(headerOf(r, 'content-type')).toMatch(/application\/json/)
    expect(JSON.parse(r.deniedResponse!.body)).toMatchObject({ error: { code: 404 } })
  })

  it('anonymous is not responsible when Authorization is present → 401', async () => {
    const r = await c.check(httpRequest({ path: '/public/x', headers: { authorization: 'Bearer abc' } }))
    expect(r.deniedResponse?.status?.code).toBe(401)
  })

  it('decisions never read X-Forwarded-*, X-Original-URL, X-Envoy-Original-Path or :authority copies', async () => {
    const r = await c.check(
      httpRequest({
        path: '/admin/users',
        headers: {
          'x-forwarded-uri': '/public/x',
          'x-original-url': '/public/x',
          'x-envoy-original-path': '/public/x',
          'x-forwarded-host': 'other.example.com',
          'x-forwarded-proto': 'http',
        },
      }),
    )
    expect(r.deniedResponse?.status?.code).toBe(403)
  })
})

describe('bad input is a denial, never a gRPC error', () => {
  it('empty CheckRequest → 400', async () => {
    const r = await c.check(CheckRequest.fromJSON({}))
    expect(r.status?.code).toBe(3)
    expect(r.deniedResponse?.status?.code).toBe(400)
  })
  it('bytes that are not a CheckRequest → 400', async () => {
    const r = await c.checkRaw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]))
    expect(r.deniedResponse?.status?.code).toBe(400)
  })
  it('request without http attributes → 400', async () => {
    const r = await c.check(CheckRequest.fromJSON({ attributes: { request: {} } }))
    expect(r.deniedResponse?.status?.code).toBe(400)
  })
})

describe('health and logs', () => {
  it('grpc.health.v1 reports SERVING once rules are loaded', async () => {
    const HealthClient = grpc.makeGenericClientConstructor(HealthService, 'Health')
    const hc = new HealthClient(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure())
    const status = await new Promise<unknown>((resolve, reject) =>
      (hc as unknown as { check: (r: object, cb: (e: Error | null, r: { status: string }) => void) => void }).check(
        { service: 'envoy.service.auth.v3.Authorization' },
        (e, r) => (e ? reject(e) : resolve(r.status)),
      ),
    )
    hc.close()
    expect(status).toBe('SERVING')
  })

  it('one JSON line per decision, without credentials', async () => {
    const secret = 'Bearer s3cr3t-t0ken-value'
    await c.check(httpRequest({ path: '/admin/x', headers: { authorization: secret, cookie: 'session=s3cr3t-cookie' } }))
    await new Promise((r) => setTimeout(r, 50))
    const all = s.logs.join('')
    expect(all).not.toContain('s3cr3t')
    const decisions = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'decision')
    const last = decisions.at(-1)!
    expect(last).toMatchObject({ rule_id: 'admin', decision: 'deny', reason: 'no_authenticator_responsible', http_status: 401 })
    expect(typeof last['duration_ms']).toBe('number')
  })
})
