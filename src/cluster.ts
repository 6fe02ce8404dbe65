/**
 * Multi-core serving: `serve.workers: N` (N > 1) runs a node:cluster primary that forks N workers,
 * each a complete Portcullis (`startPortcullis`) on the same gRPC, API and metrics configuration.
 *
 * - **Ports are shared.** Workers `listen()` through the cluster module: the primary owns the
 *   listening sockets, accepts connections and hands each to a worker in turn (round-robin, the
 *   default everywhere but Windows). This is why grpc-js works unchanged: it is a plain
 *   `http2.Server` in each worker. One HTTP/2 connection (Envoy keeps one or a few per cluster
 *   member) stays on the worker that got it, so load spreads per connection, not per call.
 *   With port 0 (tests) every worker gets the same port: the primary binds once per address.
 * - **Cache budget divided.** Each worker gets `PORTCULLIS_CACHE_MAX_BYTES = floor(cache.max_bytes
 *   / N)`, so all workers' caches together stay within `cache.max_bytes`. A rule set whose caches
 *   do not fit in the per-worker share fails at start, naming the caches (as a single process
 *   would with the whole budget). The variable overrides the file on every reload too.
 * - **Metrics aggregated.** Workers do not serve `serve.prometheus`; the primary does, and a
 *   scrape asks every worker for its registry over IPC and renders all of them together, each
 *   series with a `worker="<slot>"` label (1..N, stable across restarts). Summing blindly would be
 *   wrong for gauges such as `portcullis_rules_loaded` or the event-loop lag quantiles; per-worker
 *   series are exact, and `sum without (worker) (...)` gives the process-wide figure.
 * - **Signals.** SIGTERM/SIGINT to the primary: no more restarts, every worker is told to shut
 *   down (IPC message, not a signal: a signal sent to the whole process group, as systemd and a
 *   terminal's Ctrl-C do, reaches the workers too, and a second signal means "exit now"), each runs
 *   its own drain/grace sequence (src/server/lifecycle.ts), the primary exits 0 when all exited 0.
 *   A second signal to the primary kills the workers and exits 1.
 * - **Crashes.** A worker that exits while the primary is running is restarted after a backoff
 *   (`RESTART_BASE_MS` doubling per consecutive failure up to `RESTART_MAX_MS`; the count resets
 *   once a worker has run `RESTART_RESET_MS`). A worker that fails during the initial start (bad
 *   rules, cache budget, port in use) is fatal: the primary stops the others and exits 1, so a
 *   broken deployment fails like a single process would instead of restarting forever. The first
 *   worker starts alone, so such an error is reported once.
 *
 * Per-worker, not shared: readiness (gRPC health and `/health/ready` answer for the worker that
 * holds the connection), caches, JWKS, rule watching and reloading, the memory guard (its
 * thresholds are per process) and the summary log line (each carries `worker`).
 * @module
 */
import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import { availableParallelism } from 'node:os'
import { AggregatorRegistry, Registry } from 'prom-client'
import { z } from 'zod'
import type { Logger } from './observability/logger.js'
import type { PrometheusConfig } from './observability/metrics-config.js'
import { startMetricsServer, type MetricsServer } from './observability/metrics-server.js'
import { CLOSER_TIMEOUT_MS, FLUSH_MS, type SignalSource } from './server/lifecycle.js'

/** Upper bound of `serve.workers`: twice the CPUs this process may use. */
export const MAX_WORKERS = availableParallelism() * 2

/**
 * `serve.workers`: how many worker processes serve (1 = no cluster, the single process). Goes
 * into the `serve` object of src/config/schema.ts as `workers: WorkersSchema`.
 */
export const WorkersSchema = z
  .int()
  .min(1)
  .max(MAX_WORKERS, `must be at most ${MAX_WORKERS} (2 × os.availableParallelism())`)
  .default(1)

