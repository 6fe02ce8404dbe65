/**
 * The Prometheus endpoint as a scraper sees it: a real CacheRegistry and HttpClient (talking to a
 * stub IdP and to a closed port) bound to the metrics, the metrics server on an ephemeral port,
 * scraped with fetch and parsed as text format 0.0.4. Also the routing (only `metrics_path`, 404
 * elsewhere, unlike Oathkeeper), concurrent scrapes, bind errors and shutdown.
 */
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CacheBudget } from '../../src/cache/budget.js'
import { credentialKey } from '../../src/cache/key.js'
import { CacheRegistry } from '../../src/cache/registry.js'
import { HttpClient, OutboundConfigSchema, OutboundError } from '../../src/http/client.js'
import { createMetrics, METRICS, type Metrics } from '../../src/observability/metrics.js'
import { PrometheusConfigSchema } from '../../src/observability/metrics-config.js'
import { startMetricsServer, type MetricsServer } from '../../src/observability/metrics-server.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import type { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { startPortcullis } from '../../src/main.js'
import { createLogger } from '../../src/observability/logger.js'
import { createCheckHandler } from '../../src/server/grpc.js'
import { checkClient, httpRequest as checkRequest } from '../helpers/check-client.js'
import { ALL_HANDLERS } from '../helpers/in-process.js'
import { freePort } from '../helpers/ports.js'
import { startStub, type Stub } from '../helpers/stub-server.js'
import { parseExposition, sample } from '../helpers/prometheus.js'

