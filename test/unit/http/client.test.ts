import { afterEach, describe, expect, it } from 'vitest'
import { HttpClient, OutboundConfigSchema, OutboundError, type OutboundConfigInput, type OutboundRequest } from '../../../src/http/client.js'
import { startStub, type Stub, type StubMode } from '../../helpers/stub-server.js'

/** Everything a test opened; closed after each test, client first. */
const opened: { clients: HttpClient[]; stubs: Stub[] } = { clients: [], stubs: [] }
afterEach(async () => {
  await Promise.all(opened.clients.splice(0).map((c) => c.close()))
  await Promise.all(opened.stubs.splice(0).map((s) => s.close()))
})

/**
 * Timing slack on top of a deadline. The suite runs next to other test processes on small CI
 * machines; measured overshoot is 1–6 ms when the machine is idle (see the `[measure]` lines).
 */
const SLACK_MS = 100

/** A stub and a client; `timeout` defaults to 2 s here so only tests about deadlines see 150 ms. */
async function setup(cfg: OutboundConfigInput = {}): Promise<{ stub: Stub; client: HttpClient }> {
  const stub = await startStub()
  const client = new HttpClient(OutboundConfigSchema.parse({ timeout: '2s', ...cfg }))
  opened.stubs.push(stub)
  opened.clients.push(client)
  return { stub, client }
}

function get(stub: Stub, path: string, extra: Partial<OutboundRequest> = {}): OutboundRequest {
  return { url: new URL(stub.url(path)), method: 'GET', ...extra }
}

function post(stub: Stub, path: string, extra: Partial<OutboundRequest> = {}): OutboundRequest {
  return { url: new URL(stub.url(path)), method: 'POST', body: 'token=abc', headers: { 'content-type': 'application/x-www-form-urlencoded' }, ...extra }
}

/** Runs `p`, expecting an OutboundError; returns it with how long it took. */
async function failure(p: () => Promise<unknown>): Promise<{ err: OutboundError; ms: number }> {
  const started = performance.now()
  try {
    await p()
  } catch (err) {
    expect(err).toBeInstanceOf(OutboundError)
    return { err: err as OutboundError, ms: performance.now() - started }
  }
  throw new Error('expected an OutboundError')
}