/** Set by the primary in each worker's environment: the worker's slot, 1..N. */
export const WORKER_SLOT_ENV = 'PORTCULLIS_WORKER_SLOT'
/** The per-worker cache budget (src/config/load.ts applies it as `cache.max_bytes`). */
export const CACHE_MAX_BYTES_ENV = 'PORTCULLIS_CACHE_MAX_BYTES'
const PROMETHEUS_ENABLED_ENV = 'PORTCULLIS_SERVE_PROMETHEUS_ENABLED'

/** The smallest `cache.max_bytes` the schema accepts; each worker's share must not be below it. */
const MIN_CACHE_BYTES = 1024 * 1024

export const RESTART_BASE_MS = 100
export const RESTART_MAX_MS = 30_000
/** A worker that ran this long before exiting restarts after the base delay again. */
export const RESTART_RESET_MS = 30_000
/** How long a scrape waits for the workers' registries. */
export const METRICS_TIMEOUT_MS = 2_000
/** How long a worker may take to start before the primary gives up on it. */
export const START_TIMEOUT_MS = 60_000

/** The IPC messages between primary and workers. */
type ToWorker = { readonly type: 'portcullis:shutdown' } | { readonly type: 'portcullis:metrics'; readonly id: number }
type ToPrimary =
  | { readonly type: 'portcullis:ready'; readonly slot: number }
  | { readonly type: 'portcullis:metrics'; readonly id: number; readonly metrics?: unknown[]; readonly error?: string }

function isMessage(m: unknown): m is { type: string; id?: unknown } {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string'
}

/**
 * `serve.workers` of a loaded config (1 when absent). Reads the key without relying on the
 * Config type, so this works before and after the key is added to the schema.
 */
export function configuredWorkers(config: unknown): number {
  const serve = (config as { serve?: unknown } | undefined)?.serve
  const value = typeof serve === 'object' && serve !== null ? (serve as { workers?: unknown }).workers : undefined
  const parsed = WorkersSchema.safeParse(value)
  if (!parsed.success) throw new ClusterConfigError(`invalid configuration:\n  - serve.workers: ${parsed.error.issues.map((i) => i.message).join('; ')}`)
  return parsed.data
}

/** The slot (1..N) when this process is a worker forked by `runPrimary`, else undefined. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined
  const slot = Number(process.env[WORKER_SLOT_ENV])
  return Number.isInteger(slot) && slot > 0 ? slot : undefined
}

/** Log bindings of a worker's logger: `{ worker: slot, pid }`. */
export function workerBindings(slot: number): { worker: number; pid: number } {
  return { worker: slot, pid: process.pid }
}

// ---------------------------------------------------------------------------------------------
// Worker side

/**
 * The signal source a worker passes to `startLifecycle` (as `process`). The shutdown sequence
 * starts on the first of: SIGTERM, SIGINT, or the primary's shutdown message. Only signals
 * received by this process count towards the "second signal exits now" rule, so the primary's
 * message plus a process-group signal (systemd's default, Ctrl-C in a terminal) is still one
 * graceful shutdown.
 */
export function workerSignals(): SignalSource {
  return new WorkerSignals()
}

class WorkerSignals implements SignalSource {
  readonly #emitter = new EventEmitter()
  #started = false
  #received = 0
  /** A shutdown asked for before the lifecycle listened (during start-up): delivered on `on`. */
  #pending: NodeJS.Signals | undefined

  constructor() {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => {
        this.#received++
        if (!this.#started) this.#start(signal)
        else if (this.#received >= 2) this.#emitter.emit(signal, signal)
      })
    }
    process.on('message', (m: unknown) => {
      if (isMessage(m) && m.type === 'portcullis:shutdown') this.#start('SIGTERM')
    })
  }