/** A raw request (fetch normalises paths like `/metrics/../x`; scrapers and attackers do not). */
function raw(port: number, method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

// --- one process-like setup ----------------------------------------------------------------------

const CACHE = 'oauth2_introspection:0123456789ab'
let stub: Stub
let deadOrigin: string
let caches: CacheRegistry
let http: HttpClient
let metrics: Metrics
let server: MetricsServer

beforeAll(async () => {
  stub = await startStub()
  stub.setMode('/introspect', { kind: 'json', body: { active: true } })
  stub.setMode('/broken', '5xx')
  deadOrigin = `http://127.0.0.1:${await freePort()}`

  caches = new CacheRegistry(new CacheBudget(64 * 1024 * 1024))
  http = new HttpClient(OutboundConfigSchema.parse({ timeout: '2s', retry: { max_retries: 0 }, breaker: { failure_threshold: 2, open_for: '60s' } }))
  metrics = createMetrics()
  metrics.bindCaches(() => caches.stats())
  metrics.bindOutbound(() => http.stats())
  metrics.forgetRules(['introspected'])
  server = await startMetricsServer(metrics.registry, PrometheusConfigSchema.parse({ port: 0 }))

  // Traffic: a cache in front of introspection calls, a failing origin that opens its breaker.
  const sizes = { ttlMs: 60_000, maxBytes: 1024 * 1024, maxEntries: 1000, cleanupIntervalMs: 10_000, negativeTtlMs: 5_000, negativeMaxBytes: 64 * 1024 }
  const cache = caches.create<string>({ name: CACHE, ...sizes })
  const introspect = async () => {
    const r = await http.request({ url: new URL(stub.url('/introspect')), method: 'POST', body: 'token=x' })
    return { kind: 'positive' as const, value: String(r.status), sizeBytes: 64 }
  }
  for (const t of ['a', 'b', 'a', 'a', 'c']) await cache.lookup(credentialKey(t, 'secret-client'), introspect)
  await http.request({ url: new URL(stub.url('/broken')), method: 'GET' })
  for (let i = 0; i < 3; i++) {
    await http.request({ url: new URL(`${deadOrigin}/jwks.json`), method: 'GET' }).catch((e: unknown) => {
      if (!(e instanceof OutboundError)) throw e
    })
  }
  metrics.observeDecision('introspected', 'allow', undefined, 0.0004)
  metrics.observeDecision(undefined, 'deny', 'ERR_NO_RULE', 0.00003, 'no_rule')
})

afterAll(async () => {
  await server?.close()
  metrics?.close()
  caches?.dispose()
  await http?.close()
  await stub?.close()
})

describe('GET /metrics', () => {
  it('answers 200 in Prometheus text format 0.0.4 with every declared metric, typed', async () => {
    const res = await fetch(server.url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-store')
    const fams = parseExposition(await res.text())
    for (const m of Object.values(METRICS)) {
      expect(fams.get(m.name)?.type, m.name).toBe(m.type)
      for (const s of fams.get(m.name)!.samples) {
        const keys = Object.keys(s.labels).filter((k) => !(k === 'le' && s.name.endsWith('_bucket')))
        expect(keys, s.name).toEqual([...m.labels])
      }
    }
    expect(sample(fams, 'portcullis_process_resident_memory_bytes', {})).toBeGreaterThan(1024 * 1024)
    expect(fams.get('portcullis_nodejs_eventloop_lag_p99_seconds')?.type).toBe('gauge')
    expect(fams.get('portcullis_nodejs_heap_size_used_bytes')?.type).toBe('gauge')
    expect(sample(fams, 'portcullis_decisions_total', { rule: 'introspected', decision: 'allow', code: '' })).toBe(1)
    expect(sample(fams, 'portcullis_rules_loaded', {})).toBe(1)
  })

  it('cache series are the live CacheRegistry stats', async () => {
    const fams = parseExposition(await (await fetch(server.url)).text())
    const s = caches.get(CACHE)!.stats()
    expect(s.hits).toBe(2)
    const v = (n: string) => sample(fams, n, { cache: CACHE })
    expect(v('portcullis_cache_hits_total')).toBe(2)
    expect(v('portcullis_cache_misses_total')).toBe(3)
    expect(v('portcullis_cache_loads_total')).toBe(3)
    expect(v('portcullis_cache_entries')).toBe(3)
    expect(v('portcullis_cache_bytes')).toBe(s.bytes)
    expect(v('portcullis_cache_max_bytes')).toBe(1024 * 1024)
    expect(v('portcullis_cache_negative_max_bytes')).toBe(64 * 1024)
    expect(await (await fetch(server.url)).text()).not.toContain('secret-client')
  })

  it('outbound series per origin are the live HttpClient stats: requests, classes, errors, latency, pool, breaker', async () => {
    const fams = parseExposition(await (await fetch(server.url)).text())
    const idp = { origin: stub.origin }
    expect(sample(fams, 'portcullis_outbound_requests_total', idp)).toBe(4)
    expect(sample(fams, 'portcullis_outbound_responses_total', { ...idp, status_class: '2xx' })).toBe(3)
    expect(sample(fams, 'portcullis_outbound_responses_total', { ...idp, status_class: '5xx' })).toBe(1)
    expect(sample(fams, 'portcullis_outbound_request_duration_seconds', idp, 'portcullis_outbound_request_duration_seconds_count')).toBe(4)
    expect(sample(fams, 'portcullis_outbound_request_duration_seconds', idp, 'portcullis_outbound_request_duration_seconds_sum')).toBeGreaterThan(0)
    expect(sample(fams, 'portcullis_outbound_connections', idp)).toBeGreaterThanOrEqual(1)
    expect(sample(fams, 'portcullis_outbound_breaker_state', { ...idp, state: 'closed' })).toBe(1)

    const dead = { origin: deadOrigin }
    expect(sample(fams, 'portcullis_outbound_requests_total', dead)).toBe(3)
    expect(sample(fams, 'portcullis_outbound_errors_total', { ...dead, kind: 'connect' })).toBe(2)
    expect(sample(fams, 'portcullis_outbound_errors_total', { ...dead, kind: 'circuit_open' })).toBe(1)
    expect(sample(fams, 'portcullis_outbound_breaker_state', { ...dead, state: 'open' })).toBe(1)
    expect(sample(fams, 'portcullis_outbound_breaker_state', { ...dead, state: 'closed' })).toBe(0)
    // Paths are never labels: origins only.
    const text = await (await fetch(server.url)).text()
    expect(text).not.toContain('/introspect')
    expect(text).not.toContain('/jwks.json')
  })

  it('accepts a query string (Prometheus params) and HEAD', async () => {
    expect((await raw(server.port, 'GET', '/metrics?name[]=portcullis_rules_loaded')).status).toBe(200)
    const head = await raw(server.port, 'HEAD', '/metrics')
    expect(head.status).toBe(200)
    expect(head.body).toBe('')
    expect(Number(head.headers['content-length'])).toBeGreaterThan(1000)
  })

  it('serves concurrent scrapes (one rendering shared)', async () => {
    const all = await Promise.all(Array.from({ length: 20 }, () => fetch(server.url).then(async (r) => [r.status, (await r.text()).length] as const)))
    for (const [status, length] of all) {
      expect(status).toBe(200)
      expect(length).toBeGreaterThan(1000)
    }
  })
})

describe('routing', () => {
  it.each(['/', '/other', '/metrics/', '/metricsx', '/Metrics', '/health/ready', '/metrics/../metrics', '//metrics'])('GET %s → 404', async (path) => {
    const r = await raw(server.port, 'GET', path)
    expect(r.status).toBe(404)
    expect(r.body).not.toContain('portcullis_')
  })

  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS'])('%s /metrics → 405 with Allow', async (method) => {
    const r = await raw(server.port, method, '/metrics')
    expect(r.status).toBe(405)
    expect(r.headers['allow']).toBe('GET, HEAD')
  })

  it('a custom metrics_path is the only path served', async () => {
    const s = await startMetricsServer(metrics.registry, PrometheusConfigSchema.parse({ port: 0, metrics_path: '/internal/prom' }))
    try {
      expect(s.url).toBe(`http://127.0.0.1:${s.port}/internal/prom`)
      expect((await raw(s.port, 'GET', '/internal/prom')).status).toBe(200)
      expect((await raw(s.port, 'GET', '/metrics')).status).toBe(404)
    } finally {
      await s.close()
    }
  })
})

