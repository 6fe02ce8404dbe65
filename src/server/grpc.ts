/**
 * The gRPC edge: `envoy.service.auth.v3.Authorization/Check` and `grpc.health.v1.Health`.
 * A Check always gets a CheckResponse: malformed bytes, missing fields, handler faults and
 * deadlines all become denials, never gRPC errors (which `failure_mode_allow` would turn into
 * allows, security.md I2).
 * @module
 */
import * as grpc from '@grpc/grpc-js'
import { setMaxListeners } from 'node:events'
import { BinaryReader } from '@bufbuild/protobuf/wire'
import { HealthImplementation } from 'grpc-health-check'
import {
  AuthorizationService,
  CheckRequest,
  type CheckResponse,
} from '../gen/envoy/service/auth/v3/external_auth.js'
import type { Logger } from '../observability/logger.js'
import { LOG_EVERY_DECISION, sampled, type DecisionSample } from '../observability/decision-log.js'
import type { DecisionObserver, PipelineObserver } from '../observability/metrics.js'
import { asPipelineError, PipelineError } from '../pipeline/errors.js'
import { decideNow, deny, isThenable, type Decision } from '../pipeline/run.js'
import type { RequestView } from '../pipeline/types.js'
import { toRequestView } from '../request/view.js'
import type { RuleSet } from '../rules/compile.js'
import { encodeCheckResponse, internalDenial, MALFORMED, toCheckResponse } from './check.js'

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization'

/** Where the current rule set lives; reload swaps `current` (one reference, no locks). */
export interface RuleSetHolder {
  current: RuleSet | undefined
}

export interface GrpcOptions {
  readonly host: string
  readonly port: number
  readonly maxReceiveMessageLength: number
  readonly maxCheckDurationMs: number
  /**
   * Wraps the Check handler: src/server/lifecycle.ts `wrapCheckHandler` (memory-guard shedding, and
   * in-flight tracking so the shutdown deadline can deny what is still running).
   */
  readonly wrapCheck?: (h: grpc.handleUnaryCall<CheckRequest, CheckResponse>) => grpc.handleUnaryCall<CheckRequest, CheckResponse>
  /** Metrics hooks (src/observability/metrics.ts `Metrics`); omitted where nothing is counted. */
  readonly observer?: DecisionObserver & PipelineObserver
  /** `log.decision_sample`: fraction of allow/deny decisions logged (default: all). */
  readonly decisionSample?: DecisionSample
}

/** Answer this long before Envoy's deadline so Envoy gets our denial rather than a timeout. */
const DEADLINE_MARGIN_MS = 5

/**
 * The service definition, with a decoder that never throws: bytes that are not a CheckRequest
 * decode to MALFORMED and are answered with a denial (grpc-js would answer INTERNAL otherwise).
 * Answers are encoded by `encodeCheckResponse` (src/server/check.ts): the generated encoder's
 * output, byte for byte, without its intermediate objects.
 */
const CheckService = {
  check: {
    ...AuthorizationService.check,
    requestDeserialize: (buf: Buffer): CheckRequest => {
      try {
        return decodeCheckRequest(buf)
      } catch {
        return MALFORMED
      }
    },
    responseSerialize: encodeCheckResponse,
  },
} as const

/**
 * The generated decoder, reading strings straight out of the received Buffer (`utf8Slice`, one
 * native call) instead of `TextDecoder.decode(subarray)` or an array of char codes: a CheckRequest
 * is mostly strings (~40 for a typical request's headers), and this saves ~2 µs per Check. Same
 * structure, bounds checks and errors (it is the generated code on a `BinaryReader` subclass);
 * invalid UTF-8 becomes U+FFFD and a leading BOM is kept, as with the stock reader
 * (test/unit/server/decode-check-request.test.ts).
 */
export function decodeCheckRequest(buf: Buffer): CheckRequest {
  return CheckRequest.decode(new BufferReader(buf))
}

const utf8Slice = (Buffer.prototype as unknown as { utf8Slice?: (this: Buffer, start: number, end: number) => string }).utf8Slice

class BufferReader extends BinaryReader {
  readonly #bytes: Buffer

  constructor(buf: Buffer) {
    super(buf)
    this.#bytes = buf
  }

