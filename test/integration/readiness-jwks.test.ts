/**
 * `health.require_jwks_warm`: a jwt rule whose JWKS was never fetched can only deny (503), so the
 * process is not ready until the keys arrive; /health/ready names the condition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ALL_HANDLERS, startWith, type Started } from '../helpers/in-process.js'
import { jwksOf, makeKey, serveJwks } from '../helpers/jwt.js'
import { startStub, type Stub } from '../helpers/stub-server.js'

let stub: Stub
let s: Started
beforeAll(async () => {
  stub = await startStub()
  stub.setMode('/jwks.json', { kind: '5xx', status: 503 })
  s = await startWith(
    { ...ALL_HANDLERS, authenticators: { ...ALL_HANDLERS.authenticators, jwt: { enabled: true } } },
    [
      {
        id: 'jwt',
        match: { url: 'https://api.example.com/<.*>', methods: ['GET'] },
        authenticators: [{ handler: 'jwt', config: { jwks_urls: [stub.url('/jwks.json')] } }],
        authorizer: { handler: 'allow' },
        mutators: [{ handler: 'noop' }],
      },
    ],
  )
})
afterAll(async () => {
  await s?.stop()
  await stub?.close()
})

async function ready(): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${s.app.api.port}/health/ready`)
  return { status: r.status, body: await r.text() }
}

describe('readiness waits for JWKS', () => {
  it('is not ready while the JWKS cannot be fetched, then ready once it can', async () => {
    const before = await ready()
    expect(before.status).toBe(503)
    expect(JSON.parse(before.body)).toMatchObject({ errors: { jwks_warmed: expect.any(String) } })
    serveJwks(stub, '/jwks.json', jwksOf(makeKey('RS256', 'k1')))
    const deadline = Date.now() + 15_000
    let now = before
    while (now.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      now = await ready()
    }
    expect(now.status).toBe(200)
  }, 20_000)
})
