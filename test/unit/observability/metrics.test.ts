/**
 * src/observability/metrics.ts: every metric name, type and label set against the table below
 * (doc-sync: the README's metric list is this table), bounded cardinality under 100 000 unique
 * paths, subjects, tokens, hosts, reasons and rule ids, the scrape-time cache and outbound
 * collectors, histogram arithmetic, GC accounting, and a micro-benchmark of the hot path.
 * Also the `serve.prometheus` schema (src/observability/metrics-config.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Counter, Histogram, Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { CacheStats } from '../../../src/cache/auth-cache.js'
import { CacheBudget } from '../../../src/cache/budget.js'
import { credentialKey } from '../../../src/cache/key.js'
import { CacheRegistry } from '../../../src/cache/registry.js'
import { loadConfig } from '../../../src/config/load.js'
import type { OriginStats } from '../../../src/http/client.js'
import { createLogger } from '../../../src/observability/logger.js'
import {
  CHECK_DURATION_BUCKETS,
  createMetrics,
  DEFAULT_METRIC_NAMES,
  MATCH_DURATION_BUCKETS,
  MAX_HANDLER_LABELS,
  MAX_REASON_LABELS,
  METRICS,
  OTHER,
  type Metrics,
} from '../../../src/observability/metrics.js'
import { PrometheusConfigSchema } from '../../../src/observability/metrics-config.js'
import { asPipelineError, PipelineError } from '../../../src/pipeline/errors.js'
import { defaultRegistry } from '../../../src/pipeline/registry.js'
import { decide } from '../../../src/pipeline/run.js'
import { toRequestView } from '../../../src/request/view.js'
import { loadRuleSet } from '../../../src/rules/compile.js'
import { httpRequest } from '../../helpers/check-client.js'
import { TEST_DEPS } from '../../helpers/session.js'
import { parseExposition, sample, seriesCount } from '../../helpers/prometheus.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * The metric list: name, type, label names (in order). The README's "Metrics" table is this one;
 * a metric added to src/observability/metrics.ts without a row here fails the first test.
 */
const TABLE: readonly (readonly [name: string, type: string, labels: string])[] = [
  ['portcullis_decisions_total', 'counter', 'rule,decision,code'],
  ['portcullis_denials_total', 'counter', 'code,reason'],
  ['portcullis_check_duration_seconds', 'histogram', 'decision'],
  ['portcullis_rule_match_duration_seconds', 'histogram', ''],
  ['portcullis_handler_errors_total', 'counter', 'stage,handler,code'],
  ['portcullis_reloads_total', 'counter', 'result'],
  ['portcullis_rules_loaded', 'gauge', ''],
  ['portcullis_cache_hits_total', 'counter', 'cache'],
  ['portcullis_cache_negative_hits_total', 'counter', 'cache'],
  ['portcullis_cache_misses_total', 'counter', 'cache'],
  ['portcullis_cache_loads_total', 'counter', 'cache'],
  ['portcullis_cache_load_errors_total', 'counter', 'cache'],
  ['portcullis_cache_coalesced_total', 'counter', 'cache'],
  ['portcullis_cache_evictions_total', 'counter', 'cache'],
  ['portcullis_cache_negative_evictions_total', 'counter', 'cache'],
  ['portcullis_cache_expirations_total', 'counter', 'cache'],
  ['portcullis_cache_entries', 'gauge', 'cache'],
  ['portcullis_cache_bytes', 'gauge', 'cache'],
  ['portcullis_cache_max_bytes', 'gauge', 'cache'],
  ['portcullis_cache_negative_entries', 'gauge', 'cache'],
  ['portcullis_cache_negative_bytes', 'gauge', 'cache'],
  ['portcullis_cache_negative_max_bytes', 'gauge', 'cache'],
  ['portcullis_cache_inflight_loads', 'gauge', 'cache'],
  ['portcullis_outbound_requests_total', 'counter', 'origin'],
  ['portcullis_outbound_attempts_total', 'counter', 'origin'],
  ['portcullis_outbound_retries_total', 'counter', 'origin'],
  ['portcullis_outbound_retries_denied_total', 'counter', 'origin'],
  ['portcullis_outbound_responses_total', 'counter', 'origin,status_class'],
  ['portcullis_outbound_errors_total', 'counter', 'origin,kind'],
  ['portcullis_outbound_request_duration_seconds', 'summary', 'origin'],
  ['portcullis_outbound_connections', 'gauge', 'origin'],
  ['portcullis_outbound_pending', 'gauge', 'origin'],
  ['portcullis_outbound_in_flight', 'gauge', 'origin'],
  ['portcullis_outbound_breaker_state', 'gauge', 'origin,state'],
  ['portcullis_nodejs_gc_duration_seconds', 'histogram', 'kind'],
]