function statsOf(client: HttpClient, stub: Stub) {
  const s = client.stats().find((o) => o.origin === stub.origin)
  if (s === undefined) throw new Error(`no stats for ${stub.origin}`)
  return s
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('HttpClient: connections', () => {
  it('reuses one keep-alive connection for 100 sequential requests', async () => {
    const { stub, client } = await setup()
    stub.setMode('/jwks', { kind: 'json', body: { keys: [] } })
    for (let i = 0; i < 100; i++) {
      const res = await client.request(get(stub, '/jwks'))
      expect(res.status).toBe(200)
    }
    expect(stub.hits).toBe(100)
    expect(stub.connections.accepted).toBeLessThanOrEqual(2)
    expect(statsOf(client, stub)).toMatchObject({ requests: 100, attempts: 100, connections: stub.connections.open })
    console.log(`[measure] 100 sequential requests used ${stub.connections.accepted} connection(s)`)
  })

  it('never opens more than max_connections_per_origin sockets for 500 concurrent requests', async () => {
    const { stub, client } = await setup({ max_connections_per_origin: 32, max_pending_per_origin: 1000 })
    stub.setMode('/introspect', { kind: 'slow', delayMs: 10, then: { kind: 'json', body: { active: true } } })
    const started = performance.now()
    const results = await Promise.all(Array.from({ length: 500 }, () => client.request(post(stub, '/introspect', { timeoutMs: 10_000 }))))
    const ms = performance.now() - started
    expect(results.every((r) => r.status === 200)).toBe(true)
    expect(stub.hits).toBe(500)
    expect(stub.connections.maxOpen).toBeLessThanOrEqual(32)
    expect(stub.connections.accepted).toBeLessThanOrEqual(32)
    expect(stub.active.max).toBeLessThanOrEqual(32)
    console.log(`[measure] 500 concurrent requests: ${stub.connections.accepted} connections accepted, ${stub.connections.maxOpen} open at most, ${ms.toFixed(0)} ms`)
  })

  it('fails fast with overloaded when more than max_pending_per_origin calls wait', async () => {
    const { stub, client } = await setup({ max_connections_per_origin: 2, max_pending_per_origin: 3, timeout: '300ms' })
    stub.setMode('/session', 'hang')
    const calls = Array.from({ length: 10 }, () => failure(() => client.request(get(stub, '/session'))))
    const errs = await Promise.all(calls)
    const overloaded = errs.filter((e) => e.err.kind === 'overloaded')
    const timedOut = errs.filter((e) => e.err.kind === 'timeout')
    expect(overloaded).toHaveLength(5)
    expect(timedOut).toHaveLength(5)
    expect(Math.max(...overloaded.map((e) => e.ms))).toBeLessThan(SLACK_MS)
    expect(stub.hits).toBeLessThanOrEqual(2)
    expect(stub.connections.maxOpen).toBeLessThanOrEqual(2)
    expect(statsOf(client, stub).errors).toMatchObject({ overloaded: 5, timeout: 5 })
  })

  it('stops at max_origins distinct origins', async () => {
    const { stub, client } = await setup({ max_origins: 1 })
    stub.setMode('*', { kind: 'json', body: {} })
    await client.request(get(stub, '/a'))
    const other = new URL(stub.url('/a').replace('127.0.0.1', 'localhost'))
    const { err } = await failure(() => client.request({ url: other, method: 'GET' }))
    expect(err.kind).toBe('overloaded')
    expect(err.message).toMatch(/max_origins/)
  })
})

describe('HttpClient: deadlines and body caps', () => {
  const slowModes: { name: string; mode: StubMode }[] = [
    { name: 'slow (500 ms before headers)', mode: { kind: 'slow', delayMs: 500 } },
    { name: 'hang (no answer)', mode: 'hang' },
    { name: 'never-ending (headers, then a chunk every 50 ms)', mode: 'never-ending' },
  ]
  it.each(slowModes)('times out on $name within the deadline and closes the socket', async ({ mode }) => {
    const { stub, client } = await setup({ timeout: '150ms' })
    stub.setMode('/jwks', mode)
    const { err, ms } = await failure(() => client.request(get(stub, '/jwks')))
    expect(err.kind).toBe('timeout')
    expect(err.message).toBe(`GET ${stub.origin}/jwks: timed out after 150 ms`)
    expect(ms).toBeGreaterThanOrEqual(145)
    expect(ms).toBeLessThan(150 + SLACK_MS)
    expect(stub.hits).toBe(1) // a timeout is never retried
    await stub.connectionClosed(stub.requests[0]!.connection, 200)
    expect(stub.connections.open).toBeLessThanOrEqual(1) // undici#5845: one idle replacement at most
    console.log(`[measure] timeout 150 ms on ${typeof mode === 'string' ? mode : mode.kind}: failed after ${ms.toFixed(1)} ms`)
  })

  it('honours a per-call timeout', async () => {
    const { stub, client } = await setup({ timeout: '5s' })
    stub.setMode('/jwks', 'hang')
    const { err, ms } = await failure(() => client.request(get(stub, '/jwks', { timeoutMs: 40 })))
    expect(err.kind).toBe('timeout')
    expect(ms).toBeLessThan(40 + SLACK_MS)
  })

  it('keeps all attempts and backoff inside one deadline', async () => {
    const { stub, client } = await setup({ timeout: '100ms', retry: { max_retries: 10, backoff: '30ms', max_backoff: '30ms' } })
    stub.setMode('/jwks', { kind: '5xx', status: 503 })
    const started = performance.now()
    // Ends with the last 503 when the next backoff would not fit, or with `timeout` when the
    // deadline passes while an attempt is in flight (on a loaded machine); never later.
    const outcome = await client.request(get(stub, '/jwks')).then((r) => r.status, (e: OutboundError) => e.kind)
    expect([503, 'timeout']).toContain(outcome)
    expect(performance.now() - started).toBeLessThan(100 + SLACK_MS)
    expect(stub.hits).toBeGreaterThan(1)
    expect(stub.hits).toBeLessThanOrEqual(1 + Math.ceil(100 / 15))
  })

  const huge: { name: string; contentLength: boolean }[] = [
    { name: 'streamed (chunked)', contentLength: false },
    { name: 'announced by content-length', contentLength: true },
  ]
  it.each(huge)('stops reading a 50 MiB body at the 1 MiB cap: $name', async ({ contentLength }) => {
    const { stub, client } = await setup({ timeout: '5s' })
    stub.setMode('/jwks', { kind: 'huge', mib: 50, contentLength })
    const before = process.memoryUsage().arrayBuffers
    const { err, ms } = await failure(() => client.request(get(stub, '/jwks')))
    const grown = process.memoryUsage().arrayBuffers - before
    expect(err.kind).toBe('too_large')
    expect(err.message).toBe(`GET ${stub.origin}/jwks: response body exceeds 1048576 bytes`)
    await stub.connectionClosed(stub.requests[0]!.connection, 1000)
    // What the stub managed to write before the client hung up: the cap plus socket buffers.
    expect(stub.bytesStreamed).toBeLessThan(16 * 1024 * 1024)
    expect(grown).toBeLessThan(16 * 1024 * 1024)
    console.log(`[measure] 50 MiB body, ${contentLength ? 'content-length' : 'chunked'}: too_large after ${ms.toFixed(1)} ms, stub wrote ${(stub.bytesStreamed / 1048576).toFixed(1)} MiB, arrayBuffers +${(grown / 1048576).toFixed(1)} MiB`)
  })

  it('honours a per-call byte cap and accepts a body of exactly the cap', async () => {
    const { stub, client } = await setup()
    const body = JSON.stringify({ pad: 'x'.repeat(100) })
    stub.setMode('/exact', { kind: 'custom', handle: (_r, res) => void res.end(body) })
    const ok = await client.request(get(stub, '/exact', { maxBytes: body.length }))
    expect(ok.body.length).toBe(body.length)
    const { err } = await failure(() => client.request(get(stub, '/exact', { maxBytes: body.length - 1 })))
    expect(err.kind).toBe('too_large')
  })

  it('rejects with aborted when the caller aborts, and closes the socket', async () => {
    const { stub, client } = await setup({ timeout: '2s' })
    stub.setMode('/session', 'never-ending')
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 30)
    const { err, ms } = await failure(() => client.request(get(stub, '/session', { signal: ac.signal })))
    expect(err.kind).toBe('aborted')
    expect(ms).toBeLessThan(30 + SLACK_MS)
    await stub.connectionClosed(stub.requests[0]!.connection, 200)
  })

  it('rejects an already aborted call without sending it', async () => {
    const { stub, client } = await setup()
    const { err } = await failure(() => client.request(get(stub, '/session', { signal: AbortSignal.abort() })))
    expect(err.kind).toBe('aborted')
    expect(stub.hits).toBe(0)
  })

  it('aborts during the retry backoff', async () => {
    const { stub, client } = await setup({ timeout: '2s', retry: { backoff: '500ms', max_backoff: '500ms' } })
    stub.setMode('/jwks', { kind: '5xx', status: 503 })
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    const { err, ms } = await failure(() => client.request(get(stub, '/jwks', { signal: ac.signal })))
    expect(err.kind).toBe('aborted')
    expect(ms).toBeLessThan(50 + SLACK_MS)
    expect(stub.hits).toBe(1)
  })
})

