/**
 * Graceful shutdown. On the first SIGTERM or SIGINT:
 * 1. readiness goes false for good (`shutdown` condition), so gRPC health says NOT_SERVING at once
 *    and HTTP `/health/ready` answers 503: Envoy's active health checks and Kubernetes stop routing;
 * 2. for `serve.shutdown.drain` every server keeps answering normally, so the requests that were
 *    already routed here (and those sent before the load balancers noticed) are answered;
 * 3. the servers stop accepting (grpc-js `tryShutdown`: no new calls, GOAWAY on open connections)
 *    and in-flight Checks get up to `serve.shutdown.grace` to finish;
 * 4. a Check still running when the grace period ends is answered with a denial (503,
 *    `ERR_UPSTREAM_UNAVAILABLE`, reason `shutting_down`) rather than cut off: a cut-off call is a
 *    gRPC error, which Envoy with `failure_mode_allow: true` turns into an allow (security.md I2);
 *    whatever is left after a short flush is forced closed;
 * 5. the closers run in order (watchers, memory guard, outbound pools, caches), each bounded;
 * 6. exit 0.
 * A second signal at any point exits at once with code 1.
 *
 * Everything is injectable (`process`, `exit`, timers via real time) so tests drive it by emitting
 * 'SIGTERM' on an EventEmitter.
 * @module
 */