/** Labels that would make the series count grow with traffic; none may ever be used. */
const FORBIDDEN_LABELS = ['path', 'url', 'uri', 'subject', 'sub', 'user', 'token', 'kid', 'host', 'authority', 'ip', 'request_id']

// --- fixtures ------------------------------------------------------------------------------------

/** A Session for hand-built allow Decisions. */
const SESSION = { subject: 's', extra: {}, header: new Map<string, string>(), matchContext: undefined as never }

const made: Metrics[] = []
const registries: CacheRegistry[] = []
afterEach(() => {
  for (const m of made.splice(0)) m.close()
  for (const r of registries.splice(0)) r.dispose()
})
function metrics(collectDefault = false): Metrics {
  const m = createMetrics({ collectDefault })
  made.push(m)
  return m
}

const cacheStats = (name: string, n: number): CacheStats => ({
  name,
  hits: n,
  negativeHits: n + 1,
  misses: n + 2,
  loads: n + 3,
  loadErrors: n + 4,
  coalesced: n + 5,
  evictions: n + 6,
  negativeEvictions: n + 7,
  expirations: n + 8,
  entries: n + 9,
  bytes: n + 10,
  maxBytes: n + 11,
  negativeEntries: n + 12,
  negativeBytes: n + 13,
  negativeMaxBytes: n + 14,
  inflight: n + 15,
})

const originStats = (origin: string, breaker: OriginStats['breaker']): OriginStats => ({
  origin,
  requests: 10,
  attempts: 12,
  retries: 2,
  retriesDenied: 1,
  responses: { '1xx': 0, '2xx': 7, '3xx': 0, '4xx': 1, '5xx': 1 },
  errors: { timeout: 1, connect: 0, reset: 0, too_large: 0, circuit_open: 0, overloaded: 0, aborted: 0, protocol: 0 },
  connections: 3,
  pending: 4,
  inFlight: 5,
  breaker,
  latencyMsSum: 1500,
  latencyCount: 10,
})

/** Puts at least one series into every metric of the table. */
function exercise(m: Metrics): void {
  m.forgetRules(['r1', 'r2'])
  m.observeDecision('r1', 'allow', undefined, 0.0002)
  m.observeDecision('r2', 'deny', 'ERR_FORBIDDEN', 0.0003, 'authorizer_deny')
  m.observeDecision(undefined, 'deny', 'ERR_NO_RULE', 0.00004, 'no_rule')
  m.observeMatch(0.000002)
  m.handlerError('authz', 'deny', 'ERR_FORBIDDEN')
  m.reload('success', 2)
  m.bindCaches(() => [cacheStats('jwt:0123456789ab', 1)])
  m.bindOutbound(() => [originStats('http://127.0.0.1:4444', 'closed')])
}

// --- tests ---------------------------------------------------------------------------------------

