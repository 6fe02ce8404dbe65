/**
 * The HTTP API server (`serve.api`, default 127.0.0.1:4456, Oathkeeper's port and paths):
 *
 * | Route | Methods | Answer |
 * |---|---|---|
 * | `/health/alive` | GET, HEAD | 200 `{"status":"ok"}` while the process runs |
 * | `/health/ready` | GET, HEAD | 200 `{"status":"ok"}` when ready, else 503 `{"errors":{"<id>":"<message>"}}` |
 * | `/decisions`, `/decisions/*` | any | the decision (src/server/decisions.ts) |
 * | anything else | any | 404 JSON (405 + `Allow` for other methods on the health routes) |
 *
 * Decisions share the gRPC server's pipeline, rule set snapshot (`holder.current`, read once per
 * request) and caches; nothing is built separately. Each decision has a deadline
 * (`max_check_duration_ms`, shortened by Envoy's `x-envoy-expected-rq-timeout-ms`) after which it
 * is denied with 503, and is aborted when the proxy goes away.
 *
 * Bounds: request head ≤ `max_header_bytes` (else 431 from node:http), at most 256 header lines
 * (else 400, `toRequestView`'s limit; node:http's silent truncation at 2000 is disabled), head and
 * body within `timeout.read`, socket inactivity `timeout.write`, keep-alive `timeout.idle`. A
 * request body is never read: a request announcing one is answered with `Connection: close`, so the
 * unread bytes die with the connection instead of being drained without bound.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../observability/logger.js'
import { PipelineError } from '../pipeline/errors.js'
import { decide, deny, type Decision } from '../pipeline/run.js'
import type { RequestView } from '../pipeline/types.js'
import type { RuleSetHolder } from './grpc.js'
import { compileTrustedProxies, type ApiConfig } from './http-api-config.js'
import type { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth.js'
import { errorAnswer, fromDeniedCheckResponse, isDecisionsPath, toDecisionView, toHttpAnswer, type HttpAnswer } from './decisions.js'

/**
 * Readiness as reported by the process-wide state; the 503 body is
 * `{"errors":{"rules_loaded":"no access rules are loaded"}}` (Oathkeeper's shape), from `errors`
 * if given, else from `reasons` (each an id, optionally followed by `": "` and a message).
 */
export interface Readiness {
  readonly ready: boolean
  /** Unmet conditions by name → message; src/server/readiness.ts `check()` returns this shape. */
  readonly errors?: Readonly<Record<string, string>>
  /** Alternatively, unmet conditions as `"id"` or `"id: message"` strings. */
  readonly reasons?: readonly string[]
}

/** One answered decision, for metrics and the decision log. */
export interface DecisionEvent {
  readonly ruleId: string | undefined
  readonly decision: 'allow' | 'deny'
  /** Stable reason id of a denial (`no_rule`, `untrusted_forwarded_headers`, …). */
  readonly reason: string | undefined
  readonly status: number
  readonly durationMs: number
}

export interface HttpApiOptions {
  /** The rule set holder the gRPC server reads; reload swaps `current`. */
  readonly holder: RuleSetHolder
  readonly log: Logger
  /** `serve.api`, parsed by `ApiConfigSchema`. */
  readonly config: ApiConfig
  /**
   * The process-wide readiness (shared with gRPC health). Without it, ready means "a rule set
   * with at least one rule is loaded".
   */
  readonly readiness?: () => Readiness
  /** Called once per answered decision. Without it, a `decision` line is logged at info. */
  readonly onDecision?: (e: DecisionEvent) => void
  /**
   * In-flight registry shared with the gRPC Check (src/server/lifecycle.ts `InFlight`): a decision
   * still running when the shutdown grace period ends is answered 503 (`shutting_down`) by `deny`.
   */
  readonly inflight?: { enter(deny: () => void): () => void }
  /**
   * The memory guard (src/server/lifecycle.ts `CheckGuard`): while `shedding()`, a decision is
   * answered at once with the denial of `shed()` (its status, headers and body), without running.
   */
  readonly guard?: { shedding(): boolean; shed(): CheckResponse }
}

export interface HttpApi {
  /** For the shutdown sequence's server list (src/server/lifecycle.ts `Stoppable`). */
  readonly name: 'http-api'
  /** The bound port (the configured one, or the ephemeral one for port 0). */
  readonly port: number
  readonly server: Server
  /** Decisions currently being evaluated. */
  inFlight(): number
  /**
   * Stops accepting connections, lets in-flight decisions finish and closes idle keep-alive
   * connections; after `graceMs` every remaining connection is closed. Idempotent.
   */
  stop(graceMs?: number): Promise<void>
}