  #start(signal: NodeJS.Signals): void {
    if (this.#started) return
    this.#started = true
    if (this.#emitter.listenerCount(signal) > 0) this.#emitter.emit(signal, signal)
    else this.#pending = signal
  }

  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): this {
    this.#emitter.on(event, listener)
    const pending = this.#pending
    if (pending === event) {
      this.#pending = undefined
      setImmediate(() => this.#emitter.emit(pending, pending))
    }
    return this
  }

  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): this {
    this.#emitter.off(event, listener)
    return this
  }
}

/**
 * Tells the primary this worker serves, and answers its metrics requests from `registry`.
 * Call once `startPortcullis` has resolved and the lifecycle is installed.
 */
export function announceWorker(slot: number, registry: Registry): void {
  process.on('message', (m: unknown) => {
    if (!isMessage(m) || m.type !== 'portcullis:metrics' || typeof m.id !== 'number') return
    const id = m.id
    registry.getMetricsAsJSON().then(
      (metrics) => send({ type: 'portcullis:metrics', id, metrics }),
      (err: unknown) => send({ type: 'portcullis:metrics', id, error: (err as Error).message }),
    )
  })
  send({ type: 'portcullis:ready', slot })
}

function send(m: ToPrimary): void {
  if (process.connected) process.send?.(m)
}

// ---------------------------------------------------------------------------------------------
// Primary side

export interface PrimaryOptions {
  readonly workers: number
  /** `cache.max_bytes` of the loaded config: divided across the workers. */
  readonly cacheMaxBytes: number
  /** `serve.prometheus`: served by the primary, with every worker's metrics. */
  readonly prometheus: Pick<PrometheusConfig, 'enabled' | 'host' | 'port' | 'metrics_path'>
  /** `serve.shutdown` (ms): bounds how long the primary waits for the workers to stop. */
  readonly shutdown: { readonly drain: number; readonly grace: number }
  readonly log: Logger
  /** Default `process`. */
  readonly process?: SignalSource
}

interface Slot {
  readonly slot: number
  worker: Worker | undefined
  ready: boolean
  startedAt: number
  failures: number
  restartTimer: NodeJS.Timeout | undefined
}

/** Thrown before any worker starts when the options cannot work. */
export class ClusterConfigError extends Error {
  override readonly name = 'ClusterConfigError'
}

/** The per-worker cache budget; throws ClusterConfigError when it would be below 1 MiB. */
export function perWorkerCacheBytes(maxBytes: number, workers: number): number {
  const share = Math.floor(maxBytes / workers)
  if (share < MIN_CACHE_BYTES) {
    throw new ClusterConfigError(
      `cache.max_bytes ${maxBytes} divided across serve.workers ${workers} is ${share} bytes per worker, ` +
        `below the 1 MiB minimum: raise cache.max_bytes or lower serve.workers`,
    )
  }
  return share
}

/**
 * Runs the cluster primary: forks the workers, serves the aggregated metrics, restarts crashed
 * workers and forwards shutdown. Resolves with the exit code once every worker has exited (after
 * a signal, or a failed start).
 */