describe('lifecycle', () => {
  it('rejects with the address when the port is taken', async () => {
    await expect(startMetricsServer(metrics.registry, PrometheusConfigSchema.parse({ port: server.port }))).rejects.toThrow(
      `serve.prometheus: cannot listen on 127.0.0.1:${server.port}`,
    )
  })

  it('close() ends keep-alive connections and stops listening; a second close() is a no-op', async () => {
    const s = await startMetricsServer(metrics.registry, PrometheusConfigSchema.parse({ port: 0 }))
    const res = await fetch(s.url) // undici keeps this connection alive
    expect(res.status).toBe(200)
    await res.text()
    const started = performance.now()
    await s.close()
    await s.close()
    expect(performance.now() - started).toBeLessThan(1000)
    await expect(raw(s.port, 'GET', '/metrics')).rejects.toThrow(/ECONNREFUSED/)
  })

  it('answers 500 (and keeps serving) when collection fails', async () => {
    const m = createMetrics({ collectDefault: false })
    let fail = true
    m.bindCaches(() => {
      if (fail) throw new Error('boom')
      return []
    })
    const s = await startMetricsServer(m.registry, PrometheusConfigSchema.parse({ port: 0 }))
    try {
      expect((await raw(s.port, 'GET', '/metrics')).status).toBe(500)
      fail = false
      expect((await raw(s.port, 'GET', '/metrics')).status).toBe(200)
    } finally {
      await s.close()
      m.close()
    }
  })
})