describe('metric names, types and labels (doc-sync)', () => {
  it('the registry exports exactly the table: names, types, label sets', async () => {
    const m = metrics()
    exercise(m)
    const fams = parseExposition(await m.registry.metrics())
    const gcRow = 'portcullis_nodejs_gc_duration_seconds' // series appear only with collectDefault (GC observer)
    expect([...fams.keys()].sort()).toEqual(TABLE.map(([n]) => n).sort())
    for (const [name, type, labels] of TABLE) {
      const f = fams.get(name)!
      expect(f.type, name).toBe(type)
      expect(f.help.length, `${name} has help text`).toBeGreaterThan(10)
      if (name === gcRow) continue
      expect(f.samples.length, `${name} has series`).toBeGreaterThan(0)
      for (const s of f.samples) {
        const keys = Object.keys(s.labels).filter((k) => !(k === 'le' && s.name.endsWith('_bucket')))
        expect(keys.join(','), `labels of ${s.name}`).toBe(labels)
      }
    }
  })

  it('the METRICS catalogue (source of help texts and the README) is the same table', () => {
    const catalogue = Object.values(METRICS).map((s) => [s.name, s.type, s.labels.join(',')])
    expect(catalogue).toEqual(TABLE.map((r) => [...r]))
  })

  it('names follow portcullis_<noun>_<unit>: prefix, snake case, counters end in _total, durations in _seconds', () => {
    for (const [name, type, labels] of TABLE) {
      expect(name).toMatch(/^portcullis_[a-z][a-z0-9_]*[a-z]$/)
      if (type === 'counter') expect(name).toMatch(/_total$/)
      else expect(name).not.toMatch(/_total$/)
      if (type === 'histogram' || type === 'summary') expect(name).toMatch(/_seconds$/)
      for (const l of labels.split(',').filter(Boolean)) expect(FORBIDDEN_LABELS, `${name}{${l}}`).not.toContain(l)
    }
  })

  it('with collectDefault, adds prom-client process metrics under the prefix (RSS, heap, event-loop delay, GC)', async () => {
    const m = metrics(true)
    exercise(m)
    gc()
    await new Promise((r) => setTimeout(r, 20))
    const fams = parseExposition(await m.registry.metrics())
    const ours = new Set(TABLE.map(([n]) => n))
    const extra = [...fams.keys()].filter((n) => !ours.has(n)).sort()
    expect(extra).toEqual([...DEFAULT_METRIC_NAMES].sort())
    expect(sample(fams, 'portcullis_process_resident_memory_bytes', {})).toBeGreaterThan(1024 * 1024)
    expect(sample(fams, 'portcullis_nodejs_heap_size_used_bytes', {})).toBeGreaterThan(1024 * 1024)
    expect(fams.get('portcullis_nodejs_eventloop_lag_p99_seconds')?.type).toBe('gauge')
    expect(fams.get('portcullis_nodejs_gc_duration_seconds')?.type).toBe('histogram')
    const gcCount = fams.get('portcullis_nodejs_gc_duration_seconds')!.samples.filter((s) => s.name.endsWith('_count'))
    expect(gcCount.reduce((a, s) => a + s.value, 0)).toBeGreaterThan(0)
    for (const s of gcCount) expect(['major', 'minor', 'incremental', 'weakcb']).toContain(s.labels['kind'])
    for (const [name, f] of fams) {
      for (const s of f.samples) for (const l of Object.keys(s.labels)) expect(FORBIDDEN_LABELS, `${name}{${l}}`).not.toContain(l)
    }
  })

  it('each createMetrics() has its own registry; the global prom-client registry stays empty', async () => {
    const a = metrics(true)
    const b = metrics(true)
    a.observeDecision(undefined, 'deny', 'ERR_NO_RULE', 0.001, 'no_rule')
    expect(a.registry).not.toBe(b.registry)
    expect(await b.registry.getSingleMetricAsString('portcullis_decisions_total')).not.toContain('ERR_NO_RULE')
    const { register } = await import('prom-client')
    expect(register.getMetricsAsArray().filter((x) => x.name.startsWith('portcullis_'))).toEqual([])
  })
})

