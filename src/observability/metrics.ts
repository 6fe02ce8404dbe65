/**
 * Every Prometheus metric Portcullis exports is declared here (style.md §(b) 14), on a dedicated
 * prom-client `Registry` per `createMetrics()` call (never the global one), so tests build fresh
 * instances and the composition root owns one.
 *
 * Labels come only from bounded sets: rule id (the loaded rule set; `forgetRules` drops the
 * series of removed rules), decision, error code, reason id, stage, handler id, cache name (from
 * config), outbound origin (from config, at most `outbound.max_origins`), breaker state, GC kind.
 * Never a path, host, subject, token or kid: the observer methods do not take them, and
 * free-form strings that do reach a label (reason, handler id, rule id) are checked against a
 * bounded domain and counted as `_other` when they fall outside it.
 *
 * Hot path: a Check costs a Map lookup and a few number increments (`observeCheck`,
 * `observeMatch`); nothing is hashed, validated or concatenated per request. The numbers are turned
 * into prom-client series when Prometheus scrapes (`collect()` callbacks, and two small exported
 * histogram objects, see `ScrapedHistogram`). Cache and outbound figures are read from
 * `CacheRegistry.stats()` / `HttpClient.stats()` at scrape time, once per scrape.
 * @module
 */
import { constants as perfConstants, PerformanceObserver } from 'node:perf_hooks'
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client'
import type { CacheStats } from '../cache/auth-cache.js'
import type { OriginStats, StatusClass } from '../http/client.js'
import { OUTBOUND_ERROR_KINDS } from '../http/errors.js'
import { PipelineError, type PipelineErrorCode } from '../pipeline/errors.js'
import type { Decision } from '../pipeline/run.js'
import type { Stage } from '../pipeline/types.js'
import { STATUS } from '../server/status.js'

export const METRIC_PREFIX = 'portcullis_'

/** Check latency buckets (seconds), from 50 µs: a cached decision takes tens of µs. */
export const CHECK_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
])
/** Rule match buckets (seconds), from 1 µs: matching is a prefix-tree walk plus a few regexps. */
export const MATCH_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
])
/** GC pause buckets (seconds): minor GCs are sub-millisecond, major ones on big heaps 100 ms+. */
export const GC_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
])

/** The label value for anything outside a label's bounded domain. */
export const OTHER = '_other'
/** Distinct reason ids kept as label values; later ones are counted as `_other`. */
export const MAX_REASON_LABELS = 128
/** Distinct handler ids kept as label values (the registry has far fewer). */
export const MAX_HANDLER_LABELS = 128
/** Distinct rule ids kept before `forgetRules` has declared the rule set. */
export const MAX_UNDECLARED_RULES = 10_000
/** What a reason id or handler id looks like (`no_rule`, `oauth2_introspection`). */
const ID_LABEL = /^[a-z][a-z0-9_]{0,63}$/

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary'
export interface MetricSpec {
  readonly name: string
  readonly type: MetricType
  readonly labels: readonly string[]
  readonly help: string
}

const spec = <const L extends readonly string[]>(name: string, type: MetricType, labels: L, help: string) =>
  ({ name: METRIC_PREFIX + name, type, labels, help }) as const

/**
 * Every metric of this file, in exposition order (default process metrics come on top of these
 * when `collectDefault` is on; see `DEFAULT_METRIC_NAMES`). The README table and the doc-sync test
 * (test/unit/observability/metrics.test.ts) follow this list.
 */