export async function runPrimary(o: PrimaryOptions): Promise<number> {
  const { log } = o
  const proc = o.process ?? process
  const cacheBytes = perWorkerCacheBytes(o.cacheMaxBytes, o.workers)
  const env: Record<string, string> = { [CACHE_MAX_BYTES_ENV]: String(cacheBytes), [PROMETHEUS_ENABLED_ENV]: 'false' }
  const slots: Slot[] = Array.from({ length: o.workers }, (_, i) => ({
    slot: i + 1,
    worker: undefined,
    ready: false,
    startedAt: 0,
    failures: 0,
    restartTimer: undefined,
  }))
  let phase: 'starting' | 'running' | 'stopping' = 'starting'
  let failedStart = false
  let exitCodeOk = true
  const allExited = new EventEmitter()
  const readyWaiters = new Map<number, (ok: boolean) => void>()
  log.info({ workers: o.workers, cache_max_bytes_per_worker: cacheBytes }, 'starting workers')

  const fork = (s: Slot): void => {
    const worker = cluster.fork({ ...env, [WORKER_SLOT_ENV]: String(s.slot) })
    s.worker = worker
    s.ready = false
    s.startedAt = Date.now()
    worker.on('message', (m: unknown) => {
      if (isMessage(m) && m.type === 'portcullis:ready') {
        s.ready = true
        log.info({ worker: s.slot, worker_pid: worker.process.pid }, 'worker ready')
        readyWaiters.get(s.slot)?.(true)
      }
    })
    worker.on('exit', (code, signal) => onExit(s, worker, code, signal))
  }

  const onExit = (s: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (s.worker !== worker) return
    const wasReady = s.ready
    s.worker = undefined
    s.ready = false
    readyWaiters.get(s.slot)?.(false)
    const fields = { worker: s.slot, worker_pid: worker.process.pid, code, signal, ran_ms: Date.now() - s.startedAt }
    if (phase === 'stopping') {
      if (code !== 0) exitCodeOk = false
      log.info(fields, 'worker stopped')
      if (slots.every((x) => x.worker === undefined)) allExited.emit('done')
      return
    }
    if (phase === 'starting' && !wasReady) {
      log.error(fields, 'worker failed to start')
      failedStart = true
      return
    }
    if (Date.now() - s.startedAt >= RESTART_RESET_MS) s.failures = 0
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** s.failures)
    s.failures++
    log.error({ ...fields, restart_in_ms: delay, consecutive_failures: s.failures }, 'worker exited: restarting')
    s.restartTimer = setTimeout(() => {
      s.restartTimer = undefined
      if (phase !== 'stopping') fork(s)
    }, delay)
  }

  const waitReady = (s: Slot): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        log.error({ worker: s.slot, timeout_ms: START_TIMEOUT_MS }, 'worker did not become ready in time')
        s.worker?.kill('SIGKILL')
        done(false)
      }, START_TIMEOUT_MS)
      const done = (ok: boolean): void => {
        clearTimeout(timer)
        readyWaiters.delete(s.slot)
        resolve(ok)
      }
      readyWaiters.set(s.slot, done)
    })

  // Metrics: the primary serves every worker's registry.
  let metricsServer: MetricsServer | undefined
  if (o.prometheus.enabled) {
    metricsServer = await startMetricsServer(new ClusterRegistry(slots, log), o.prometheus, log)
  }

  // Signals: the first starts the shutdown, a second kills the workers.
  let stopping = false
  let resolveDone!: (code: number) => void
  const done = new Promise<number>((resolve) => (resolveDone = resolve))
  const stop = (reason: string): Promise<number> => {
    if (!stopping) {
      stopping = true
      void shutdown(reason).then(resolveDone)
    }
    return done
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stopping) {
      void stop(signal)
      return
    }
    log.warn({ signal }, 'second signal: killing workers, exiting now')
    exitCodeOk = false
    for (const s of slots) s.worker?.kill('SIGKILL')
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) proc.on(sig, onSignal)

  const shutdown = async (reason: string): Promise<number> => {
    phase = 'stopping'
    log.info({ reason }, 'shutting down workers')
    for (const s of slots) {
      if (s.restartTimer !== undefined) clearTimeout(s.restartTimer)
      s.restartTimer = undefined
      const w = s.worker
      if (w === undefined) continue
      if (w.isConnected()) w.send({ type: 'portcullis:shutdown' } satisfies ToWorker)
      else w.process.kill('SIGTERM')
    }
    // Each worker: drain + grace + flush + its closers; then a margin.
    const limit = o.shutdown.drain + o.shutdown.grace + FLUSH_MS + 5 * CLOSER_TIMEOUT_MS + 5_000
    if (slots.some((s) => s.worker !== undefined)) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => allExited.once('done', resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            log.error({ timeout_ms: limit }, 'workers did not stop in time: killing them')
            exitCodeOk = false
            for (const s of slots) s.worker?.kill('SIGKILL')
            resolve()
          }, limit)
        }),
      ])
      clearTimeout(timer)
    }
    await metricsServer?.close()
    for (const sig of ['SIGTERM', 'SIGINT'] as const) proc.off(sig, onSignal)
    const code = exitCodeOk && !failedStart ? 0 : 1
    log.info({ code }, 'stopped')
    return code
  }

  // Start: the first worker alone (a broken config is reported once), then the others together.
  const first = slots[0]!
  fork(first)
  let ok = await waitReady(first)
  if (ok && !failedStart) {
    const rest = slots.slice(1)
    for (const s of rest) fork(s)
    ok = (await Promise.all(rest.map(waitReady))).every(Boolean)
  }
  if (stopping) return done // a signal arrived during the start
  if (!ok || failedStart) {
    failedStart = true
    log.error('a worker failed to start: stopping')
    return stop('start failed')
  }
  phase = 'running'
  log.info({ workers: o.workers }, 'all workers ready')
  return done
}