describe('HttpClient: statuses and bodies', () => {
  const statuses: { name: string; mode: StubMode; status: number; json: unknown }[] = [
    { name: '200 JSON', mode: { kind: 'json', body: { active: true, sub: 'u1' } }, status: 200, json: { active: true, sub: 'u1' } },
    { name: '401 JSON', mode: { kind: 'json', status: 401, body: { error: 'invalid_token' } }, status: 401, json: { error: 'invalid_token' } },
    { name: '429 with Retry-After', mode: { kind: 'json', status: 429, body: {}, headers: { 'retry-after': '3' } }, status: 429, json: {} },
    { name: '500', mode: { kind: '5xx', status: 500 }, status: 500, json: { error: 'unavailable' } },
    { name: '503', mode: '5xx', status: 503, json: { error: 'unavailable' } },
  ]
  it.each(statuses)('resolves with the response for $name', async ({ mode, status, json }) => {
    const { stub, client } = await setup()
    stub.setMode('/introspect', mode)
    const res = await client.request(post(stub, '/introspect'))
    expect(res.status).toBe(status)
    expect(res.json()).toEqual(json)
    expect(stub.hits).toBe(1) // POST without retryable: never retried
  })

  it('passes headers both ways and sends the body', async () => {
    const { stub, client } = await setup()
    stub.setMode('/introspect', { kind: 'json', body: { active: false }, headers: { 'x-a': '1', 'cache-control': 'max-age=60' } })
    const res = await client.request(post(stub, '/introspect', { headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic Y2xpZW50OnNlY3JldA==' } }))
    expect(res.headers).toMatchObject({ 'x-a': '1', 'cache-control': 'max-age=60', 'content-type': 'application/json' })
    const seen = stub.requests[0]
    expect(seen).toMatchObject({ method: 'POST', path: '/introspect', body: 'token=abc' })
    expect(seen?.headers).toMatchObject({ authorization: 'Basic Y2xpZW50OnNlY3JldA==', 'content-type': 'application/x-www-form-urlencoded' })
  })

  it('returns a 302 as is and does not follow it', async () => {
    const { stub, client } = await setup()
    stub.setMode('/jwks', { kind: 'redirect', location: '/elsewhere' })
    stub.setMode('/elsewhere', { kind: 'json', body: { keys: [] } })
    const res = await client.request(get(stub, '/jwks'))
    expect(res.status).toBe(302)
    expect(res.headers['location']).toBe(stub.url('/elsewhere'))
    expect(stub.hitsFor('/elsewhere')).toBe(0)
  })

  const notJson: { name: string; mode: StubMode; contentType: RegExp }[] = [
    { name: 'an HTML page', mode: 'html', contentType: /^text\/html/ },
    { name: 'truncated JSON', mode: 'garbage', contentType: /^application\/json/ },
    { name: 'an empty body', mode: { kind: 'custom', handle: (_r, res) => void res.end() }, contentType: /.*/ },
  ]
  it.each(notJson)('json() throws protocol for $name', async ({ mode, contentType }) => {
    const { stub, client } = await setup()
    stub.setMode('/session', mode)
    const res = await client.request(get(stub, '/session'))
    expect(res.status).toBe(200)
    expect(res.headers['content-type'] ?? '').toMatch(contentType)
    let thrown: unknown
    try {
      res.json()
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(OutboundError)
    expect(thrown).toMatchObject({ kind: 'protocol', origin: stub.origin, message: `GET ${stub.origin}/session: response body is not JSON (status 200)` })
  })

  it('fails with reset when the peer drops the connection', async () => {
    const { stub, client } = await setup()
    stub.setMode('/introspect', 'reset')
    const { err } = await failure(() => client.request(post(stub, '/introspect')))
    expect(err.kind).toBe('reset')
    expect(err.code).toBe('UND_ERR_SOCKET')
    expect(stub.hits).toBe(1)
  })

  it('fails with connect when nothing listens', async () => {
    const { stub, client } = await setup()
    await stub.close()
    const { err, ms } = await failure(() => client.request(post(stub, '/introspect')))
    expect(err.kind).toBe('connect')
    expect(err.code).toBe('ECONNREFUSED')
    expect(ms).toBeLessThan(SLACK_MS)
  })

  it('keeps credentials, query strings and bodies out of error messages', async () => {
    const { stub, client } = await setup({ timeout: '50ms' })
    stub.setMode('/introspect', 'hang')
    const { err } = await failure(() =>
      client.request(post(stub, '/introspect', { url: new URL(stub.url('/introspect?access_token=s3cr3t-q')), body: 'token=s3cr3t-b', headers: { authorization: 'Bearer s3cr3t-h' } })),
    )
    expect(err.message).toBe(`POST ${stub.origin}/introspect: timed out after 50 ms`)
    expect(JSON.stringify({ ...err, message: err.message, stack: err.stack })).not.toMatch(/s3cr3t/)
    expect(err).toMatchObject({ origin: stub.origin, path: '/introspect' })
  })

  it('refuses URLs with userinfo and non-http schemes', async () => {
    const { stub, client } = await setup()
    await expect(client.request({ url: new URL(stub.url('/x').replace('http://', 'http://user:pw@')), method: 'GET' })).rejects.toThrow(TypeError)
    await expect(client.request({ url: new URL('file:///etc/passwd'), method: 'GET' })).rejects.toThrow(TypeError)
    expect(stub.hits).toBe(0)
  })
})

describe('HttpClient: retries', () => {
  const retried: { name: string; steps: StubMode[]; request: 'GET' | 'POST retryable'; status: number }[] = [
    { name: 'reset, reset, 200 (GET)', steps: ['reset', 'reset', { kind: 'json', body: { keys: [] } }], request: 'GET', status: 200 },
    { name: '503, 502, 200 (introspection POST marked retryable)', steps: ['5xx', { kind: '5xx', status: 502 }, { kind: 'json', body: { active: true } }], request: 'POST retryable', status: 200 },
    { name: '504, 504, 504: gives up after max_retries with the last response', steps: [{ kind: '5xx', status: 504 }], request: 'GET', status: 504 },
  ]
  it.each(retried)('retries $name', async ({ steps, request, status }) => {
    const { stub, client } = await setup({ timeout: '1s' })
    stub.setMode('/x', { kind: 'sequence', steps })
    const res = await client.request(request === 'GET' ? get(stub, '/x') : post(stub, '/x', { retryable: true }))
    expect(res.status).toBe(status)
    expect(stub.hits).toBe(3)
    expect(statsOf(client, stub)).toMatchObject({ requests: 1, attempts: 3, retries: 2 })
  })

  it('gives up after max_retries with the last error', async () => {
    const { stub, client } = await setup({ timeout: '1s' })
    stub.setMode('/x', 'reset')
    const { err } = await failure(() => client.request(get(stub, '/x')))
    expect(err.kind).toBe('reset')
    expect(stub.hits).toBe(3)
  })

  const notRetried: { name: string; mode: StubMode; request: OutboundRequest['method']; retryable?: boolean; expect: number | string }[] = [
    { name: 'a 4xx', mode: { kind: 'json', status: 401, body: {} }, request: 'GET', expect: 401 },
    { name: 'a 500', mode: { kind: '5xx', status: 500 }, request: 'GET', expect: 500 },
    { name: 'a 503 on a POST not marked retryable', mode: '5xx', request: 'POST', expect: 503 },
    { name: 'a reset on a POST not marked retryable', mode: 'reset', request: 'POST', expect: 'reset' },
    { name: 'a 503 on a GET marked not retryable', mode: '5xx', request: 'GET', retryable: false, expect: 503 },
    { name: 'a timeout', mode: 'hang', request: 'GET', expect: 'timeout' },
    { name: 'a body over the cap', mode: 'huge', request: 'GET', expect: 'too_large' },
  ]
  it.each(notRetried)('does not retry $name', async ({ mode, request, retryable, expect: outcome }) => {
    const { stub, client } = await setup({ timeout: '300ms' })
    stub.setMode('/x', mode)
    const r = request === 'GET' ? get(stub, '/x', retryable === undefined ? {} : { retryable }) : post(stub, '/x')
    if (typeof outcome === 'number') expect((await client.request(r)).status).toBe(outcome)
    else expect((await failure(() => client.request(r))).err.kind).toBe(outcome)
    expect(stub.hits).toBe(1)
  })

  it('keeps total attempts within the retry budget when every call fails (1 000 calls)', async () => {
    const { stub, client } = await setup({ timeout: '1s', max_pending_per_origin: 1000, breaker: { failure_threshold: 1_000_000 }, retry: { backoff: '1ms', max_backoff: '2ms' } })
    stub.setMode('/x', '5xx')
    let statuses = 0
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.all(Array.from({ length: 50 }, () => client.request(get(stub, '/x'))))
      statuses += results.filter((r) => r.status === 503).length
    }
    expect(statuses).toBe(1000)
    const s = statsOf(client, stub)
    expect(stub.hits).toBe(s.attempts)
    // ratio 0.2 of 1 000 calls + 5/s × 10 s floor; without the budget it would be 3 000.
    expect(stub.hits).toBeLessThanOrEqual(1000 * 1.2 + 50)
    expect(s.retries).toBeGreaterThan(0)
    expect(s.retriesDenied).toBeGreaterThan(0)
    console.log(`[measure] 1000 calls to a failing origin: ${stub.hits} attempts (${s.retries} retries, ${s.retriesDenied} retries denied by the budget)`)
  })
})

describe('HttpClient: circuit breaker', () => {
  it('opens after failure_threshold failures, fails fast, half-opens after open_for, closes on success', async () => {
    const { stub, client } = await setup({ breaker: { failure_threshold: 5, open_for: '1s' } })
    stub.setMode('/introspect', '5xx')
    for (let i = 0; i < 5; i++) expect((await client.request(post(stub, '/introspect'))).status).toBe(503)
    expect(statsOf(client, stub).breaker).toBe('open')

    for (let i = 0; i < 20; i++) {
      const { err, ms } = await failure(() => client.request(post(stub, '/introspect')))
      expect(err.kind).toBe('circuit_open')
      expect(ms).toBeLessThan(SLACK_MS / 4)
    }
    expect(stub.hits).toBe(5)

    await sleep(1010)
    expect(statsOf(client, stub).breaker).toBe('half_open')
    stub.setMode('/introspect', { kind: 'slow', delayMs: 30, then: { kind: 'json', body: { active: true } } })
    const probe = client.request(post(stub, '/introspect'))
    // While the probe is in flight, everything else still fails fast.
    expect((await failure(() => client.request(post(stub, '/introspect')))).err.kind).toBe('circuit_open')
    expect((await probe).status).toBe(200)
    expect(stub.hits).toBe(6)
    expect(statsOf(client, stub).breaker).toBe('closed')
    expect((await client.request(post(stub, '/introspect'))).status).toBe(200)
    expect(statsOf(client, stub).errors.circuit_open).toBe(21)
  })

  it('re-opens when the half-open probe fails', async () => {
    const { stub, client } = await setup({ breaker: { failure_threshold: 2, open_for: '500ms' } })
    stub.setMode('/jwks', 'reset')
    for (let i = 0; i < 2; i++) await failure(() => client.request(post(stub, '/jwks')))
    await sleep(510)
    expect((await failure(() => client.request(post(stub, '/jwks')))).err.kind).toBe('reset')
    expect(statsOf(client, stub).breaker).toBe('open')
    expect((await failure(() => client.request(post(stub, '/jwks')))).err.kind).toBe('circuit_open')
    expect(stub.hits).toBe(3)
  })

  it('counts timeouts and connect errors as failures, 4xx as successes', async () => {
    const { stub, client } = await setup({ timeout: '30ms', breaker: { failure_threshold: 3 } })
    stub.setMode('/a', 'hang')
    stub.setMode('/b', { kind: 'json', status: 403, body: {} })
    await failure(() => client.request(post(stub, '/a')))
    await failure(() => client.request(post(stub, '/a')))
    await client.request(post(stub, '/b'))
    await failure(() => client.request(post(stub, '/a')))
    await failure(() => client.request(post(stub, '/a')))
    expect(statsOf(client, stub).breaker).toBe('closed')
    await failure(() => client.request(post(stub, '/a')))
    expect(statsOf(client, stub).breaker).toBe('open')
  })

  it('stops retrying a call once the breaker opens', async () => {
    const { stub, client } = await setup({ timeout: '1s', breaker: { failure_threshold: 2 } })
    stub.setMode('/jwks', '5xx')
    const res = await client.request(get(stub, '/jwks'))
    expect(res.status).toBe(503)
    expect(stub.hits).toBe(2)
  })
})

describe('HttpClient: stats and close', () => {
  it('reports per-origin counters', async () => {
    const { stub, client } = await setup({ timeout: '50ms' })
    stub.setMode('/ok', { kind: 'json', body: {} })
    stub.setMode('/nf', { kind: 'json', status: 404, body: {} })
    stub.setMode('/hang', 'hang')
    await client.request(get(stub, '/ok'))
    await client.request(get(stub, '/nf'))
    await failure(() => client.request(get(stub, '/hang')))
    const s = statsOf(client, stub)
    expect(s).toMatchObject({
      origin: stub.origin,
      requests: 3,
      attempts: 3,
      retries: 0,
      responses: { '2xx': 1, '4xx': 1, '5xx': 0 },
      errors: { timeout: 1, reset: 0 },
      inFlight: 0,
      pending: 0,
      breaker: 'closed',
      latencyCount: 3,
    })
    expect(s.latencyMsSum).toBeGreaterThanOrEqual(50)
    expect(s.connections).toBe(1) // the hung one was destroyed, the keep-alive one stays
  })

  it('close() waits for calls in flight, closes every connection, then refuses calls', async () => {
    const tcpSockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
    const baseline = tcpSockets()
    const { stub, client } = await setup({ timeout: '100ms' })
    stub.setMode('/ok', { kind: 'json', body: {} })
    stub.setMode('/slow', { kind: 'slow', delayMs: 30, then: { kind: 'json', body: {} } })
    await Promise.all(Array.from({ length: 5 }, () => client.request(get(stub, '/ok'))))
    expect(stub.connections.open).toBeGreaterThan(0)
    const inFlight = client.request(get(stub, '/slow'))
    await sleep(5)
    await client.close()
    expect((await inFlight).status).toBe(200)
    await stub.socketsClosed(200)
    expect(client.stats()[0]?.connections).toBe(0)
    expect(tcpSockets()).toBe(baseline) // no socket handle left on either side
    const { err } = await failure(() => client.request(get(stub, '/ok')))
    expect(err.kind).toBe('aborted')
  })

  it('close() completes while a dependency hangs (bounded by the call deadline)', async () => {
    const { stub, client } = await setup({ timeout: '80ms' })
    stub.setMode('/hang', 'hang')
    const pending = failure(() => client.request(get(stub, '/hang')))
    await sleep(5)
    const started = performance.now()
    await client.close()
    expect(performance.now() - started).toBeLessThan(80 + SLACK_MS)
    expect((await pending).err.kind).toBe('timeout')
    await stub.socketsClosed(200)
  })
})