describe('wired into the server', () => {
  const H = 'https://api.example.com'
  const rule = (id: string, url: string, extra: Record<string, unknown>) => ({
    id,
    match: { url, methods: ['GET'] },
    authenticators: [{ handler: 'anonymous' }],
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'noop' }],
    ...extra,
  })
  const RULES = [
    rule('public', `${H}/public/<.*>`, {
      mutators: [{ handler: 'header', config: { headers: { 'X-Path': '{{ index .MatchContext.RegexpCaptureGroups 0 }}' } } }],
    }),
    rule('admin', `${H}/admin/<.*>`, { authorizer: { handler: 'deny' } }),
    rule('api', `${H}/api/<.*>`, { authenticators: [{ handler: 'unauthorized' }], errors: [{ handler: 'www_authenticate', config: { realm: 'api' } }] }),
  ]

  /** Check i: five kinds in turn, each with a unique path, token, subject (and host for no-match). */
  const request = (i: number, secrets: string[]): CheckRequest => {
    const token = `tok${i}q${Math.random().toString(36).slice(2)}`
    const kind = i % 5
    const path = kind === 0 ? `/public/${token}` : kind === 1 ? `/admin/u${i}` : kind === 2 ? `/api/items/${i}` : kind === 3 ? `/nowhere/${i}` : `//x/${i}`
    if (i % 20_000 === 3) secrets.push(token, `user-${i}@example.com`)
    return checkRequest({
      host: kind === 3 ? `h${i}.example.net` : 'api.example.com',
      path,
      headers: { ...(kind === 2 ? { authorization: `Bearer ${token}` } : {}), cookie: `sid=${token}`, 'x-user': `user-${i}@example.com` },
    })
  }

  /** Sample lines of Portcullis' own metrics (process metrics vary on their own). */
  const ours = (t: string) => t.split('\n').filter((l) => l.startsWith('portcullis_') && !l.startsWith('portcullis_nodejs_') && !l.startsWith('portcullis_process_'))

  /** What n Checks of `request()` must leave in the exposition. */
  const expectCounted = (text: string, n: number, secrets: readonly string[]): void => {
    const f = parseExposition(text)
    const decisions = f.get('portcullis_decisions_total')!.samples
    expect(decisions.map((x) => `${x.labels['rule']}/${x.labels['decision']}/${x.labels['code']}`).sort()).toEqual([
      '/deny/ERR_BAD_REQUEST',
      '/deny/ERR_NO_RULE',
      'admin/deny/ERR_FORBIDDEN',
      'api/deny/ERR_UNAUTHENTICATED',
      'public/allow/',
    ])
    expect(decisions.reduce((a, x) => a + x.value, 0)).toBe(n)
    expect(sample(f, 'portcullis_check_duration_seconds', { decision: 'allow' }, 'portcullis_check_duration_seconds_count')).toBe(n / 5)
    // decide() ran for every Check but the bad requests (rejected while building the view).
    expect(sample(f, 'portcullis_rule_match_duration_seconds', {}, 'portcullis_rule_match_duration_seconds_count')).toBe((n * 4) / 5)
    expect(sample(f, 'portcullis_handler_errors_total', { stage: 'authz', handler: 'deny', code: 'ERR_FORBIDDEN' })).toBe(n / 5)
    expect(sample(f, 'portcullis_handler_errors_total', { stage: 'authn', handler: 'unauthorized', code: 'ERR_UNAUTHENTICATED' })).toBe(n / 5)
    expect(sample(f, 'portcullis_denials_total', { code: 'ERR_BAD_REQUEST', reason: 'double_slash' })).toBe(n / 5)
    expect(sample(f, 'portcullis_rules_loaded', {})).toBe(3)
    for (const x of secrets) expect(text).not.toContain(x)
  }

  async function start() {
    // As test/helpers/in-process.ts, with decision logging off (not the subject here).
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-metrics-it-'))
    writeFileSync(join(dir, 'rules.yaml'), stringify(RULES))
    const config = { ...ALL_HANDLERS, serve: { grpc: { port: 0 }, prometheus: { port: 0 }, api: { port: 0 } }, access_rules: { repositories: ['file://./rules.yaml'] } }
    writeFileSync(join(dir, 'portcullis.yaml'), stringify(config))
    const app = await startPortcullis({ configFile: join(dir, 'portcullis.yaml'), env: {}, log: createLogger('warn', { write: () => undefined }) })
    return {
      app,
      async stop() {
        await app.stop(1000)
        rmSync(dir, { recursive: true, force: true })
      },
    }
  }

  it('100 000 Checks through the Check handler: series count unchanged, every Check counted, nothing unique in labels', async () => {
    const { app, stop } = await start()
    try {
      // The handler grpc-js calls, with the server's holder and metrics, minus the transport.
      const check = createCheckHandler(app.holder, app.log, { maxCheckDurationMs: 1000, observer: app.metrics })
      const call = (req: CheckRequest) =>
        new Promise<void>((resolve, reject) => {
          const fake = { request: req, getDeadline: () => Infinity, once: () => fake, off: () => fake }
          check(fake as never, (err) => (err ? reject(err) : resolve()))
        })
      const N = 100_000
      const secrets: string[] = []
      for (let i = 0; i < 1_000; i++) await call(request(i, secrets))
      const warm = await (await fetch(app.metricsServer!.url)).text()
      const started = performance.now()
      for (let i = 1_000; i < N; i++) await call(request(i, secrets))
      const seconds = (performance.now() - started) / 1000
      const after = await (await fetch(app.metricsServer!.url)).text()
      expect(ours(after).length).toBe(ours(warm).length)
      expectCounted(after, N, secrets)
      console.log(`[metrics] ${N} Checks through the handler in ${seconds.toFixed(1)} s; series (ours) ${ours(warm).length} → ${ours(after).length}`)
    } finally {
      await stop()
    }
  }, 120_000)

  it('5 000 Checks over gRPC: the same, through the real server and its metrics endpoint', async () => {
    const { app, stop } = await start()
    const c = checkClient(app.grpc.port)
    try {
      const N = 5_000
      const secrets: string[] = []
      let next = 0
      const run = (until: number) =>
        Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next < until) await c.check(request(next++, secrets))
          }),
        )
      await run(500)
      const warm = await (await fetch(app.metricsServer!.url)).text()
      await run(N)
      const after = await (await fetch(app.metricsServer!.url)).text()
      expect(ours(after).length).toBe(ours(warm).length)
      expectCounted(after, N, secrets)
    } finally {
      c.close()
      await stop()
    }
  }, 120_000)
})