export const METRICS = {
  decisions: spec(
    'decisions_total',
    'counter',
    ['rule', 'decision', 'code'],
    'Checks answered, by matched rule ("" when none matched, _other when not in the loaded rule set), decision (allow|deny) and error code ("" for allow).',
  ),
  denials: spec(
    'denials_total',
    'counter',
    ['code', 'reason'],
    'Denied Checks by error code and reason id (Oathkeeper reason_id; _other beyond the first 128 distinct ids).',
  ),
  checkDuration: spec('check_duration_seconds', 'histogram', ['decision'], 'Time from receiving a Check to answering it, in seconds.'),
  matchDuration: spec('rule_match_duration_seconds', 'histogram', [], 'Time to find the rule for a request (URL build + matcher), in seconds.'),
  handlerErrors: spec(
    'handler_errors_total',
    'counter',
    ['stage', 'handler', 'code'],
    'Denials and faults raised by a pipeline handler, by stage (authn|authz|mutate|error), handler id and error code.',
  ),
  reloads: spec('reloads_total', 'counter', ['result'], 'Rule/config reloads by result (success|failure); a failed reload keeps the last good rule set.'),
  rulesLoaded: spec('rules_loaded', 'gauge', [], 'Access rules in the rule set now serving.'),

  cacheHits: spec('cache_hits_total', 'counter', ['cache'], 'Cache lookups answered by a positive entry.'),
  cacheNegativeHits: spec('cache_negative_hits_total', 'counter', ['cache'], 'Cache lookups answered by a negative (known-invalid) entry.'),
  cacheMisses: spec('cache_misses_total', 'counter', ['cache'], 'Cache lookups that had to wait for a load (loads + coalesced).'),
  cacheLoads: spec('cache_loads_total', 'counter', ['cache'], 'Loads started by cache misses (upstream calls, verifications).'),
  cacheLoadErrors: spec('cache_load_errors_total', 'counter', ['cache'], 'Loads that failed (nothing cached).'),
  cacheCoalesced: spec('cache_coalesced_total', 'counter', ['cache'], 'Lookups that joined a load already in flight.'),
  cacheEvictions: spec('cache_evictions_total', 'counter', ['cache'], 'Positive entries evicted to make room.'),
  cacheNegativeEvictions: spec('cache_negative_evictions_total', 'counter', ['cache'], 'Negative entries evicted to make room.'),
  cacheExpirations: spec('cache_expirations_total', 'counter', ['cache'], 'Positive entries removed because their lifetime was over.'),
  cacheEntries: spec('cache_entries', 'gauge', ['cache'], 'Positive entries held.'),
  cacheBytes: spec('cache_bytes', 'gauge', ['cache'], 'Bytes counted by the positive entries (keys and overhead included).'),
  cacheMaxBytes: spec('cache_max_bytes', 'gauge', ['cache'], 'Byte bound of the positive entries (max_cost).'),
  cacheNegativeEntries: spec('cache_negative_entries', 'gauge', ['cache'], 'Negative entries held.'),
  cacheNegativeBytes: spec('cache_negative_bytes', 'gauge', ['cache'], 'Bytes counted by the negative entries.'),
  cacheNegativeMaxBytes: spec('cache_negative_max_bytes', 'gauge', ['cache'], 'Byte bound of the negative entries (negative_max_cost).'),
  cacheInflight: spec('cache_inflight_loads', 'gauge', ['cache'], 'Loads in flight now.'),

  outboundRequests: spec(
    'outbound_requests_total',
    'counter',
    ['origin'],
    'Outbound calls made, including those rejected by the breaker or the pending bound.',
  ),
  outboundAttempts: spec('outbound_attempts_total', 'counter', ['origin'], 'Outbound attempts sent to the network (first attempts + retries).'),
  outboundRetries: spec('outbound_retries_total', 'counter', ['origin'], 'Outbound retries made.'),
  outboundRetriesDenied: spec('outbound_retries_denied_total', 'counter', ['origin'], 'Outbound retries not made because the retry budget was spent.'),
  outboundResponses: spec(
    'outbound_responses_total',
    'counter',
    ['origin', 'status_class'],
    'Outbound calls that got a response, by status class of the final response.',
  ),
  outboundErrors: spec(
    'outbound_errors_total',
    'counter',
    ['origin', 'kind'],
    'Outbound calls that failed, by kind (timeout|connect|reset|too_large|circuit_open|overloaded|aborted|protocol).',
  ),
  outboundDuration: spec(
    'outbound_request_duration_seconds',
    'summary',
    ['origin'],
    'Outbound call latency, all attempts and backoff included (sum and count; mean = rate(sum)/rate(count)).',
  ),
  outboundConnections: spec('outbound_connections', 'gauge', ['origin'], 'Open connections to the origin.'),
  outboundPending: spec('outbound_pending', 'gauge', ['origin'], 'Outbound attempts waiting for a connection.'),
  outboundInFlight: spec('outbound_in_flight', 'gauge', ['origin'], 'Outbound attempts handed to the pool and not finished.'),
  outboundBreakerState: spec(
    'outbound_breaker_state',
    'gauge',
    ['origin', 'state'],
    'Circuit breaker state per origin: 1 for the current state (closed|open|half_open), 0 for the others.',
  ),

  gcDuration: spec(
    'nodejs_gc_duration_seconds',
    'histogram',
    ['kind'],
    'Garbage collection pauses by kind (major|minor|incremental|weakcb), in seconds; every GC event counted.',
  ),
} as const satisfies Record<string, MetricSpec>