describe('decisions, denials, histograms', () => {
  it('counts decisions by rule, decision and code; denials by code and reason', async () => {
    const m = metrics()
    m.forgetRules(['a', 'b'])
    for (let i = 0; i < 3; i++) m.observeDecision('a', 'allow', undefined, 0.0001)
    m.observeDecision('a', 'deny', 'ERR_UNAUTHENTICATED', 0.0001, 'authenticator_unauthorized')
    m.observeDecision('b', 'deny', 'ERR_UNAUTHENTICATED', 0.0001, 'authenticator_unauthorized')
    m.observeDecision(undefined, 'deny', 'ERR_BAD_REQUEST', 0.0001, 'double_slash')
    const f = parseExposition(await m.registry.metrics())
    const D = 'portcullis_decisions_total'
    expect(sample(f, D, { rule: 'a', decision: 'allow', code: '' })).toBe(3)
    expect(sample(f, D, { rule: 'a', decision: 'deny', code: 'ERR_UNAUTHENTICATED' })).toBe(1)
    expect(sample(f, D, { rule: 'b', decision: 'deny', code: 'ERR_UNAUTHENTICATED' })).toBe(1)
    expect(sample(f, D, { rule: '', decision: 'deny', code: 'ERR_BAD_REQUEST' })).toBe(1)
    expect(f.get(D)!.samples).toHaveLength(4)
    expect(sample(f, 'portcullis_denials_total', { code: 'ERR_UNAUTHENTICATED', reason: 'authenticator_unauthorized' })).toBe(2)
    expect(sample(f, 'portcullis_denials_total', { code: 'ERR_BAD_REQUEST', reason: 'double_slash' })).toBe(1)
  })

  it('observeCheck reads a Decision or a PipelineError', async () => {
    const m = metrics()
    m.forgetRules(['r'])
    const e = new PipelineError('ERR_FORBIDDEN', 'authorizer_deny', 'no')
    m.observeCheck({ kind: 'allow', ruleId: 'r', session: SESSION, removeHeaders: [] }, 0.001)
    m.observeCheck({ kind: 'deny', ruleId: 'r', error: e, http: { status: 403, headers: [], body: '' } }, 0.001)
    m.observeCheck(new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'not_ready', 'x'), 0.001)
    m.observeCheck(asPipelineError(new Error('bug')), 0.001)
    const f = parseExposition(await m.registry.metrics())
    const D = 'portcullis_decisions_total'
    expect(sample(f, D, { rule: 'r', decision: 'allow', code: '' })).toBe(1)
    expect(sample(f, D, { rule: 'r', decision: 'deny', code: 'ERR_FORBIDDEN' })).toBe(1)
    expect(sample(f, D, { rule: '', decision: 'deny', code: 'ERR_UPSTREAM_UNAVAILABLE' })).toBe(1)
    expect(sample(f, D, { rule: '', decision: 'deny', code: 'ERR_INTERNAL' })).toBe(1)
    expect(sample(f, 'portcullis_denials_total', { code: 'ERR_INTERNAL', reason: 'internal_error' })).toBe(1)
    expect(sample(f, 'portcullis_check_duration_seconds', { decision: 'deny' }, 'portcullis_check_duration_seconds_count')).toBe(3)
  })

  it('histogram buckets are cumulative, upper bounds inclusive; sum and count; non-finite and negative values ignored', async () => {
    const m = metrics()
    const H = 'portcullis_check_duration_seconds'
    for (const v of [0.00005, 0.00005001, 0.001, 2, -1, NaN, Infinity]) m.observeDecision(undefined, 'allow', undefined, v)
    const f = parseExposition(await m.registry.metrics())
    const bucket = (le: string) => sample(f, H, { decision: 'allow', le }, `${H}_bucket`)
    expect(bucket('0.00005')).toBe(1)
    expect(bucket('0.0001')).toBe(2)
    expect(bucket('0.001')).toBe(3)
    expect(bucket('1')).toBe(3)
    expect(bucket('+Inf')).toBe(4)
    expect(sample(f, H, { decision: 'allow' }, `${H}_count`)).toBe(4)
    expect(sample(f, H, { decision: 'allow' }, `${H}_sum`)).toBeCloseTo(2.00110001, 9)
    const les = f.get(H)!.samples.filter((s) => s.name === `${H}_bucket` && s.labels['decision'] === 'deny').map((s) => s.labels['le'])
    expect(les).toEqual([...CHECK_DURATION_BUCKETS.map(String), '+Inf'])
    expect(CHECK_DURATION_BUCKETS[0]).toBe(0.00005)

    m.observeMatch(0.000001)
    m.observeMatch(0.00003)
    const g = parseExposition(await m.registry.metrics())
    const M = 'portcullis_rule_match_duration_seconds'
    expect(MATCH_DURATION_BUCKETS[0]).toBe(0.000001)
    expect(sample(g, M, { le: '0.000001' }, `${M}_bucket`)).toBe(1)
    expect(sample(g, M, { le: '0.00005' }, `${M}_bucket`)).toBe(2)
    expect(sample(g, M, {}, `${M}_count`)).toBe(2)
  })

  it('handler errors by stage, handler id and code', async () => {
    const m = metrics()
    m.handlerError('authn', 'oauth2_introspection', 'ERR_UPSTREAM_UNAVAILABLE')
    m.handlerError('authn', 'oauth2_introspection', 'ERR_UPSTREAM_UNAVAILABLE')
    m.handlerError('authn', 'jwt', 'ERR_UNAUTHENTICATED')
    m.handlerError('error', 'redirect', 'ERR_INTERNAL')
    const f = parseExposition(await m.registry.metrics())
    const H = 'portcullis_handler_errors_total'
    expect(sample(f, H, { stage: 'authn', handler: 'oauth2_introspection', code: 'ERR_UPSTREAM_UNAVAILABLE' })).toBe(2)
    expect(sample(f, H, { stage: 'authn', handler: 'jwt', code: 'ERR_UNAUTHENTICATED' })).toBe(1)
    expect(sample(f, H, { stage: 'error', handler: 'redirect', code: 'ERR_INTERNAL' })).toBe(1)
  })

  it('reloads by result and the rule count', async () => {
    const m = metrics()
    m.forgetRules(['a', 'b', 'c'])
    m.reload('failure')
    m.reload('failure', 99)
    m.reload('success', 5)
    const f = parseExposition(await m.registry.metrics())
    expect(sample(f, 'portcullis_reloads_total', { result: 'success' })).toBe(1)
    expect(sample(f, 'portcullis_reloads_total', { result: 'failure' })).toBe(2)
    expect(sample(f, 'portcullis_rules_loaded', {})).toBe(5)
  })
})