/** Reasons of the denials this server gives outside the pipeline (same ids as the gRPC side). */
const SHED_REASON = 'memory_guard_shed'
const SHUTTING_DOWN = 'shutting_down'

/** Answer this long before Envoy's deadline so Envoy gets our denial rather than a timeout. */
const DEADLINE_MARGIN_MS = 5

const OK_BODY = '{"status":"ok"}'
const HEALTH_METHODS = 'GET, HEAD'

/** Starts the server and resolves once it listens; rejects if it cannot bind. */
export async function startHttpApi(opts: HttpApiOptions): Promise<HttpApi> {
  const c = opts.config
  const state = { inFlight: 0, stopping: false }
  const handler = createHttpApiHandler(opts, state)
  const server = createServer(
    {
      maxHeaderSize: c.max_header_bytes,
      headersTimeout: c.timeout.read,
      requestTimeout: c.timeout.read,
      keepAliveTimeout: c.timeout.idle,
      // How often the two timeouts above are enforced (node:http's default is every 30 s).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(c.timeout.read / 4))),
    },
    handler,
  )
  server.timeout = c.timeout.write
  // node:http silently drops header lines beyond maxHeadersCount (default 2000). Nothing may be
  // dropped unseen; the byte cap bounds the count and toRequestView rejects more than 256.
  server.maxHeadersCount = 0

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: c.host, port: c.port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (err) => opts.log.error({ err }, 'http api server error'))
  const port = (server.address() as AddressInfo).port
  opts.log.info({ host: c.host, port }, 'http api listening')

  let stopped: Promise<void> | undefined
  return {
    name: 'http-api',
    port,
    server,
    inFlight: () => state.inFlight,
    stop(graceMs = 5000) {
      stopped ??= stop(server, state, graceMs)
      return stopped
    },
  }
}

async function stop(server: Server, state: { inFlight: number; stopping: boolean }, graceMs: number): Promise<void> {
  state.stopping = true
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeIdleConnections()
  const deadline = Date.now() + graceMs
  while (state.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  // Connections that answered their last request while stopping were told `Connection: close`;
  // the ones still idle or busy past the grace period are closed now.
  server.closeIdleConnections()
  if (state.inFlight > 0) server.closeAllConnections()
  const force = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()))
  force.unref()
  await closed
  clearTimeout(force)
}

/**
 * The request listener, exported for embedding and tests. `state` is shared with `stop()`.
 */
export function createHttpApiHandler(
  opts: HttpApiOptions,
  state: { inFlight: number; stopping: boolean } = { inFlight: 0, stopping: false },
): (req: IncomingMessage, res: ServerResponse) => void {
  const trusted = compileTrustedProxies(opts.config.trusted_proxies)
  const readiness = opts.readiness ?? defaultReadiness(opts.holder)
  const report = opts.onDecision ?? logDecision(opts.log)
  const maxMs = opts.config.max_check_duration_ms
  const holder = opts.holder

  return function httpApi(req, res) {
    try {
      const url = req.url ?? ''
      const q = url.indexOf('?')
      const path = q < 0 ? url : url.slice(0, q)
      if (state.stopping) res.setHeader('connection', 'close')
      if (isDecisionsPath(path)) return decision(req, res)
      if (path === '/health/alive') return health(req, res, () => ({ ready: true, reasons: [] }))
      if (path === '/health/ready') return health(req, res, readiness)
      write(res, { status: 404, headers: [JSON_TYPE], body: NOT_FOUND_BODY })
    } catch (err) {
      // Unreachable by design (every step below catches its own faults); never let one escape.
      opts.log.error({ err }, 'http api handler failed')
      write(res, errorAnswer(err))
    }
  }

  function reportSafely(e: DecisionEvent): void {
    try {
      report(e)
    } catch (err) {
      opts.log.error({ err }, 'decision report failed')
    }
  }

  function health(req: IncomingMessage, res: ServerResponse, probe: () => Readiness): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return write(res, { status: 405, headers: [JSON_TYPE, ['allow', HEALTH_METHODS]], body: METHOD_NOT_ALLOWED_BODY })
    }
    let r: Readiness
    try {
      r = probe()
    } catch (err) {
      opts.log.error({ err }, 'readiness check failed')
      r = { ready: false, reasons: ['readiness_check: the readiness check failed'] }
    }
    const body = r.ready ? OK_BODY : JSON.stringify({ errors: r.errors ?? reasonsObject(r.reasons ?? []) })
    write(res, { status: r.ready ? 200 : 503, headers: [JSON_TYPE, NO_STORE], body })
  }

  function decision(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') {
      // The body is never read; closing after the answer discards it without buffering it.
      res.setHeader('connection', 'close')
    }
    if (opts.guard?.shedding() === true) {
      const answer = fromDeniedCheckResponse(opts.guard.shed())
      write(res, answer)
      return reportSafely({ ruleId: undefined, decision: 'deny', reason: SHED_REASON, status: answer.status, durationMs: performance.now() - started })
    }
    state.inFlight++
    let done = false
    let timer: NodeJS.Timeout | undefined
    const controller = new AbortController()
    const finish = (answer: HttpAnswer, d: Decision | undefined, reason: string | undefined): void => {
      if (done) return
      done = true
      state.inFlight--
      leave?.()
      if (timer !== undefined) clearTimeout(timer)
      write(res, answer)
      reportSafely({
        ruleId: d?.ruleId,
        decision: answer.status === 200 ? 'allow' : 'deny',
        reason: d?.kind === 'deny' ? d.error.reason : reason,
        status: answer.status,
        durationMs: performance.now() - started,
      })
    }
    const leave = opts.inflight?.enter(() => {
      controller.abort()
      finish(errorAnswer(new PipelineError('ERR_UPSTREAM_UNAVAILABLE', SHUTTING_DOWN, 'The service is shutting down')), undefined, SHUTTING_DOWN)
    })
    const fail = (err: unknown): void => {
      const e = err instanceof PipelineError ? err : undefined
      finish(errorAnswer(err), undefined, e?.reason ?? 'internal_error')
    }

    const rs = holder.current
    if (rs === undefined) return fail(new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'not_ready', 'No access rules are loaded'))
    let view: RequestView
    try {
      view = toDecisionView({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, peer: req.socket.remoteAddress }, trusted)
    } catch (err) {
      return fail(err)
    }
    timer = setTimeout(() => {
      controller.abort()
      const e = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'deadline_exceeded', 'The check did not finish in time')
      const d = deny(rs, undefined, view, e)
      finish(toHttpAnswer(d), d, undefined)
    }, budgetMs(req.headers['x-envoy-expected-rq-timeout-ms'], maxMs))
    // The proxy gave up (its own timeout, client gone): stop outbound work for this decision.
    res.once('close', () => {
      if (!done) controller.abort()
    })
    decide(rs, view, controller.signal).then(
      (d) => finish(toHttpAnswer(d), d, undefined),
      (err: unknown) => fail(err),
    )
  }
}