/**
 * prom-client's default process metrics, as exported with our prefix when `collectDefault` is on
 * (the `nodejs_gc_duration_seconds` among them is replaced by `METRICS.gcDuration`, which counts
 * every GC event: prom-client's observer records only the first entry of each batch).
 */
export const DEFAULT_METRIC_NAMES: readonly string[] = Object.freeze(
  [
    'process_cpu_user_seconds_total',
    'process_cpu_system_seconds_total',
    'process_cpu_seconds_total',
    'process_start_time_seconds',
    'process_resident_memory_bytes',
    'process_virtual_memory_bytes',
    'process_heap_bytes',
    'process_open_fds',
    'process_max_fds',
    'nodejs_eventloop_lag_seconds',
    'nodejs_eventloop_lag_min_seconds',
    'nodejs_eventloop_lag_max_seconds',
    'nodejs_eventloop_lag_mean_seconds',
    'nodejs_eventloop_lag_stddev_seconds',
    'nodejs_eventloop_lag_p50_seconds',
    'nodejs_eventloop_lag_p90_seconds',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_active_resources',
    'nodejs_active_resources_total',
    'nodejs_active_handles',
    'nodejs_active_handles_total',
    'nodejs_active_requests',
    'nodejs_active_requests_total',
    'nodejs_heap_size_total_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_external_memory_bytes',
    'nodejs_heap_space_size_total_bytes',
    'nodejs_heap_space_size_used_bytes',
    'nodejs_heap_space_size_available_bytes',
    'nodejs_version_info',
  ].map((n) => METRIC_PREFIX + n),
)

/** What the Check edge (gRPC `Check`, HTTP decisions API) reports: one call per answered request. */
export interface DecisionObserver {
  /** `outcome`: the Decision, or the PipelineError of a denial built outside the pipeline. */
  observeCheck(outcome: Decision | PipelineError, seconds: number): void
}

/** What `decide()` (src/pipeline/run.ts) reports. Never given a path, subject or credential. */
export interface PipelineObserver {
  /** Time spent finding the rule, in seconds. */
  observeMatch(seconds: number): void
  /** A handler threw: a denial (invalid credential, `deny` authorizer) or a fault. */
  handlerError(stage: Stage, handler: string, code: PipelineErrorCode): void
}

export interface Metrics extends DecisionObserver, PipelineObserver {
  readonly registry: Registry
  /**
   * Counts one answered Check. `ruleId` undefined: no rule matched (or none was reached);
   * `code`/`reason` are read for denials only.
   */
  observeDecision(
    ruleId: string | undefined,
    decision: 'allow' | 'deny',
    code: PipelineErrorCode | undefined,
    seconds: number,
    reason?: string,
  ): void
  /** Counts a reload; on success with `ruleCount`, also sets `portcullis_rules_loaded`. */
  reload(result: 'success' | 'failure', ruleCount?: number): void
  /**
   * Declares the rule set now serving: rule ids outside it are labelled `_other` from now on, the
   * series of rules not in it are deleted, and `portcullis_rules_loaded` is set to its size.
   * Call at startup and after every successful swap.
   */
  forgetRules(keepIds: Iterable<string>): void
  /** Reads cache stats at scrape time (`() => deps.caches.stats()`). */
  bindCaches(stats: () => readonly CacheStats[]): void
  /** Reads outbound stats at scrape time (`() => deps.http.stats()`). */
  bindOutbound(stats: () => readonly OriginStats[]): void
  /** GC events seen and their total pause time since creation (for the summary log line). */
  gcTotals(): { readonly count: number; readonly seconds: number }
  /** Stops the GC observer and unbinds the stat sources. prom-client's own default collectors stay. */
  close(): void
}

