/**
 * The one outbound HTTP client: JWKS, introspection, session-check and token-endpoint calls all
 * go through an `HttpClient` built once from the `outbound:` config. It exists because Oathkeeper's
 * clients are what break first under load (2 idle connections per host, bodies never drained,
 * timeouts of ~28 h or none, 4× retries): here every call is bounded in connections, queueing,
 * time, bytes and retries, and a dead dependency costs a fast `OutboundError`, never a queue.
 *
 * Per origin (`scheme://host:port`, from config, bounded by `max_origins`) the client keeps:
 * - an undici `Pool`: at most `max_connections_per_origin` keep-alive connections, pipelining 1,
 *   connect timeout; redirects are never followed (undici's `Pool` has no redirect logic; a 3xx is
 *   returned like any other status);
 * - an admission bound: a call that would make more than `max_pending_per_origin` calls wait for
 *   a connection fails at once with `overloaded`;
 * - a circuit breaker (breaker.ts) and a retry budget (retry-budget.ts);
 * - counters, readable with `stats()`.
 *
 * One call, `request(r)`:
 * 1. Deadline: `r.timeoutMs` (default `timeout`, 150 ms) covers connect, headers, body, every
 *    attempt and every backoff. When it passes the request is aborted, which makes undici destroy
 *    the socket, and the call fails with `timeout`. The caller's `r.signal` aborts the same way
 *    (`aborted`).
 * 2. Body: read to its end up to `r.maxBytes` (default `max_response_bytes`, 1 MiB), on every
 *    status; past the cap it is destroyed and the call fails with `too_large` (body.ts).
 * 3. Status: the call resolves for every HTTP status, including 3xx, 4xx and 5xx; what a status
 *    means is the caller's decision. 5xx still counts as a failure for the breaker.
 * 4. Retries: only for retryable calls (`r.retryable`, default: GET yes, POST no), only after
 *    `connect` or `reset` errors or a 502/503/504 response, at most `retry.max_retries` times, with
 *    exponential backoff and jitter, only if the backoff fits in the remaining deadline, the
 *    breaker admits the attempt and the origin's retry budget has a retry left. Never after a
 *    timeout (the budget is spent), a 4xx, a 500, `too_large` or `protocol`. When a retry is not
 *    made, the last attempt's outcome is the call's outcome.
 *
 * Known undici 7 quirk (nodejs/undici#5845, fix pending in #5846): when an attempt is aborted
 * mid-response (timeout, caller abort, body over the cap) its socket is destroyed as it should be,
 * but the pool then opens one replacement connection that stays idle until the next call reuses
 * it. It is bounded by `max_connections_per_origin` like any other connection.
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Pool } from 'undici'
import { readCapped, BodyTooLarge } from './body.js'
import { CircuitBreaker, type AttemptOutcome, type BreakerState } from './breaker.js'
import type { OutboundConfig } from './config.js'
import { classify, detailOf, OUTBOUND_ERROR_KINDS, OutboundError, type OutboundErrorKind } from './errors.js'
import { RetryBudget } from './retry-budget.js'

export { OutboundError, type OutboundErrorKind } from './errors.js'
export { OutboundConfigSchema, type OutboundConfig, type OutboundConfigInput } from './config.js'
export type { BreakerState } from './breaker.js'

export interface OutboundRequest {
  /** http: or https:, without userinfo (credentials go in `headers`). */
  readonly url: URL
  readonly method: 'GET' | 'POST'
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string
  /** Overall deadline of this call in ms (all attempts and backoff); default `outbound.timeout`. */
  readonly timeoutMs?: number
  /** Response body cap in bytes; default `outbound.max_response_bytes`. */
  readonly maxBytes?: number
  /** May this call be sent more than once? Default: GET yes, POST no (introspection says yes). */
  readonly retryable?: boolean
  readonly signal?: AbortSignal
}