/** Envoy's http_service tells how long it will wait; answer (deny 503) a little before that. */
function budgetMs(header: string | string[] | undefined, max: number): number {
  if (typeof header !== 'string' || !/^[1-9][0-9]{0,8}$/.test(header)) return max
  return Math.max(1, Math.min(max, Number(header) - DEADLINE_MARGIN_MS))
}

function defaultReadiness(holder: RuleSetHolder): () => Readiness {
  return () =>
    holder.current !== undefined && holder.current.rules.length > 0
      ? { ready: true, reasons: [] }
      : { ready: false, reasons: ['rules_loaded: no access rules are loaded'] }
}

/** `["id: message", "other"]` → `{ id: "message", other: "other" }`. */
function reasonsObject(reasons: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  for (const r of reasons) {
    const i = r.indexOf(': ')
    const id = i < 0 ? r : r.slice(0, i)
    out[id] = i < 0 ? r : r.slice(i + 2)
  }
  if (reasons.length === 0) out['not_ready'] = 'not ready'
  return out
}

/** The default decision reporter: one `decision` log line (the gRPC path logs the same fields). */
export function logDecision(log: Logger): (e: DecisionEvent) => void {
  return (e) => {
    if (!log.isLevelEnabled('info')) return
    log.info(
      {
        transport: 'http',
        rule_id: e.ruleId ?? null,
        decision: e.decision,
        reason: e.reason,
        http_status: e.status,
        duration_ms: Math.round(e.durationMs * 1000) / 1000,
      },
      'decision',
    )
  }
}

const JSON_TYPE = ['content-type', 'application/json; charset=utf-8'] as const
const NO_STORE = ['cache-control', 'no-store'] as const
const NOT_FOUND_BODY = '{"error":{"code":404,"status":"Not Found","message":"Unknown route; the decisions API is under /decisions"}}'
const METHOD_NOT_ALLOWED_BODY = '{"error":{"code":405,"status":"Method Not Allowed","message":"Use GET or HEAD"}}'

/** Writes a complete answer; a connection that is already gone is not an error. */
function write(res: ServerResponse, a: HttpAnswer): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return
  try {
    res.statusCode = a.status
    for (const [name, value] of a.headers) res.appendHeader(name, value)
    res.setHeader('content-length', Buffer.byteLength(a.body))
    res.end(a.body)
  } catch {
    // Headers are validated before they get here; if one still fails, close rather than allow.
    res.destroy()
  }
}

/** Re-exported so main.ts can wire everything from one module. */
export { ApiConfigSchema, type ApiConfig } from './http-api-config.js'
