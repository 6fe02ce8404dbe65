/**
 * The gRPC edge: `envoy.service.auth.v3.Authorization/Check` and `grpc.health.v1.Health`.
 * A Check always gets a CheckResponse: malformed bytes, missing fields, handler faults and
 * deadlines all become denials, never gRPC errors (which `failure_mode_allow` would turn into
 * allows, security.md I2).
 * @module
 */
import * as grpc from '@grpc/grpc-js'
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
import { decide, deny, type Decision } from '../pipeline/run.js'
import { toRequestView } from '../request/view.js'
import type { RuleSet } from '../rules/compile.js'
import { internalDenial, MALFORMED, toCheckResponse } from './check.js'

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
 */
const CheckService = {
  check: {
    ...AuthorizationService.check,
    requestDeserialize: (buf: Buffer): CheckRequest => {
      try {
        return CheckRequest.decode(buf)
      } catch {
        return MALFORMED
      }
    },
  },
} as const

export function createCheckHandler(
  holder: RuleSetHolder,
  log: Logger,
  opts: Pick<GrpcOptions, 'maxCheckDurationMs' | 'observer' | 'decisionSample'>,
): grpc.handleUnaryCall<CheckRequest, CheckResponse> {
  const obs = opts.observer
  const sample = opts.decisionSample ?? LOG_EVERY_DECISION
  return function check(call, callback) {
    const started = performance.now()
    const rs = holder.current
    let answered = false
    /** `e`: the error of a denial built outside the pipeline (when `d` is undefined). */
    const answer = (response: CheckResponse, d: Decision | undefined, e?: PipelineError): void => {
      if (answered) return
      answered = true
      callback(null, response)
      const ms = performance.now() - started
      const outcome = d ?? e
      if (obs !== undefined && outcome !== undefined) obs.observeCheck(outcome, ms / 1000)
      logDecision(log, sample, d, response, ms)
    }
    try {
      if (rs === undefined) {
        const e = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'not_ready', 'No access rules are loaded')
        return answer(internalDenial(e), undefined, e)
      }
      if (call.request === MALFORMED) {
        const e = new PipelineError('ERR_BAD_REQUEST', 'malformed_check_request', 'The CheckRequest could not be decoded')
        return answer(internalDenial(e), undefined, e)
      }
      const view = toRequestView(call.request)
      const controller = new AbortController()
      const timer = setTimeout(() => {
        controller.abort()
        const e = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'deadline_exceeded', 'The check did not finish in time')
        const d = deny(rs, undefined, view, e, obs)
        answer(toCheckResponse(d), d)
      }, budgetMs(call.getDeadline(), opts.maxCheckDurationMs))
      const onCancel = (): void => controller.abort()
      call.once('cancelled', onCancel)
      decide(rs, view, controller.signal, obs).then(
        (d) => {
          clearTimeout(timer)
          call.off('cancelled', onCancel)
          answer(toCheckResponse(d), d)
        },
        (err: unknown) => {
          clearTimeout(timer)
          answer(internalDenial(err), undefined, asPipelineError(err))
        },
      )
    } catch (err) {
      // toRequestView throws PipelineError(ERR_BAD_REQUEST); anything else is a bug, still a denial.
      answer(internalDenial(err), undefined, asPipelineError(err))
    }
  }
}

function budgetMs(deadline: grpc.Deadline, max: number): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  if (!Number.isFinite(at)) return max
  return Math.max(1, Math.min(max, at - Date.now() - DEADLINE_MARGIN_MS))
}

function logDecision(log: Logger, sample: DecisionSample, d: Decision | undefined, r: CheckResponse, ms: number): void {
  if (!log.isLevelEnabled('info')) return
  const denied = r.deniedResponse
  if (!sampled(sample, denied === undefined ? 'allow' : 'deny')) return
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