import type * as grpc from '@grpc/grpc-js'
import { z } from 'zod'
import { DurationSchema } from '../config/duration.js'
import type { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth.js'
import type { Logger } from '../observability/logger.js'
import { PipelineError } from '../pipeline/errors.js'
import { internalDenial } from './check.js'
import { SHUTDOWN, type Readiness } from './readiness.js'

const TEN_MINUTES_MS = 600_000
const upTo10m = DurationSchema.pipe(z.number().max(TEN_MINUTES_MS, 'must be at most 10m'))

/** `serve.shutdown:` in the configuration file. */
export const ShutdownConfigSchema = z.strictObject({
  /** How long to keep answering normally after the first signal, with readiness already false. */
  drain: upTo10m.prefault('5s'),
  /** How long in-flight calls may take once the servers stop accepting. */
  grace: upTo10m.prefault('10s'),
})
export type ShutdownConfig = z.output<typeof ShutdownConfigSchema>

/** After the grace period, how long the denials of still-running Checks get to be written. */
export const FLUSH_MS = 250
/** Upper bound of each closer (pools, caches, watchers). */
export const CLOSER_TIMEOUT_MS = 2000

export const SHUTDOWN_REASON = 'shutting_down'

/** The denial a Check still running at the end of the grace period gets. */
export function shutdownDenial(): CheckResponse {
  return internalDenial(new PipelineError('ERR_UPSTREAM_UNAVAILABLE', SHUTDOWN_REASON, 'The service is shutting down'))
}

/**
 * The calls being answered right now, each with a way to answer it early (with a denial). The
 * gRPC Check handler (and the HTTP decisions API) register here through `wrapCheckHandler`.
 */
export class InFlight {
  readonly #calls = new Set<() => void>()
  #idle: (() => void)[] = []

  /** Registers a call; `deny` answers it early. Returns `leave`, to call once it is answered. */
  enter(deny: () => void): () => void {
    this.#calls.add(deny)
    return () => {
      if (!this.#calls.delete(deny)) return
      if (this.#calls.size === 0) {
        const waiters = this.#idle
        this.#idle = []
        for (const w of waiters) w()
      }
    }
  }

  get size(): number {
    return this.#calls.size
  }

  /** Answers every registered call with its denial; returns how many there were. */
  denyAll(): number {
    const all = [...this.#calls]
    for (const deny of all) deny()
    return all.length
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    if (this.#calls.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }
}

export interface CheckGuard {
  shedding(): boolean
  shed(): CheckResponse
}

/**
 * Wraps a unary Check handler with the operational concerns, outside the pipeline:
 * - memory guard: while `guard.shedding()`, the call is answered at once with `guard.shed()`;
 * - in-flight tracking: the call is registered in `inflight` until answered, and `denyAll()`
 *   answers it with `shutdownDenial()` (the inner handler's late answer is then dropped).
 */
export function wrapCheckHandler<Req>(
  handler: grpc.handleUnaryCall<Req, CheckResponse>,
  ops: { readonly inflight?: InFlight; readonly guard?: CheckGuard; readonly log?: Logger },
): grpc.handleUnaryCall<Req, CheckResponse> {
  const { inflight, guard, log } = ops
  return function check(call, callback) {
    if (guard?.shedding() === true) {
      callback(null, guard.shed())
      return
    }
    if (inflight === undefined) return handler(call, callback)
    let answered = false
    const leave = inflight.enter(() => {
      if (answered) return
      answered = true
      leave()
      callback(null, shutdownDenial())
      log?.warn({ decision: 'deny', reason: SHUTDOWN_REASON }, 'check still running at the end of the grace period: denied')
    })
    handler(call, (err, value, trailer, flags) => {
      if (answered) return
      answered = true
      leave()
      callback(err, value, trailer, flags)
    })
  }
}

/** Something that can stop (a gRPC or HTTP server): stop accepting, wait up to `graceMs`, force. */
export interface Stoppable {
  readonly name: string
  stop(graceMs: number): Promise<void>
}

/** What `process` offers here; tests pass an EventEmitter. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown
  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown
}

export interface LifecycleOptions {
  readonly drainMs: number
  readonly graceMs: number
  readonly readiness: Readiness
  /** Stopped together, after the drain period. */
  readonly servers: readonly Stoppable[]
  /** Checks to deny when the grace period ends (shared with `wrapCheckHandler`). */
  readonly inflight?: InFlight
  /** Run in order after the servers stopped (watchers, guard, pools, caches). */
  readonly closers?: readonly { readonly name: string; close(): void | Promise<void> }[]
  readonly log: Logger
  /** Default `process`. */
  readonly process?: SignalSource
  /** Default: flush the log, then `process.exit(code)`. */
  readonly exit?: (code: number) => void
  readonly signals?: readonly NodeJS.Signals[]
}

export type LifecyclePhase = 'running' | 'draining' | 'stopping' | 'closing' | 'stopped'

export interface Lifecycle {
  readonly phase: LifecyclePhase
  /** What the signal listener does; callable directly. */
  handleSignal(signal: NodeJS.Signals): void
  /** Starts the shutdown sequence (as the first signal would); resolves when it is done. */
  shutdown(reason: string): Promise<void>
  /** Removes the signal listeners (tests). */
  dispose(): void
}

/** Installs the signal listeners and returns the lifecycle controlling shutdown. */
export function startLifecycle(o: LifecycleOptions): Lifecycle {
  const proc: SignalSource = o.process ?? process
  const signals = o.signals ?? (['SIGTERM', 'SIGINT'] as const)
  const exit =
    o.exit ??
    ((code: number) => {
      o.log.flush()
      process.exit(code)
    })
  let phase: LifecyclePhase = 'running'
  let done: Promise<void> | undefined

  const sequence = async (reason: string): Promise<void> => {
    const started = performance.now()
    phase = 'draining'
    o.readiness.set(SHUTDOWN, false, 'shutting down')
    o.log.info({ reason, drain_ms: o.drainMs, grace_ms: o.graceMs, in_flight: o.inflight?.size }, 'shutting down: not ready, draining')
    if (o.drainMs > 0) await delay(o.drainMs)

    phase = 'stopping'
    o.log.info({ in_flight: o.inflight?.size }, 'drain period over: no longer accepting')
    let denied = 0
    const deadline = setTimeout(() => {
      denied = o.inflight?.denyAll() ?? 0
      if (denied > 0) o.log.warn({ denied }, 'grace period over: still-running checks denied')
    }, o.graceMs)
    await Promise.all(
      o.servers.map((s) =>
        s.stop(o.graceMs + FLUSH_MS).catch((err: unknown) => o.log.error({ err, server: s.name }, 'server stop failed')),
      ),
    )
    clearTimeout(deadline)

    phase = 'closing'
    for (const c of o.closers ?? []) {
      try {
        await withTimeout(Promise.resolve(c.close()), CLOSER_TIMEOUT_MS)
      } catch (err) {
        o.log.error({ err, closer: c.name }, 'close failed')
      }
    }
    o.readiness.stop()
    phase = 'stopped'
    o.log.info({ duration_ms: Math.round(performance.now() - started), denied_at_deadline: denied }, 'stopped')
  }

  const lifecycle: Lifecycle = {
    get phase() {
      return phase
    },
    handleSignal(signal) {
      if (phase !== 'running') {
        o.log.warn({ signal, phase }, 'second signal: exiting now')
        dispose()
        exit(1)
        return
      }
      void lifecycle.shutdown(signal).then(
        () => {
          dispose()
          exit(0)
        },
        (err: unknown) => {
          o.log.error({ err }, 'shutdown failed')
          dispose()
          exit(1)
        },
      )
    },
    shutdown(reason) {
      done ??= sequence(reason)
      return done
    },
    dispose,
  }
  const listener = (signal: NodeJS.Signals): void => lifecycle.handleSignal(signal)
  for (const s of signals) proc.on(s, listener)
  function dispose(): void {
    for (const s of signals) proc.off(s, listener)
  }
  return lifecycle
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms) // not unref'd: the sequence must reach exit()
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}