  override string(strict?: boolean): string {
    if (strict === true || utf8Slice === undefined) return super.string(strict)
    const len = this.uint32()
    const start = this.pos
    this.pos += len
    if (this.pos > this.len) throw new RangeError('premature EOF')
    return utf8Slice.call(this.#bytes, start, this.pos)
  }
}

/** What every Check of one handler shares. */
interface HandlerContext {
  readonly log: Logger
  readonly obs: (DecisionObserver & PipelineObserver) | undefined
  readonly sample: DecisionSample
  readonly deadlines: Deadlines
}

/**
 * The Check handler grpc-js calls. Per Check, on the hot path: one `InFlightCheck`, the request
 * view, the pipeline run, the answer. Deadlines are shared per millisecond (`Deadlines`), so a
 * Check allocates no AbortController and arms no timer of its own.
 */
export function createCheckHandler(
  holder: RuleSetHolder,
  log: Logger,
  opts: Pick<GrpcOptions, 'maxCheckDurationMs' | 'observer' | 'decisionSample'>,
): grpc.handleUnaryCall<CheckRequest, CheckResponse> {
  const ctx: HandlerContext = {
    log,
    obs: opts.observer,
    sample: opts.decisionSample ?? LOG_EVERY_DECISION,
    deadlines: new Deadlines(),
  }
  const maxMs = opts.maxCheckDurationMs
  return function check(call, callback) {
    const started = performance.now()
    const rs = holder.current
    if (rs === undefined) {
      const e = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'not_ready', 'No access rules are loaded')
      return answer(ctx, callback, started, internalDenial(e), undefined, e)
    }
    if (call.request === MALFORMED) {
      const e = new PipelineError('ERR_BAD_REQUEST', 'malformed_check_request', 'The CheckRequest could not be decoded')
      return answer(ctx, callback, started, internalDenial(e), undefined, e)
    }
    let view: RequestView
    try {
      view = toRequestView(call.request)
    } catch (err) {
      // toRequestView throws PipelineError(ERR_BAD_REQUEST); anything else is a bug, still a denial.
      return answer(ctx, callback, started, internalDenial(err), undefined, asPipelineError(err))
    }
    const p = new InFlightCheck(ctx, callback, started, rs, view)
    try {
      const group = ctx.deadlines.add(p, started + budgetMs(call.getDeadline(), maxMs))
      p.group = group
      const d = decideNow(rs, view, group.controller.signal, ctx.obs)
      if (isThenable(d)) {
        d.then(
          (r) => p.decided(r),
          (err: unknown) => p.failed(err),
        )
      } else p.decided(d)
    } catch (err) {
      p.failed(err)
    }
  }
}

/** One Check between its request view and its answer. */
class InFlightCheck {
  answered = false
  /** Its deadline group, until it is answered. */
  group: DeadlineGroup | undefined = undefined

  constructor(
    readonly ctx: HandlerContext,
    readonly callback: grpc.sendUnaryData<CheckResponse>,
    readonly started: number,
    readonly rs: RuleSet,
    readonly view: RequestView,
  ) {}

  decided(d: Decision): void {
    if (this.answered) return
    this.#leave()
    this.#answer(toCheckResponse(d), d, undefined)
  }

  failed(err: unknown): void {
    if (this.answered) return
    this.#leave()
    this.#answer(internalDenial(err), undefined, asPipelineError(err))
  }

  /** The deadline passed first (its group's signal is aborted): deny now; a late result is dropped. */
  expire(): void {
    if (this.answered) return
    this.group = undefined
    const e = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'deadline_exceeded', 'The check did not finish in time')
    const d = deny(this.rs, undefined, this.view, e, this.ctx.obs)
    this.#answer(toCheckResponse(d), d, undefined)
  }

  #leave(): void {
    this.group?.pending.delete(this)
    this.group = undefined
  }

  #answer(response: CheckResponse, d: Decision | undefined, e: PipelineError | undefined): void {
    this.answered = true
    answer(this.ctx, this.callback, this.started, response, d, e)
  }
}

/** `e`: the error of a denial built outside the pipeline (when `d` is undefined). */
function answer(
  ctx: HandlerContext,
  callback: grpc.sendUnaryData<CheckResponse>,
  started: number,
  response: CheckResponse,
  d: Decision | undefined,
  e: PipelineError | undefined,
): void {
  callback(null, response)
  const ms = performance.now() - started
  const outcome = d ?? e
  if (ctx.obs !== undefined && outcome !== undefined) ctx.obs.observeCheck(outcome, ms / 1000)
  logDecision(ctx.log, ctx.sample, d, response, ms)
}