export interface MetricsOptions {
  /** Also export prom-client's process metrics (CPU, RSS, heap, event-loop lag, fds). Default true. */
  readonly collectDefault?: boolean
  /** Sampling resolution of the event-loop delay monitor, in ms. Default 10. */
  readonly eventLoopMonitoringPrecisionMs?: number
}

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  return new PortcullisMetrics(opts)
}

// ---------------------------------------------------------------------------------------------

const CODES = Object.keys(STATUS) as PipelineErrorCode[]
const CODE_INDEX: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(CODES.map((c, i) => [c, i])))
/** Index of the `_other` slot in per-code arrays. */
const OTHER_CODE = CODES.length
const codeIndex = (code: string | undefined): number => (code === undefined ? OTHER_CODE : (CODE_INDEX[code] ?? OTHER_CODE))
const codeLabel = (i: number): string => CODES[i] ?? OTHER

const STAGES: ReadonlySet<string> = new Set<Stage>(['authn', 'authz', 'mutate', 'error'])
const STATUS_CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx']
const BREAKER_STATES = ['closed', 'open', 'half_open'] as const

const GC_KINDS: Readonly<Record<number, string>> = {
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
}

/** First-come bounded set of label values that match a syntax; the rest map to `_other`. */
class LabelDomain {
  readonly #seen = new Set<string>()
  constructor(
    private readonly max: number,
    private readonly syntax: RegExp,
  ) {}

  of(value: string): string {
    if (this.#seen.has(value)) return value
    if (this.#seen.size >= this.max || !this.syntax.test(value)) return OTHER
    this.#seen.add(value)
    return value
  }
}

/** Per-decision-outcome counts of one rule label; `deny` is indexed by `codeIndex`. */
interface RuleCounts {
  allow: number
  readonly deny: Float64Array
}
const newRuleCounts = (): RuleCounts => ({ allow: 0, deny: new Float64Array(CODES.length + 1) })

/** A fixed-bucket histogram kept as plain numbers: `observe` is a short loop and three adds. */
class Buckets {
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(v: number): void {
    if (!(v >= 0) || v === Infinity) return
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]!) i++
    this.counts[i]! += 1
    this.sum += v
    this.count++
  }
}

type Labels = Record<string, string | number>
interface ExportedValue {
  readonly value: number
  readonly labels: Labels
  readonly metricName?: string
}

/**
 * A histogram (or a summary without quantiles) whose values live in `Buckets`, exported in
 * prom-client's metric-object shape. prom-client has no API to load bucket counts into its own
 * `Histogram`, and its `observe()` hashes and validates labels on every call (~0.3 µs), so the
 * per-Check histograms are kept here and only formatted at scrape time.
 */
