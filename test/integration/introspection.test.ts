/**
 * `oauth2_introspection` and `oauth2_client_credentials` through the real gRPC server (config and
 * rule files, rule compiler, global-config merge, pipeline, error handlers, wire encoding) with a
 * real grpc-js client, against real HTTP stubs for the introspection and token endpoints:
 * allow / 401 / 403 / 429 / 503 as Envoy sees them, cache-key completeness across rules (A36),
 * rule checks on cache hits (A37), and 1 000 concurrent Checks coalesced into one call (A40).
 */
import type { ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkClient, headerOf, httpRequest, type CheckClient } from '../helpers/check-client.js'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { startStub, type Stub } from '../helpers/stub-server.js'

const H = 'https://api.example.com'
const GRPC = { OK: 0, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14, UNAUTHENTICATED: 16 }

let idp: Stub
let s: Started
let c: CheckClient

/** Introspection answers by token, per endpoint path (mutable: tests change them). */
const tables: Record<string, Record<string, unknown>> = {
  '/i1': {
    'tok-alice': { active: true, sub: 'alice', scope: 'read', aud: ['other'] },
    'tok-shared': { active: true, sub: 'shared-user', scope: 'read' },
  },
  '/i2': {
    'tok-shared': { active: false },
    'tok-bob': { active: true, sub: 'bob', aud: ['billing'] },
    'tok-carol': { active: true, sub: 'carol', aud: ['other'] },
  },
  '/coalesce': {},
}

function serveTable(path: string, delayMs = 0): void {
  idp.setMode(path, {
    kind: 'custom',
    handle(req, res: ServerResponse) {
      const token = new URLSearchParams(req.body).get('token') ?? ''
      const text = JSON.stringify(tables[path]?.[token] ?? { active: false })
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(text), delayMs)
    },
  })
}

const rule = (id: string, url: string, authenticators: unknown[], headers: Record<string, string> = { 'X-User': '{{ print .Subject }}' }) => ({
  id,
  match: { url, methods: ['GET', 'POST'] },
  authenticators,
  authorizer: { handler: 'allow' },
  mutators: [{ handler: 'header', config: { headers } }],
})

beforeAll(async () => {
  idp = await startStub()
  serveTable('/i1')
  serveTable('/i2')
  serveTable('/coalesce')
  idp.setMode('/token', {
    kind: 'custom',
    handle(req, res) {
      const ok = req.headers['authorization'] === `Basic ${Buffer.from('svc:svc-secret').toString('base64')}`
      if (ok) res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"x","expires_in":60}')
      else res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}')
    },
  })
  idp.setMode('/limited', { kind: 'json', status: 429, body: {}, headers: { 'retry-after': '12' } })
  const cache = { enabled: true, ttl: '1m', negative_ttl: '10s' }
  s = await startWith(
    {
      ...ALL_HANDLERS,
      authenticators: {
        ...ALL_HANDLERS.authenticators,
        oauth2_introspection: { enabled: true, config: { introspection_url: idp.url('/i1'), cache } },
        oauth2_client_credentials: { enabled: true, config: { token_url: idp.url('/token'), cache } },
      },
      // One HTTP request per introspection call (no outbound retries), so stub hits count calls.
      outbound: { timeout: '5s', retry: { max_retries: 0 }, breaker: { failure_threshold: 1_000_000 }, max_pending_per_origin: 4096 },
    },
    [
      rule('users', `${H}/api/v1/users/<[0-9]+>`, [{ handler: 'oauth2_introspection', config: { scope_strategy: 'exact', required_scope: ['read'] } }], {
        'X-User': '{{ print .Subject }}',
        'X-Scope': '{{ print .Extra.scope }}',
      }),
      // Same cache settings as `users`: one shared cache, only the key keeps the endpoints apart.
      rule('billing', `${H}/billing/<.*>`, [{ handler: 'oauth2_introspection', config: { introspection_url: idp.url('/i2'), target_audience: ['billing'] } }]),
      // I1 again, same call as `users` (strategy exact: no scope parameter), but requiring an
      // audience the token lacks: answered from the entry `users` stored, and checked anew.
      rule('strict', `${H}/strict/<.*>`, [{ handler: 'oauth2_introspection', config: { scope_strategy: 'exact', target_audience: ['billing'] } }]),
      rule('down', `${H}/down/<.*>`, [{ handler: 'oauth2_introspection', config: { introspection_url: 'http://127.0.0.1:9/introspect' } }]),
      rule('limited', `${H}/limited/<.*>`, [{ handler: 'oauth2_introspection', config: { introspection_url: idp.url('/limited') } }]),
      rule('coalesce', `${H}/coalesce/<.*>`, [{ handler: 'oauth2_introspection', config: { introspection_url: idp.url('/coalesce') } }]),
      rule('clients', `${H}/clients/<.*>`, [{ handler: 'oauth2_client_credentials' }]),
      // Tokens with another prefix fall through to the next authenticator.
      rule('prefixed', `${H}/prefixed/<.*>`, [{ handler: 'oauth2_introspection', config: { prefix: 'tok-a' } }, { handler: 'unauthorized' }]),
    ],
  )
  c = checkClient(s.port)
}, 60_000)