/**
 * The primary's registry: `metrics()` asks every ready worker for its metrics (JSON over IPC),
 * labels each series with `worker`, and renders them together. Workers that do not answer within
 * METRICS_TIMEOUT_MS are left out of that scrape (logged).
 */
class ClusterRegistry extends Registry {
  readonly #slots: readonly Slot[]
  readonly #log: Logger
  #nextId = 0
  readonly #pending = new Map<number, (m: unknown[] | undefined) => void>()

  constructor(slots: readonly Slot[], log: Logger) {
    super()
    this.#slots = slots
    this.#log = log
    cluster.on('message', (_worker: Worker, m: unknown) => {
      if (!isMessage(m) || m.type !== 'portcullis:metrics' || typeof m.id !== 'number') return
      const r = m as { id: number; metrics?: unknown; error?: unknown }
      const done = this.#pending.get(r.id)
      if (done === undefined) return
      this.#pending.delete(r.id)
      if (typeof r.error === 'string') this.#log.warn({ err: r.error }, 'worker metrics collection failed')
      done(Array.isArray(r.metrics) ? r.metrics : undefined)
    })
  }

  override async metrics(): Promise<string> {
    const live = this.#slots.filter((s) => s.ready && s.worker?.isConnected() === true)
    const answers = await Promise.all(live.map((s) => this.#ask(s)))
    const labelled: unknown[][] = []
    answers.forEach((metrics, i) => {
      if (metrics === undefined) return
      labelled.push(withWorkerLabel(metrics, live[i]!.slot))
    })
    if (labelled.length === 0) return ''
    return AggregatorRegistry.aggregate(labelled).metrics()
  }

  #ask(s: Slot): Promise<unknown[] | undefined> {
    const id = this.#nextId++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        this.#log.warn({ worker: s.slot, timeout_ms: METRICS_TIMEOUT_MS }, 'worker did not answer the metrics request')
        resolve(undefined)
      }, METRICS_TIMEOUT_MS)
      this.#pending.set(id, (m) => {
        clearTimeout(timer)
        resolve(m)
      })
      s.worker?.send({ type: 'portcullis:metrics', id } satisfies ToWorker)
    })
  }
}

/**
 * A copy of one worker's `getMetricsAsJSON()` with `worker: slot` on every value, each metric set
 * to sum (with distinct labels, nothing is actually added up, and nothing is dropped).
 */
export function withWorkerLabel(metrics: readonly unknown[], slot: number): unknown[] {
  return metrics.map((m) => {
    const metric = m as { values?: { labels?: Record<string, unknown> }[] }
    return {
      ...metric,
      aggregator: 'sum',
      values: (metric.values ?? []).map((v) => ({ ...v, labels: { ...v.labels, worker: String(slot) } })),
    }
  })
}