/**
 * In-flight Checks grouped by the millisecond their deadline falls in (rounded down, so a group
 * fires up to 1 ms early, never late): one AbortController and one unref'd timer per group instead
 * of per Check (an AbortController alone costs ~2.6 µs and a timer ~0.3 µs on the bench machine;
 * at 10 000 Checks/s with the same budget that is ≤ 1 000 groups a second instead of 10 000 of
 * each). A group lives until its timer fires, whether or not Checks still wait in it; then its
 * signal is aborted (only if some still wait) and each of them is denied with
 * `deadline_exceeded`. Every Check of a group shares the signal: they all reached the same
 * deadline. A client's cancellation no longer aborts its Check early: grpc-js drops the answer,
 * and the work stops at the deadline at the latest (Envoy's own deadline, minus the margin).
 */
class Deadlines {
  readonly #groups = new Map<number, DeadlineGroup>()

  add(p: InFlightCheck, atMs: number): DeadlineGroup {
    const key = Math.floor(atMs)
    let g = this.#groups.get(key)
    if (g === undefined) {
      g = new DeadlineGroup(key, this.#groups)
      this.#groups.set(key, g)
    }
    g.pending.add(p)
    return g
  }
}

class DeadlineGroup {
  readonly controller = new AbortController()
  readonly pending = new Set<InFlightCheck>()

  constructor(key: number, groups: Map<number, DeadlineGroup>) {
    // Any number of waiting Checks may listen on one signal (cache waits, outbound calls).
    setMaxListeners(0, this.controller.signal)
    setTimeout(() => {
      groups.delete(key)
      if (this.pending.size === 0) return
      this.controller.abort()
      const expired = [...this.pending]
      this.pending.clear()
      for (const p of expired) p.expire()
    }, Math.max(1, key - performance.now())).unref()
  }
}

function budgetMs(deadline: grpc.Deadline, max: number): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  if (!Number.isFinite(at)) return max
  return Math.max(1, Math.min(max, at - Date.now() - DEADLINE_MARGIN_MS))
}

function logDecision(log: Logger, sample: DecisionSample, d: Decision | undefined, r: CheckResponse, ms: number): void {
  const denied = r.deniedResponse
  if (!sampled(sample, denied === undefined ? 'allow' : 'deny')) return
  if (!log.isLevelEnabled('info')) return
  log.info(
    {
      rule_id: d?.ruleId ?? null,
      decision: denied === undefined ? 'allow' : 'deny',
      reason: d?.kind === 'deny' ? d.error.reason : denied !== undefined ? r.status?.message : undefined,
      http_status: denied?.status?.code,
      grpc_code: r.status?.code,
      duration_ms: Math.round(ms * 1000) / 1000,
    },
    'decision',
  )
}

export interface GrpcServer {
  readonly port: number
  readonly health: HealthImplementation
  setServing(serving: boolean): void
  /** Stops accepting, waits for in-flight calls up to `graceMs`, then forces. */
  stop(graceMs: number): Promise<void>
}

export async function startGrpcServer(holder: RuleSetHolder, log: Logger, opts: GrpcOptions): Promise<GrpcServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxReceiveMessageLength,
    'grpc.keepalive_permit_without_calls': 1,
  })
  const check = createCheckHandler(holder, log, opts)
  server.addService(CheckService, { check: opts.wrapCheck === undefined ? check : opts.wrapCheck(check) })
  const health = new HealthImplementation({ '': 'NOT_SERVING', [AUTHORIZATION_SERVICE]: 'NOT_SERVING' })
  health.addToServer(server)
  const address = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)))
  })
  log.info({ host: opts.host, port }, 'grpc server listening')
  return {
    port,
    health,
    setServing(serving) {
      const s = serving ? 'SERVING' : 'NOT_SERVING'
      health.setStatus('', s)
      health.setStatus(AUTHORIZATION_SERVICE, s)
    },
    stop(graceMs) {
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown()
          resolve()
        }, graceMs)
        force.unref()
        server.tryShutdown(() => {
          clearTimeout(force)
          resolve()
        })
      })
    },
  }
}