afterAll(async () => {
  c?.close()
  await s?.stop()
  await idp?.close()
})

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

describe('oauth2_introspection over gRPC', () => {
  it('allows an active token; the upstream gets X-User from .Subject and X-Scope from .Extra', async () => {
    const r = await c.check(httpRequest({ path: '/api/v1/users/1', headers: bearer('tok-alice') }))
    expect(r.status?.code).toBe(GRPC.OK)
    expect(headerOf(r, 'x-user')).toBe('alice')
    expect(headerOf(r, 'x-scope')).toBe('read')
    expect(r.dynamicMetadata).toMatchObject({ rule_id: 'users', decision: 'allow', subject: 'alice' })
  })

  it('denies an inactive token 401', async () => {
    const r = await c.check(httpRequest({ path: '/api/v1/users/1', headers: bearer('tok-nobody') }))
    expect(r.status?.code).toBe(GRPC.UNAUTHENTICATED)
    expect(r.deniedResponse?.status?.code).toBe(401)
    expect(r.dynamicMetadata).toMatchObject({ decision: 'deny', reason: 'token_inactive' })
  })

  it.each(['I1 first', 'I2 first'])('a token active at I1 and inactive at I2 is allowed only on I1 rules, I2 is asked (A36, %s)', async (order) => {
    const token = `tok-a36-${order.replace(' ', '-')}`
    tables['/i1']![token] = { active: true, sub: 'x', scope: 'read' }
    tables['/i2']![token] = { active: false }
    const users = () => c.check(httpRequest({ path: '/api/v1/users/7', headers: bearer(token) }))
    const billing = () => c.check(httpRequest({ path: '/billing/invoices', headers: bearer(token) }))
    const before = idp.hitsFor('/i2')
    const [first, second] = order === 'I1 first' ? [await users(), await billing()] : [await billing(), await users()]
    const [u, b] = order === 'I1 first' ? [first, second] : [second, first]
    expect(u.status?.code).toBe(GRPC.OK)
    expect(b.deniedResponse?.status?.code).toBe(401)
    expect(idp.hitsFor('/i2')).toBe(before + 1)
  })

  it('re-checks the audience on a cache hit: a token cached by a lenient rule is refused 403 by a strict one (A37)', async () => {
    const ok = await c.check(httpRequest({ path: '/api/v1/users/2', headers: bearer('tok-alice') }))
    expect(ok.status?.code).toBe(GRPC.OK)
    const hits = idp.hitsFor('/i1')
    const r = await c.check(httpRequest({ path: '/strict/x', headers: bearer('tok-alice') }))
    expect(r.status?.code).toBe(GRPC.PERMISSION_DENIED)
    expect(r.deniedResponse?.status?.code).toBe(403)
    expect(r.dynamicMetadata).toMatchObject({ reason: 'audience_mismatch' })
    expect(idp.hitsFor('/i1')).toBe(hits) // answered from the cache
  })

  it('checks the audience on the other endpoint too', async () => {
    expect((await c.check(httpRequest({ path: '/billing/x', headers: bearer('tok-bob') }))).status?.code).toBe(GRPC.OK)
    const r = await c.check(httpRequest({ path: '/billing/x', headers: bearer('tok-carol') }))
    expect(r.deniedResponse?.status?.code).toBe(403)
  })

  it('denies 503 (UNAVAILABLE, a denied response, not a gRPC error) when the endpoint is down', async () => {
    const r = await c.check(httpRequest({ path: '/down/x', headers: bearer('tok-alice') }))
    expect(r.status?.code).toBe(GRPC.UNAVAILABLE)
    expect(r.deniedResponse?.status?.code).toBe(503)
    expect(r.dynamicMetadata).toMatchObject({ reason: 'upstream_connect' })
  })

  it('passes a 429 from the endpoint on with Retry-After', async () => {
    const r = await c.check(httpRequest({ path: '/limited/x', headers: bearer('tok-alice') }))
    expect(r.deniedResponse?.status?.code).toBe(429)
    expect(headerOf(r, 'retry-after')).toBe('12')
  })

  it('is not responsible for a token without the prefix: the next authenticator decides', async () => {
    expect((await c.check(httpRequest({ path: '/prefixed/x', headers: bearer('tok-alice') }))).status?.code).toBe(GRPC.OK)
    const before = idp.hitsFor('/i1')
    const r = await c.check(httpRequest({ path: '/prefixed/x', headers: bearer('tok-bob') }))
    expect(r.dynamicMetadata).toMatchObject({ decision: 'deny' })
    expect(r.deniedResponse?.status?.code).toBe(401)
    expect(idp.hitsFor('/i1')).toBe(before)
  })

  /**
   * Holds the `/coalesce` endpoint's answer until all `n` Checks wait on the one introspection call
   * (read from the server's own cache stats: `coalesced` counts lookups that joined a call in
   * flight). Over gRPC on a busy 2-core box 1 000 Checks can take seconds to arrive; without the
   * gate, late ones would find the first call already settled and, after a failure, rightly call
   * again: the test would measure the machine, not the coalescing.
   */
  async function gatedCoalesce(n: number, token: string, answer: (res: ServerResponse) => void) {
    const cache = () => s.app.deps.caches.stats().find((st) => st.name.startsWith('oauth2_introspection:'))!
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    idp.setMode('/coalesce', { kind: 'custom', handle: (_req, res) => void gate.then(() => answer(res)) })
    const hits = idp.hitsFor('/coalesce')
    const joined = cache().coalesced
    const pending = Promise.all(Array.from({ length: n }, () => c.check(httpRequest({ path: '/coalesce/x', headers: bearer(token) }))))
    const deadline = Date.now() + 20_000
    while (cache().coalesced - joined < n - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    release()
    const rs = await pending
    return { rs, calls: idp.hitsFor('/coalesce') - hits, joined: cache().coalesced - joined }
  }

  it('1 000 concurrent Checks with one uncached token make exactly 1 introspection call, all allowed (A40)', async () => {
    const body = JSON.stringify({ active: true, sub: 'many' })
    const { rs, calls, joined } = await gatedCoalesce(1000, 'tok-1000', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body))
    expect(joined).toBe(999)
    expect(calls).toBe(1)
    expect(rs.filter((r) => r.status?.code === GRPC.OK && headerOf(r, 'x-user') === 'many')).toHaveLength(1000)
  })

  it('when that one call fails, all 1 000 Checks deny 503 and the next Check calls again (A40)', async () => {
    const { rs, calls, joined } = await gatedCoalesce(1000, 'tok-1000-fail', (res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('boom'))
    expect(joined).toBe(999)
    expect(calls).toBe(1)
    expect(rs.filter((r) => r.status?.code === GRPC.UNAVAILABLE && r.deniedResponse?.status?.code === 503)).toHaveLength(1000)
    tables['/coalesce']!['tok-1000-fail'] = { active: true, sub: 'recovered' }
    serveTable('/coalesce')
    const before = idp.hitsFor('/coalesce')
    const r = await c.check(httpRequest({ path: '/coalesce/x', headers: bearer('tok-1000-fail') }))
    expect(r.status?.code).toBe(GRPC.OK)
    expect(headerOf(r, 'x-user')).toBe('recovered')
    expect(idp.hitsFor('/coalesce') - before).toBe(1)
  })

  it('never logs a token', () => {
    const all = s.logs.join('')
    for (const t of ['tok-alice', 'tok-bob', 'tok-carol', 'tok-nobody', 'tok-1000', 'tok-a36']) expect(all).not.toContain(t)
  })
})

describe('oauth2_client_credentials over gRPC', () => {
  const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` })

  it('allows a client whose credentials the token endpoint grants; X-User is the client id', async () => {
    const r = await c.check(httpRequest({ path: '/clients/x', headers: basic('svc', 'svc-secret') }))
    expect(r.status?.code).toBe(GRPC.OK)
    expect(headerOf(r, 'x-user')).toBe('svc')
  })

  it('denies a wrong secret 401, and a repeat within negative_ttl does not reach the token endpoint', async () => {
    const before = idp.hitsFor('/token')
    for (let i = 0; i < 5; i++) {
      const r = await c.check(httpRequest({ path: '/clients/x', headers: basic('svc', 'wrong-secret') }))
      expect(r.status?.code).toBe(GRPC.UNAUTHENTICATED)
      expect(r.deniedResponse?.status?.code).toBe(401)
    }
    expect(idp.hitsFor('/token') - before).toBe(1)
  })

  it('never logs a secret', () => {
    const all = s.logs.join('')
    for (const t of ['svc-secret', 'wrong-secret', Buffer.from('svc:svc-secret').toString('base64')]) expect(all).not.toContain(t)
  })
})