describe('bounded label sets', () => {
  it('forgetRules deletes the series of removed rules; ids outside the rule set count as _other', async () => {
    const m = metrics()
    m.forgetRules(['keep', 'drop'])
    m.observeDecision('keep', 'allow', undefined, 0.001)
    m.observeDecision('drop', 'allow', undefined, 0.001)
    m.observeDecision('never-loaded', 'allow', undefined, 0.001)
    let f = parseExposition(await m.registry.metrics())
    expect(f.get('portcullis_decisions_total')!.samples.map((s) => s.labels['rule']).sort()).toEqual([OTHER, 'drop', 'keep'])

    m.forgetRules(['keep', 'new'])
    // A Check evaluated against the old snapshot still reports "drop": it must not come back.
    m.observeDecision('drop', 'deny', 'ERR_FORBIDDEN', 0.001, 'authorizer_deny')
    m.observeDecision('new', 'allow', undefined, 0.001)
    f = parseExposition(await m.registry.metrics())
    const rules = f.get('portcullis_decisions_total')!.samples.map((s) => `${s.labels['rule']}/${s.labels['code']}`).sort()
    expect(rules).toEqual([`${OTHER}/`, `${OTHER}/ERR_FORBIDDEN`, 'keep/', 'new/'])
    expect(sample(f, 'portcullis_rules_loaded', {})).toBe(2)
  })

  it('unknown or malformed reasons and handler ids collapse to _other after a fixed number of distinct values', async () => {
    const m = metrics()
    for (let i = 0; i < 1000; i++) {
      m.observeDecision(undefined, 'deny', 'ERR_FORBIDDEN', 0.001, `reason_${i}`)
      m.handlerError('authn', `handler_${i}`, 'ERR_UNAUTHENTICATED')
    }
    m.observeDecision(undefined, 'deny', 'ERR_FORBIDDEN', 0.001, 'Bearer eyJhbGciOi.secret')
    m.handlerError('authn', '/etc/passwd', 'ERR_UNAUTHENTICATED')
    const f = parseExposition(await m.registry.metrics())
    const reasons = new Set(f.get('portcullis_denials_total')!.samples.map((s) => s.labels['reason']))
    expect(reasons.size).toBe(MAX_REASON_LABELS + 1)
    expect(reasons).toContain(OTHER)
    const handlers = new Set(f.get('portcullis_handler_errors_total')!.samples.map((s) => s.labels['handler']))
    expect(handlers.size).toBe(MAX_HANDLER_LABELS + 1)
    expect(await m.registry.metrics()).not.toMatch(/secret|passwd/)

    const fresh = metrics()
    fresh.handlerError('bogus' as never, 'jwt', 'ERR_BOGUS' as never)
    const g = parseExposition(await fresh.registry.metrics())
    expect(sample(g, 'portcullis_handler_errors_total', { stage: OTHER, handler: 'jwt', code: OTHER })).toBe(1)
  })

  it('100 000 Checks with unique paths, subjects, tokens and hosts through the real pipeline leave the series count unchanged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-metrics-'))
    const H = 'https://api.example.com'
    const rule = (id: string, url: string, extra: Record<string, unknown>) => ({
      id,
      match: { url, methods: ['GET', 'POST'] },
      authenticators: [{ handler: 'anonymous' }],
      authorizer: { handler: 'allow' },
      mutators: [{ handler: 'noop' }],
      ...extra,
    })
    writeFileSync(
      join(dir, 'rules.yaml'),
      stringify([
        rule('public', `${H}/public/<.*>`, {
          mutators: [
            { handler: 'header', config: { headers: { 'X-Path': '{{ index .MatchContext.RegexpCaptureGroups 0 }}', 'X-User': '{{ print .Subject }}' } } },
          ],
        }),
        rule('admin', `${H}/admin/<.*>`, { authorizer: { handler: 'deny' } }),
        rule('api', `${H}/api/<.*>`, { authenticators: [{ handler: 'unauthorized' }], errors: [{ handler: 'www_authenticate', config: { realm: 'api' } }] }),
      ]),
    )
    writeFileSync(
      join(dir, 'c.yaml'),
      stringify({
        access_rules: { repositories: ['file://./rules.yaml'] },
        authenticators: { anonymous: { enabled: true }, unauthorized: { enabled: true } },
        authorizers: { allow: { enabled: true }, deny: { enabled: true } },
        mutators: { noop: { enabled: true }, header: { enabled: true, config: { headers: {} } } },
        errors: { fallback: ['json'], handlers: { json: { enabled: true }, www_authenticate: { enabled: true } } },
      }),
    )
    const rs = loadRuleSet(loadConfig({ file: join(dir, 'c.yaml'), env: {} }), defaultRegistry(), { ...TEST_DEPS, log: createLogger('silent') })
    rmSync(dir, { recursive: true, force: true })
    const m = metrics()
    m.forgetRules(rs.rules.map((r) => r.id))
    const signal = new AbortController().signal

    const secrets: string[] = []
    const check = async (i: number): Promise<void> => {
      const token = `tok${i}x${Math.random().toString(36).slice(2)}`
      const subject = `user-${i}@example.com`
      const kind = i % 6
      const path = [
        `/public/u${i}/${token}`,
        `/admin/u${i}`,
        `/api/v1/items/${i}?sub=${subject}`,
        `/nowhere/${i}`, // no rule (and a unique host)
        `//double/${i}`, // bad request
        `/public/%2F${i}`, // bad request
      ][kind]!
      const host = kind === 3 ? `h${i}.example.net` : 'api.example.com'
      if (i % 10_000 === 7) secrets.push(token, subject, `u${i}`)
      const started = performance.now()
      let outcome
      try {
        const view = toRequestView(
          httpRequest({
            host,
            path,
            headers: {
              // anonymous is not responsible when Authorization is present (Oathkeeper), so only /api gets one
              ...(kind === 2 ? { authorization: `Bearer ${token}` } : {}),
              cookie: `sid=${token}`,
              'x-user': subject,
              'x-request-id': `req-${i}`,
              'x-forwarded-for': `10.${i % 256}.0.1`,
            },
          }),
        )
        outcome = await decide(rs, view, signal)
      } catch (err) {
        outcome = asPipelineError(err)
      }
      m.observeCheck(outcome, (performance.now() - started) / 1000)
    }

    for (let i = 0; i < 600; i++) await check(i)
    const warm = await m.registry.metrics()
    for (let i = 600; i < 100_000; i++) await check(i)
    const after = await m.registry.metrics()

    expect(seriesCount(after)).toBe(seriesCount(warm))
    const f = parseExposition(after)
    const codes = f.get('portcullis_decisions_total')!.samples.map((s) => `${s.labels['rule']}/${s.labels['decision']}/${s.labels['code']}`).sort()
    expect(codes).toEqual(['/deny/ERR_BAD_REQUEST', '/deny/ERR_NO_RULE', 'admin/deny/ERR_FORBIDDEN', 'api/deny/ERR_UNAUTHENTICATED', 'public/allow/'])
    const total = f.get('portcullis_decisions_total')!.samples.reduce((a, s) => a + s.value, 0)
    expect(total).toBe(100_000)
    for (const s of secrets) expect(after).not.toContain(s)
    console.log(`[metrics] series after 600 Checks: ${seriesCount(warm)}, after 100 000: ${seriesCount(after)}`)
  }, 120_000)
})