class ScrapedHistogram {
  readonly aggregator = 'sum'
  readonly labelNames: readonly string[]
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'histogram' | 'summary',
    labelNames: readonly string[],
    private readonly series: () => Iterable<readonly [Labels, Buckets | { readonly sum: number; readonly count: number }]>,
  ) {
    this.labelNames = labelNames
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = []
    for (const [labels, h] of this.series()) {
      if (h instanceof Buckets) {
        let acc = 0
        h.bounds.forEach((le, i) => {
          acc += h.counts[i]!
          values.push({ value: acc, labels: { ...labels, le }, metricName: `${this.name}_bucket` })
        })
        values.push({ value: h.count, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` })
      }
      values.push({ value: h.sum, labels, metricName: `${this.name}_sum` })
      values.push({ value: h.count, labels, metricName: `${this.name}_count` })
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values })
  }

  /** `Registry.resetMetrics()` calls this; cumulative series are not reset by a scrape. */
  reset(): void {}
}

/** Calls `read` at most once per synchronous pass (one scrape collects every metric in one pass). */
function oncePerTick<T>(read: () => T): () => T {
  let cached: { readonly v: T } | undefined
  return () => {
    if (cached === undefined) {
      cached = { v: read() }
      queueMicrotask(() => {
        cached = undefined
      })
    }
    return cached.v
  }
}

class PortcullisMetrics implements Metrics {
  readonly registry = new Registry()

  // Hot-path state: plain numbers, exported by the collect() callbacks below.
  readonly #rules = new Map<string, RuleCounts>()
  #ruleDomain: ReadonlySet<string> | undefined
  readonly #noRule = newRuleCounts()
  readonly #otherRule = newRuleCounts()
  readonly #reasons = new Map<string, Float64Array>()
  readonly #reasonDomain = new LabelDomain(MAX_REASON_LABELS, ID_LABEL)
  readonly #allowLatency = new Buckets(CHECK_DURATION_BUCKETS)
  readonly #denyLatency = new Buckets(CHECK_DURATION_BUCKETS)
  readonly #match = new Buckets(MATCH_DURATION_BUCKETS)
  readonly #handlerErrors = new Map<string, { readonly labels: Labels; n: number }>()
  readonly #handlerDomain = new LabelDomain(MAX_HANDLER_LABELS, ID_LABEL)

  readonly #reloads: Counter<'result'>
  readonly #rulesLoaded: Gauge
  readonly #gc = new Map<string, Buckets>()
  #gcObserver: PerformanceObserver | undefined
  #gcCount = 0
  #gcSeconds = 0

  #caches: () => readonly CacheStats[] = () => []
  #origins: () => readonly OriginStats[] = () => []
  readonly #cacheSnapshot = oncePerTick(() => this.#caches())
  readonly #originSnapshot = oncePerTick(() => this.#origins())

  constructor(opts: MetricsOptions) {
    const reg = this.registry
    if (opts.collectDefault ?? true) {
      collectDefaultMetrics({ register: reg, prefix: METRIC_PREFIX, eventLoopMonitoringPrecision: opts.eventLoopMonitoringPrecisionMs ?? 10 })
      // Replaced below by a histogram that counts every entry of a GC batch.
      reg.removeSingleMetric(METRICS.gcDuration.name)
    }

    const self = this
    const decisions = METRICS.decisions
    new Counter({
      name: decisions.name,
      help: decisions.help,
      labelNames: decisions.labels,
      registers: [reg],
      collect() {
        this.reset()
        const emit = (rule: string, r: RuleCounts): void => {
          if (r.allow > 0) this.inc({ rule, decision: 'allow', code: '' }, r.allow)
          r.deny.forEach((n, i) => {
            if (n > 0) this.inc({ rule, decision: 'deny', code: codeLabel(i) }, n)
          })
        }
        emit('', self.#noRule)
        for (const [id, r] of self.#rules) emit(id, r)
        emit(OTHER, self.#otherRule)
      },
    })
    const denials = METRICS.denials
    new Counter({
      name: denials.name,
      help: denials.help,
      labelNames: denials.labels,
      registers: [reg],
      collect() {
        this.reset()
        for (const [reason, byCode] of self.#reasons) {
          byCode.forEach((n, i) => {
            if (n > 0) this.inc({ code: codeLabel(i), reason }, n)
          })
        }
      },
    })
    this.#registerHistogram(METRICS.checkDuration, () => [
      [{ decision: 'allow' }, this.#allowLatency],
      [{ decision: 'deny' }, this.#denyLatency],
    ])
    this.#registerHistogram(METRICS.matchDuration, () => [[{}, this.#match]])
    const handlerErrors = METRICS.handlerErrors
    new Counter({
      name: handlerErrors.name,
      help: handlerErrors.help,
      labelNames: handlerErrors.labels,
      registers: [reg],
      collect() {
        this.reset()
        for (const { labels, n } of self.#handlerErrors.values()) this.inc(labels, n)
      },
    })
    this.#reloads = new Counter({ name: METRICS.reloads.name, help: METRICS.reloads.help, labelNames: METRICS.reloads.labels, registers: [reg] })
    this.#reloads.inc({ result: 'success' }, 0)
    this.#reloads.inc({ result: 'failure' }, 0)
    this.#rulesLoaded = new Gauge({ name: METRICS.rulesLoaded.name, help: METRICS.rulesLoaded.help, registers: [reg] })

    const cache = (m: MetricSpec, read: (s: CacheStats) => number): void =>
      this.#scraped(m, () => this.#cacheSnapshot().map((s) => [{ cache: s.name }, read(s)] as const))
    cache(METRICS.cacheHits, (s) => s.hits)
    cache(METRICS.cacheNegativeHits, (s) => s.negativeHits)
    cache(METRICS.cacheMisses, (s) => s.misses)
    cache(METRICS.cacheLoads, (s) => s.loads)
    cache(METRICS.cacheLoadErrors, (s) => s.loadErrors)
    cache(METRICS.cacheCoalesced, (s) => s.coalesced)
    cache(METRICS.cacheEvictions, (s) => s.evictions)
    cache(METRICS.cacheNegativeEvictions, (s) => s.negativeEvictions)
    cache(METRICS.cacheExpirations, (s) => s.expirations)
    cache(METRICS.cacheEntries, (s) => s.entries)
    cache(METRICS.cacheBytes, (s) => s.bytes)
    cache(METRICS.cacheMaxBytes, (s) => s.maxBytes)
    cache(METRICS.cacheNegativeEntries, (s) => s.negativeEntries)
    cache(METRICS.cacheNegativeBytes, (s) => s.negativeBytes)
    cache(METRICS.cacheNegativeMaxBytes, (s) => s.negativeMaxBytes)
    cache(METRICS.cacheInflight, (s) => s.inflight)

    const origin = (m: MetricSpec, read: (s: OriginStats) => number): void =>
      this.#scraped(m, () => this.#originSnapshot().map((s) => [{ origin: s.origin }, read(s)] as const))
    origin(METRICS.outboundRequests, (s) => s.requests)
    origin(METRICS.outboundAttempts, (s) => s.attempts)
    origin(METRICS.outboundRetries, (s) => s.retries)
    origin(METRICS.outboundRetriesDenied, (s) => s.retriesDenied)
    this.#scraped(METRICS.outboundResponses, () =>
      this.#originSnapshot().flatMap((s) => STATUS_CLASSES.map((c) => [{ origin: s.origin, status_class: c }, s.responses[c]] as const)),
    )
    this.#scraped(METRICS.outboundErrors, () =>
      this.#originSnapshot().flatMap((s) => OUTBOUND_ERROR_KINDS.map((k) => [{ origin: s.origin, kind: k }, s.errors[k]] as const)),
    )
    this.#registerHistogram(METRICS.outboundDuration, () =>
      this.#originSnapshot().map((s) => [{ origin: s.origin }, { sum: s.latencyMsSum / 1000, count: s.latencyCount }] as const),
    )
    origin(METRICS.outboundConnections, (s) => s.connections)
    origin(METRICS.outboundPending, (s) => s.pending)
    origin(METRICS.outboundInFlight, (s) => s.inFlight)
    this.#scraped(METRICS.outboundBreakerState, () =>
      this.#originSnapshot().flatMap((s) => BREAKER_STATES.map((st) => [{ origin: s.origin, state: st }, s.breaker === st ? 1 : 0] as const)),
    )

    this.#registerHistogram(METRICS.gcDuration, () => [...this.#gc].map(([kind, h]) => [{ kind }, h] as const))
    if (opts.collectDefault ?? true) this.#observeGc()
  }

  // --- hot path -------------------------------------------------------------------------------

  observeDecision(
    ruleId: string | undefined,
    decision: 'allow' | 'deny',
    code: PipelineErrorCode | undefined,
    seconds: number,
    reason?: string,
  ): void {
    const r = ruleId === undefined ? this.#noRule : (this.#rules.get(ruleId) ?? this.#ruleCounts(ruleId))
    if (decision === 'allow') {
      r.allow++
      this.#allowLatency.observe(seconds)
      return
    }
    const ci = codeIndex(code)
    r.deny[ci]! += 1
    this.#denyLatency.observe(seconds)
    const key = reason ?? OTHER
    const byCode = this.#reasons.get(key) ?? this.#reasonCounts(key)
    byCode[ci]! += 1
  }

  observeCheck(outcome: Decision | PipelineError, seconds: number): void {
    if (outcome instanceof PipelineError) this.observeDecision(undefined, 'deny', outcome.code, seconds, outcome.reason)
    else if (outcome.kind === 'allow') this.observeDecision(outcome.ruleId, 'allow', undefined, seconds)
    else this.observeDecision(outcome.ruleId, 'deny', outcome.error.code, seconds, outcome.error.reason)
  }

  observeMatch(seconds: number): void {
    this.#match.observe(seconds)
  }

  handlerError(stage: Stage, handler: string, code: PipelineErrorCode): void {
    const s = STAGES.has(stage) ? stage : OTHER
    const h = this.#handlerDomain.of(handler)
    const c = codeLabel(codeIndex(code))
    const key = `${s} ${h} ${c}`
    const e = this.#handlerErrors.get(key)
    if (e !== undefined) e.n++
    else this.#handlerErrors.set(key, { labels: { stage: s, handler: h, code: c }, n: 1 })
  }

  // --- lifecycle ------------------------------------------------------------------------------

  reload(result: 'success' | 'failure', ruleCount?: number): void {
    this.#reloads.inc({ result })
    if (result === 'success' && ruleCount !== undefined) this.#rulesLoaded.set(ruleCount)
  }

  forgetRules(keepIds: Iterable<string>): void {
    const domain = new Set(keepIds)
    this.#ruleDomain = domain
    for (const id of [...this.#rules.keys()]) if (!domain.has(id)) this.#rules.delete(id)
    this.#rulesLoaded.set(domain.size)
  }

  bindCaches(stats: () => readonly CacheStats[]): void {
    this.#caches = stats
  }

  bindOutbound(stats: () => readonly OriginStats[]): void {
    this.#origins = stats
  }

  gcTotals(): { readonly count: number; readonly seconds: number } {
    return { count: this.#gcCount, seconds: this.#gcSeconds }
  }

  close(): void {
    this.#gcObserver?.disconnect()
    this.#gcObserver = undefined
    this.#caches = () => []
    this.#origins = () => []
  }

  // --- internals ------------------------------------------------------------------------------

  /** First decision of a rule id: keep it if the declared rule set has it, else count it as `_other`. */
  #ruleCounts(id: string): RuleCounts {
    const allowed = this.#ruleDomain !== undefined ? this.#ruleDomain.has(id) : this.#rules.size < MAX_UNDECLARED_RULES
    if (!allowed) return this.#otherRule
    const r = newRuleCounts()
    this.#rules.set(id, r)
    return r
  }

  #reasonCounts(reason: string): Float64Array {
    const label = this.#reasonDomain.of(reason)
    const existing = this.#reasons.get(label)
    if (existing !== undefined) return existing
    const byCode = new Float64Array(CODES.length + 1)
    this.#reasons.set(label, byCode)
    return byCode
  }

  /** A counter or gauge whose series are read at scrape time; series absent from `read` vanish. */
  #scraped(m: MetricSpec, read: () => readonly (readonly [Labels, number])[]): void {
    const config = {
      name: m.name,
      help: m.help,
      labelNames: m.labels,
      registers: [this.registry],
    }
    if (m.type === 'counter') {
      new Counter({
        ...config,
        collect() {
          this.reset()
          for (const [labels, v] of read()) this.inc(labels, v)
        },
      })
    } else {
      new Gauge({
        ...config,
        collect() {
          this.reset()
          for (const [labels, v] of read()) this.set(labels, v)
        },
      })
    }
  }

  #registerHistogram(
    m: MetricSpec,
    series: () => Iterable<readonly [Labels, Buckets | { readonly sum: number; readonly count: number }]>,
  ): void {
    const type = m.type === 'summary' ? 'summary' : 'histogram'
    // Duck-typed: Registry only reads name/help/type/aggregator and calls get()/reset().
    this.registry.registerMetric(new ScrapedHistogram(m.name, m.help, type, m.labels, series) as unknown as Metric)
  }

  #observeGc(): void {
    const obs = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = GC_KINDS[(entry as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? OTHER
        let h = this.#gc.get(kind)
        if (h === undefined) this.#gc.set(kind, (h = new Buckets(GC_DURATION_BUCKETS)))
        const seconds = entry.duration / 1000
        h.observe(seconds)
        this.#gcCount++
        this.#gcSeconds += seconds
      }
    })
    obs.observe({ entryTypes: ['gc'] })
    this.#gcObserver = obs
  }
}
