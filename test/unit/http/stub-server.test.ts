import { request as httpRequest } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { startStub, type Stub, type StubMode } from '../../helpers/stub-server.js'

const stubs: Stub[] = []
afterEach(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()))
})

async function stub(fallback?: Parameters<typeof startStub>[0]): Promise<Stub> {
  const s = await startStub(fallback)
  stubs.push(s)
  return s
}

interface Raw {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A plain node:http request (no keep-alive, no client under test); rejects on socket errors. */
function raw(url: string, o: { method?: string; body?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.setTimeout(o.timeoutMs ?? 2000, () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
    req.end(o.body)
  })
}

describe('stub server', () => {
  const modes: { name: string; mode: StubMode; expect: { status: number; contentType: RegExp; body: RegExp } }[] = [
    { name: 'json', mode: { kind: 'json', status: 201, body: { a: 1 }, headers: { 'x-b': '2' } }, expect: { status: 201, contentType: /^application\/json$/, body: /^\{"a":1\}$/ } },
    { name: '5xx (bare)', mode: '5xx', expect: { status: 503, contentType: /json/, body: /unavailable/ } },
    { name: '5xx 502', mode: { kind: '5xx', status: 502, body: 'bad gateway' }, expect: { status: 502, contentType: /json/, body: /^bad gateway$/ } },
    { name: 'html', mode: 'html', expect: { status: 200, contentType: /^text\/html/, body: /<html>/ } },
    { name: 'garbage', mode: 'garbage', expect: { status: 200, contentType: /^application\/json$/, body: /^\{"keys": \[/ } },
    { name: 'redirect', mode: { kind: 'redirect', location: '/there' }, expect: { status: 302, contentType: /text\/plain/, body: /redirect/ } },
    { name: 'slow then json', mode: { kind: 'slow', delayMs: 30, then: { kind: 'json', body: [] } }, expect: { status: 200, contentType: /json/, body: /^\[\]$/ } },
    { name: 'huge 2 MiB', mode: { kind: 'huge', mib: 2 }, expect: { status: 200, contentType: /json/, body: /^a{2097152}$/ } },
  ]
  it.each(modes)('answers in mode $name', async ({ mode, expect: e }) => {
    const s = await stub()
    s.setMode('/p', mode)
    const started = performance.now()
    const res = await raw(s.url('/p'))
    expect(res.status).toBe(e.status)
    expect(res.headers['content-type']).toMatch(e.contentType)
    expect(res.body).toMatch(e.body)
    if (typeof mode !== 'string' && mode.kind === 'slow') expect(performance.now() - started).toBeGreaterThanOrEqual(28)
    if (typeof mode !== 'string' && mode.kind === 'redirect') expect(res.headers['location']).toBe(s.url('/there'))
    if (typeof mode !== 'string' && mode.kind === 'json') expect(res.headers['x-b']).toBe('2')
  })

  const broken: { name: string; mode: StubMode; error: RegExp }[] = [
    { name: 'reset', mode: 'reset', error: /socket hang up|ECONNRESET/ },
    { name: 'hang', mode: 'hang', error: /client timeout/ },
  ]
  it.each(broken)('fails the client in mode $name', async ({ mode, error }) => {
    const s = await stub()
    s.setMode('/p', mode)
    await expect(raw(s.url('/p'), { timeoutMs: 100 })).rejects.toThrow(error)
  })

  it('streams never-ending bodies every 50 ms until the client leaves', async () => {
    const s = await stub()
    s.setMode('/p', 'never-ending')
    const received = await new Promise<string>((resolve) => {
      const req = httpRequest(s.url('/p'), { agent: false }, (res) => {
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        setTimeout(() => {
          req.destroy()
          resolve(text)
        }, 180)
      })
      req.end()
    })
    expect(received).toMatch(/^\[(0,){2,4}$/)
    await s.socketsClosed(200)
    const streamed = s.bytesStreamed
    await new Promise((r) => setTimeout(r, 120))
    expect(s.bytesStreamed).toBe(streamed)
  })

  it('plays a sequence one step per hit, repeating the last', async () => {
    const s = await stub()
    s.setMode('/p', { kind: 'sequence', steps: ['5xx', { kind: 'json', status: 200, body: 'ok' }] })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await raw(s.url('/p'))).status)
    expect(statuses).toEqual([503, 200, 200, 200])
  })

  it('resolves modes by exact path, then *, then the fallback, then 404', async () => {
    const s = await stub({ kind: 'json', status: 418, body: 'fallback' })
    expect((await raw(s.url('/a'))).status).toBe(418)
    s.setMode('*', { kind: 'json', status: 202, body: 'star' })
    s.setMode('/b', (_req, res) => void res.writeHead(204).end())
    expect((await raw(s.url('/a?x=1'))).status).toBe(202)
    expect((await raw(s.url('/b?x=1'))).status).toBe(204)
    const plain = await stub()
    const res = await raw(plain.url('/nothing'))
    expect(res.status).toBe(404)
    expect(JSON.parse(res.body)).toEqual({ error: 'no stub mode for /nothing' })
  })

  it('counts hits per path and records method, path, query, headers, body and connection', async () => {
    const s = await stub({ kind: 'json', body: {} })
    await raw(s.url('/introspect?x=1'), { method: 'POST', body: 'token=t', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    await raw(s.url('/jwks'))
    await raw(s.url('/jwks'))
    expect(s.hits).toBe(3)
    expect(s.hitsFor('/jwks')).toBe(2)
    expect(s.hitsFor('/introspect')).toBe(1)
    expect(s.hitsFor('/other')).toBe(0)
    expect(s.requests[0]).toMatchObject({ method: 'POST', path: '/introspect', url: '/introspect?x=1', body: 'token=t', connection: 1 })
    expect(s.requests[0]?.headers['content-type']).toBe('application/x-www-form-urlencoded')
    expect(s.connections).toMatchObject({ accepted: 3 })
  })

  it('keeps only the last 1 000 requests', async () => {
    const s = await stub({ kind: 'json', body: {} })
    for (let i = 0; i < 1010; i++) await raw(s.url(`/p${i}`))
    expect(s.hits).toBe(1010)
    expect(s.requests).toHaveLength(1000)
    expect(s.requests[0]?.path).toBe('/p10')
  })

  it('close() completes with hung, slow, streaming and idle sockets', async () => {
    const s = await startStub()
    s.setMode('/hang', 'hang')
    s.setMode('/slow', { kind: 'slow', delayMs: 10_000 })
    s.setMode('/stream', 'never-ending')
    s.setMode('/huge', { kind: 'huge', mib: 100 })
    const pending = ['/hang', '/slow', '/stream', '/huge'].map((p) => raw(s.url(p), { timeoutMs: 5000 }).catch((e: unknown) => e))
    while (s.hits < 4) await new Promise((r) => setTimeout(r, 5))
    expect(s.connections.open).toBe(4)
    const started = performance.now()
    await s.close()
    expect(performance.now() - started).toBeLessThan(200)
    expect(s.connections.open).toBe(0)
    for (const result of await Promise.all(pending)) expect(result).toBeInstanceOf(Error)
  })
})