export interface OutboundResponse {
  readonly status: number
  /** Lower-case names; repeated headers joined with `", "`. */
  readonly headers: Readonly<Record<string, string>>
  /** The whole body (at most the call's `maxBytes`). */
  readonly body: Buffer
  /** The body parsed as JSON (whatever the content type); throws `OutboundError` `protocol`. */
  json(): unknown
}

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx'

/** Counters and gauges of one origin, as of the `stats()` call. */
export interface OriginStats {
  readonly origin: string
  /** Calls made (including those rejected by the breaker or the pending bound). */
  readonly requests: number
  /** Attempts sent to the network (first attempts + retries). */
  readonly attempts: number
  readonly retries: number
  /** Retries not made because the retry budget was spent. */
  readonly retriesDenied: number
  /** Calls that resolved, by status class of the final response. */
  readonly responses: Readonly<Record<StatusClass, number>>
  /** Calls that failed, by kind. */
  readonly errors: Readonly<Record<OutboundErrorKind, number>>
  /** Open connections (undici pool stats). */
  readonly connections: number
  /** Attempts waiting for a connection (undici pool stats). */
  readonly pending: number
  /** Attempts handed to the pool and not finished (running + pending). */
  readonly inFlight: number
  readonly breaker: BreakerState
  /** End-to-end call latency (all attempts), sum in ms and count. */
  readonly latencyMsSum: number
  readonly latencyCount: number
}

/** What one attempt produced. */
type Attempt = { readonly response: OutboundResponse } | { readonly error: OutboundError }

interface Target {
  readonly method: string
  readonly origin: string
  readonly path: string
}

/** Per-origin state. */
interface Origin {
  readonly origin: string
  readonly pool: Pool
  readonly breaker: CircuitBreaker
  readonly budget: RetryBudget
  inFlight: number
  requests: number
  attempts: number
  retries: number
  retriesDenied: number
  readonly responses: Record<StatusClass, number>
  readonly errors: Record<OutboundErrorKind, number>
  latencyMsSum: number
  latencyCount: number
}

const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504])
const RETRY_KINDS: ReadonlySet<OutboundErrorKind> = new Set<OutboundErrorKind>(['connect', 'reset'])
/** Kinds that say the origin is unhealthy; `too_large`, `aborted` say nothing about it. */
const FAILURE_KINDS: ReadonlySet<OutboundErrorKind> = new Set<OutboundErrorKind>(['timeout', 'connect', 'reset', 'protocol'])

/**
 * Build one per process from the `outbound:` config and share it; per-origin pools, breakers and
 * budgets are created on an origin's first call and live until `close()`.
 */
export class HttpClient {
  private readonly origins = new Map<string, Origin>()
  private closing: Promise<void> | undefined

  constructor(private readonly cfg: OutboundConfig) {}

  /**
   * Sends one call (with retries, see the module comment) and resolves with the response, whatever
   * its status, or rejects with an `OutboundError`; rejects with a `TypeError` for a URL that is
   * not http(s) or that carries userinfo (a programming error, not a dependency failure).
   */
  async request(r: OutboundRequest): Promise<OutboundResponse> {
    const target = targetOf(r)
    if (this.closing !== undefined) throw new OutboundError('aborted', target, 'client closed')
    const o = this.originFor(target)
    o.requests++
    const started = performance.now()
    try {
      const response = await this.call(o, r, target, started)
      o.responses[statusClass(response.status)]++
      return response
    } catch (err) {
      const e = err instanceof OutboundError ? err : new OutboundError('protocol', target, detailOf('protocol'))
      o.errors[e.kind]++
      throw e
    } finally {
      o.latencyMsSum += performance.now() - started
      o.latencyCount++
    }
  }