describe('scrape-time collectors', () => {
  it('cache metrics are the CacheRegistry stats at scrape time; removed caches disappear', async () => {
    const caches = new CacheRegistry(new CacheBudget(64 * 1024 * 1024))
    registries.push(caches)
    const base = { ttlMs: 60_000, maxBytes: 1024 * 1024, maxEntries: 1000, cleanupIntervalMs: 10_000, negativeTtlMs: 5_000, negativeMaxBytes: 64 * 1024 }
    const jwt = caches.create<string>({ name: 'jwt:aaaaaaaaaaaa', ...base })
    caches.create<string>({ name: 'oauth2_introspection:bbbbbbbbbbbb', ...base })
    const m = metrics()
    m.bindCaches(() => caches.stats())

    const load = async () => ({ kind: 'positive' as const, value: 'v', sizeBytes: 100 })
    await jwt.lookup(credentialKey('t1'), load)
    await jwt.lookup(credentialKey('t1'), load)
    await jwt.lookup(credentialKey('t2'), async () => ({ kind: 'negative' as const, reason: 'invalid' }))
    await jwt.lookup(credentialKey('t2'), load)

    const f = parseExposition(await m.registry.metrics())
    const s = caches.get('jwt:aaaaaaaaaaaa')!.stats()
    const v = (name: string) => sample(f, name, { cache: 'jwt:aaaaaaaaaaaa' })
    expect(v('portcullis_cache_hits_total')).toBe(s.hits)
    expect(s.hits).toBe(1)
    expect(v('portcullis_cache_negative_hits_total')).toBe(1)
    expect(v('portcullis_cache_misses_total')).toBe(s.misses)
    expect(v('portcullis_cache_loads_total')).toBe(2)
    expect(v('portcullis_cache_entries')).toBe(1)
    expect(v('portcullis_cache_negative_entries')).toBe(1)
    expect(v('portcullis_cache_bytes')).toBe(s.bytes)
    expect(v('portcullis_cache_max_bytes')).toBe(1024 * 1024)
    expect(v('portcullis_cache_negative_max_bytes')).toBe(64 * 1024)
    expect(sample(f, 'portcullis_cache_entries', { cache: 'oauth2_introspection:bbbbbbbbbbbb' })).toBe(0)

    caches.retainOnly(['jwt:aaaaaaaaaaaa'])
    const g = parseExposition(await m.registry.metrics())
    expect(g.get('portcullis_cache_entries')!.samples.map((x) => x.labels['cache'])).toEqual(['jwt:aaaaaaaaaaaa'])
  })

  it('reads the stat sources once per scrape, not once per metric', async () => {
    const m = metrics()
    let cacheReads = 0
    let originReads = 0
    m.bindCaches(() => (cacheReads++, [cacheStats('c', 0)]))
    m.bindOutbound(() => (originReads++, [originStats('http://a:1', 'open')]))
    await m.registry.metrics()
    expect([cacheReads, originReads]).toEqual([1, 1])
    await Promise.all([m.registry.metrics(), m.registry.metrics()])
    expect(cacheReads).toBeLessThanOrEqual(3)
  })

  it('outbound metrics per origin: counts, status classes, error kinds, latency sum/count, pool gauges, breaker state', async () => {
    const m = metrics()
    m.bindOutbound(() => [originStats('http://127.0.0.1:1111', 'open'), originStats('https://idp.example.com:443', 'half_open')])
    const f = parseExposition(await m.registry.metrics())
    const o = { origin: 'http://127.0.0.1:1111' }
    expect(sample(f, 'portcullis_outbound_requests_total', o)).toBe(10)
    expect(sample(f, 'portcullis_outbound_attempts_total', o)).toBe(12)
    expect(sample(f, 'portcullis_outbound_retries_total', o)).toBe(2)
    expect(sample(f, 'portcullis_outbound_retries_denied_total', o)).toBe(1)
    expect(sample(f, 'portcullis_outbound_responses_total', { ...o, status_class: '2xx' })).toBe(7)
    expect(f.get('portcullis_outbound_responses_total')!.samples.filter((s) => s.labels['origin'] === o.origin)).toHaveLength(5)
    expect(sample(f, 'portcullis_outbound_errors_total', { ...o, kind: 'timeout' })).toBe(1)
    expect(f.get('portcullis_outbound_errors_total')!.samples.filter((s) => s.labels['origin'] === o.origin)).toHaveLength(8)
    const D = 'portcullis_outbound_request_duration_seconds'
    expect(sample(f, D, o, `${D}_sum`)).toBe(1.5)
    expect(sample(f, D, o, `${D}_count`)).toBe(10)
    expect(sample(f, 'portcullis_outbound_connections', o)).toBe(3)
    expect(sample(f, 'portcullis_outbound_pending', o)).toBe(4)
    expect(sample(f, 'portcullis_outbound_in_flight', o)).toBe(5)
    const B = 'portcullis_outbound_breaker_state'
    expect([sample(f, B, { ...o, state: 'closed' }), sample(f, B, { ...o, state: 'open' }), sample(f, B, { ...o, state: 'half_open' })]).toEqual([0, 1, 0])
    expect(sample(f, B, { origin: 'https://idp.example.com:443', state: 'half_open' })).toBe(1)
  })

  it('close() unbinds the sources', async () => {
    const m = metrics()
    m.bindCaches(() => [cacheStats('c', 0)])
    m.close()
    const f = parseExposition(await m.registry.metrics())
    expect(f.get('portcullis_cache_entries')!.samples).toEqual([])
  })
})