  /** One entry per origin used so far. */
  stats(): OriginStats[] {
    return [...this.origins.values()].map((o) => {
      const pool = o.pool.stats
      return {
        origin: o.origin,
        requests: o.requests,
        attempts: o.attempts,
        retries: o.retries,
        retriesDenied: o.retriesDenied,
        responses: { ...o.responses },
        errors: { ...o.errors },
        connections: pool.connected,
        pending: pool.pending,
        inFlight: o.inFlight,
        breaker: o.breaker.state,
        latencyMsSum: o.latencyMsSum,
        latencyCount: o.latencyCount,
      }
    })
  }

  /**
   * Stops accepting calls and closes every pool gracefully: calls in flight finish (each within
   * its deadline), then the connections close. Later calls fail with `aborted`.
   */
  close(): Promise<void> {
    this.closing ??= Promise.all([...this.origins.values()].map((o) => o.pool.close())).then(() => undefined)
    return this.closing
  }

  /** Deadline, caller signal and the attempt loop of one call. */
  private async call(o: Origin, r: OutboundRequest, target: Target, started: number): Promise<OutboundResponse> {
    const timeoutMs = r.timeoutMs ?? this.cfg.timeout
    if (r.signal?.aborted === true) throw new OutboundError('aborted', target, detailOf('aborted'))
    const controller = new AbortController()
    let abortedBy: 'timeout' | 'aborted' | undefined
    const timer = setTimeout(() => {
      abortedBy ??= 'timeout'
      controller.abort()
    }, timeoutMs)
    const onAbort = (): void => {
      abortedBy ??= 'aborted'
      controller.abort()
    }
    r.signal?.addEventListener('abort', onAbort, { once: true })
    const fail = (err: unknown): OutboundError => {
      if (abortedBy === 'timeout') return new OutboundError('timeout', target, `timed out after ${timeoutMs} ms`)
      if (abortedBy === 'aborted') return new OutboundError('aborted', target, detailOf('aborted'))
      if (err instanceof BodyTooLarge) return new OutboundError('too_large', target, `response body exceeds ${err.limit} bytes`)
      const c = classify(err)
      return new OutboundError(c.kind, target, c.detail, c.code)
    }
    try {
      const result = await this.attempts(o, r, target, controller.signal, started + timeoutMs, timeoutMs, fail)
      if ('error' in result) throw result.error
      return result.response
    } finally {
      clearTimeout(timer)
      r.signal?.removeEventListener('abort', onAbort)
    }
  }

  private async attempts(
    o: Origin,
    r: OutboundRequest,
    target: Target,
    signal: AbortSignal,
    deadline: number,
    timeoutMs: number,
    fail: (err: unknown) => OutboundError,
  ): Promise<Attempt> {
    const { retry } = this.cfg
    const retryable = r.retryable ?? r.method === 'GET'
    const maxBytes = r.maxBytes ?? this.cfg.max_response_bytes
    let last: Attempt | undefined
    for (let attempt = 0; ; attempt++) {
      const ticket = o.breaker.admit()
      if (ticket === undefined) return last ?? { error: new OutboundError('circuit_open', target, detailOf('circuit_open')) }
      if (o.inFlight >= this.cfg.max_connections_per_origin + this.cfg.max_pending_per_origin) {
        o.breaker.record(ticket, 'neutral')
        return last ?? { error: new OutboundError('overloaded', target, detailOf('overloaded')) }
      }
      if (attempt === 0) o.budget.recordCall()
      else o.retries++
      o.attempts++
      last = await this.send(o, r, signal, maxBytes, timeoutMs, target, fail)
      o.breaker.record(ticket, outcomeOf(last))

      if (!retryable || attempt >= retry.max_retries || !shouldRetry(last)) return last
      const delay = backoff(attempt, retry.backoff, retry.max_backoff)
      if (performance.now() + delay >= deadline) return last
      if (!o.budget.tryRetry()) {
        o.retriesDenied++
        return last
      }
      try {
        await sleep(delay, signal)
      } catch (err) {
        return { error: fail(err) }
      }
    }
  }

  /** One attempt: dispatch, then read the body under the cap. */
  private async send(
    o: Origin,
    r: OutboundRequest,
    signal: AbortSignal,
    maxBytes: number,
    timeoutMs: number,
    target: Target,
    fail: (err: unknown) => OutboundError,
  ): Promise<Attempt> {
    o.inFlight++
    try {
      const res = await o.pool.request({
        method: r.method,
        path: r.url.pathname + r.url.search,
        headers: r.headers ?? {},
        body: r.body ?? null,
        signal,
        // Backstops; the call's own deadline normally fires first.
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      })
      const headers = flatten(res.headers)
      const body = await readCapped(res.body, maxBytes, headers['content-length'])
      return { response: new Response(res.statusCode, headers, body, target) }
    } catch (err) {
      return { error: fail(err) }
    } finally {
      o.inFlight--
    }
  }

  private originFor(target: Target): Origin {
    const existing = this.origins.get(target.origin)
    if (existing !== undefined) return existing
    const cfg = this.cfg
    if (this.origins.size >= cfg.max_origins) {
      throw new OutboundError('overloaded', target, `more than ${cfg.max_origins} origins (outbound.max_origins)`)
    }
    const errors = Object.fromEntries(OUTBOUND_ERROR_KINDS.map((k) => [k, 0])) as Record<OutboundErrorKind, number>
    const o: Origin = {
      origin: target.origin,
      pool: new Pool(target.origin, {
        connections: cfg.max_connections_per_origin,
        pipelining: 1,
        keepAliveTimeout: cfg.keep_alive,
        keepAliveMaxTimeout: cfg.keep_alive,
        connect: { timeout: cfg.connect_timeout },
        headersTimeout: cfg.timeout,
        bodyTimeout: cfg.timeout,
      }),
      breaker: new CircuitBreaker(cfg.breaker.failure_threshold, cfg.breaker.open_for),
      budget: new RetryBudget(cfg.retry.budget_ratio, cfg.retry.budget_min_per_second),
      inFlight: 0,
      requests: 0,
      attempts: 0,
      retries: 0,
      retriesDenied: 0,
      responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
      errors,
      latencyMsSum: 0,
      latencyCount: 0,
    }
    this.origins.set(target.origin, o)
    return o
  }
}

class Response implements OutboundResponse {
  constructor(
    readonly status: number,
    readonly headers: Readonly<Record<string, string>>,
    readonly body: Buffer,
    private readonly target: Target,
  ) {}

  json(): unknown {
    try {
      return JSON.parse(this.body.toString('utf8'))
    } catch {
      throw new OutboundError('protocol', this.target, `response body is not JSON (status ${this.status})`)
    }
  }
}

function targetOf(r: OutboundRequest): Target {
  const { url } = r
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`outbound URL must be http(s), got ${url.protocol}`)
  if (url.username !== '' || url.password !== '') throw new TypeError('outbound URL must not carry userinfo; send credentials in headers')
  return { method: r.method, origin: url.origin, path: url.pathname }
}

function outcomeOf(a: Attempt): AttemptOutcome {
  if ('response' in a) return a.response.status >= 500 ? 'failure' : 'success'
  return FAILURE_KINDS.has(a.error.kind) ? 'failure' : 'neutral'
}

function shouldRetry(a: Attempt): boolean {
  return 'response' in a ? RETRY_STATUSES.has(a.response.status) : RETRY_KINDS.has(a.error.kind)
}

/** Exponential backoff with "equal jitter": uniform in [d/2, d], d = min(max, base × 2^attempt). */
function backoff(attempt: number, baseMs: number, maxMs: number): number {
  const d = Math.min(maxMs, baseMs * 2 ** attempt)
  return d / 2 + Math.random() * (d / 2)
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function statusClass(status: number): StatusClass {
  if (status < 200) return '1xx'
  if (status < 300) return '2xx'
  if (status < 400) return '3xx'
  if (status < 500) return '4xx'
  return '5xx'
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}