describe('GC pauses', () => {
  it('counts every GC event of a batch (prom-client records only the first of each batch)', async () => {
    const m = metrics(true)
    let independent = 0
    const obs = new PerformanceObserver((list) => {
      independent += list.getEntries().length
    })
    obs.observe({ entryTypes: ['gc'] })
    await new Promise((r) => setTimeout(r, 10))
    const before = m.gcTotals().count
    const beforeIndependent = independent
    // Allocate in one synchronous stretch: the observers get the GC entries in one batch.
    let keep: object[] = []
    for (let i = 0; i < 3_000_000; i++) {
      keep.push({ i })
      if (keep.length > 100_000) keep = []
    }
    gc()
    await new Promise((r) => setTimeout(r, 20))
    obs.disconnect()
    const seen = m.gcTotals().count - before
    expect(independent - beforeIndependent).toBeGreaterThan(1)
    expect(seen).toBe(independent - beforeIndependent)
    const f = parseExposition(await m.registry.metrics())
    const count = f.get('portcullis_nodejs_gc_duration_seconds')!.samples.filter((s) => s.name.endsWith('_count')).reduce((a, s) => a + s.value, 0)
    expect(count).toBe(m.gcTotals().count)
    expect(m.gcTotals().seconds).toBeGreaterThan(0)
  })
})

describe('hot-path cost (logged, not asserted)', () => {
  it('observeCheck / observeDecision / observeMatch per call, against prom-client label children', () => {
    const m = metrics()
    const ids = Array.from({ length: 100 }, (_, i) => `rule-${i}`)
    m.forgetRules(ids)
    const allow = ids.map((id) => ({ kind: 'allow' as const, ruleId: id, session: SESSION, removeHeaders: [] }))
    const err = new PipelineError('ERR_UNAUTHENTICATED', 'authenticator_unauthorized', 'x')
    const deny = ids.map((id) => ({ kind: 'deny' as const, ruleId: id, error: err, http: { status: 401, headers: [], body: '' } }))
    const N = 2_000_000
    const time = (f: (i: number) => void): number => {
      for (let i = 0; i < 200_000; i++) f(i) // warm-up
      const t = process.hrtime.bigint()
      for (let i = 0; i < N; i++) f(i)
      return Number(process.hrtime.bigint() - t) / N
    }
    const nsAllow = time((i) => m.observeCheck(allow[i % 100]!, 0.0002))
    const nsDeny = time((i) => m.observeCheck(deny[i % 100]!, 0.0002))
    const nsRaw = time((i) => m.observeDecision(ids[i % 100], 'deny', 'ERR_FORBIDDEN', 0.0002, 'authorizer_deny'))
    const nsMatch = time(() => m.observeMatch(0.000003))

    // The same work with prom-client children resolved in advance (what this file avoids).
    const reg = new Registry()
    const c = new Counter({ name: 'c_total', help: 'h', labelNames: ['rule', 'decision', 'code'], registers: [reg] })
    const h = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['decision'], buckets: [...CHECK_DURATION_BUCKETS], registers: [reg] })
    const children = ids.map((id) => c.labels(id, 'allow', ''))
    const hAllow = h.labels('allow')
    const nsProm = time((i) => {
      children[i % 100]!.inc()
      hAllow.observe(0.0002)
    })
    console.log(
      `[metrics] ns per call: observeCheck(allow) ${nsAllow.toFixed(1)}, observeCheck(deny) ${nsDeny.toFixed(1)}, ` +
        `observeDecision(deny) ${nsRaw.toFixed(1)}, observeMatch ${nsMatch.toFixed(1)}; prom-client children inc+observe ${nsProm.toFixed(1)}`,
    )
    expect(nsAllow).toBeGreaterThan(0)
  })
})

describe('serve.prometheus schema', () => {
  it('defaults to Oathkeeper port and path on loopback', () => {
    expect(PrometheusConfigSchema.parse({})).toEqual({ enabled: true, host: '127.0.0.1', port: 9000, metrics_path: '/metrics' })
  })

  it('accepts a custom path, port 0, and Oathkeeper’s request-path switches (no effect)', () => {
    const input = { host: '0.0.0.0', port: 0, metrics_path: '/internal/metrics', hide_request_paths: true, collapse_request_paths: false }
    const c = PrometheusConfigSchema.parse(input)
    expect(c).toMatchObject({ host: '0.0.0.0', port: 0, metrics_path: '/internal/metrics' })
  })

  it.each([
    [{ port: 70000 }, 'port'],
    [{ port: 1.5 }, 'port'],
    [{ metrics_path: 'metrics' }, 'metrics_path'],
    [{ metrics_path: '/metrics?x=1' }, 'metrics_path'],
    [{ metrics_path: '/me trics' }, 'metrics_path'],
    [{ host: '' }, 'host'],
    [{ unknown_key: 1 }, ''],
  ])('rejects %j', (input, path) => {
    const r = PrometheusConfigSchema.safeParse(input)
    expect(r.success).toBe(false)
    expect(r.error!.issues[0]!.path.join('.')).toBe(path)
  })

  it('rejects metric_name_prefix with an explanation', () => {
    const r = PrometheusConfigSchema.safeParse({ metric_name_prefix: 'ory_oathkeeper_' })
    expect(r.success).toBe(false)
    expect(r.error!.issues[0]!.path).toEqual(['metric_name_prefix'])
    expect(r.error!.issues[0]!.message).toMatch(/fixed \(portcullis_\*\)/)
  })
})
