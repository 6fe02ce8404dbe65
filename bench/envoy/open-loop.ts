/**
 * Open-loop HTTP load generator (forked by run.ts; one JSON argument, IPC to the parent).
 *
 * Request `i` is *scheduled* at `start + i / rate`, independent of how fast answers come back:
 * a slow answer never delays the next request (unlike wrk or ghz' concurrency mode, which are
 * closed loops and under-report tail latency: "coordinated omission"). Latency is measured from
 * the scheduled time to the last byte of the response, so time a request spent waiting for a free
 * connection, or behind a late timer, counts against the system, as in wrk2. How late requests
 * were handed to the client (timer granularity, this process' own pauses) is recorded separately
 * (`sendLag`), so the generator's share of the tail can be told apart.
 *
 * Timers fire with ~1 ms granularity, so requests leave in small bursts (6 per ms at 6000/s);
 * every one is timed from its own exact schedule point.
 *
 * HTTP/1.1 keep-alive over an undici Pool of `connections` sockets, one request at a time per
 * socket (no pipelining: Envoy's downstream codec and the upstream see ordinary traffic).
 *
 * Credentials: every request carries `Authorization: Bearer <JWT>`. With probability
 * `missRatio` the token is the next never-used one from `fresh` (a cache miss in Portcullis: full
 * signature verification), otherwise a random one of the `hot` pool (a cache hit once warm). The
 * same sequence is sent with and without ext_authz, so both runs see identical requests.
 *
 * Phases: `warmupMs` at the full rate (not recorded; warms JIT, connections and the hot tokens
 * in the cache), then `durationMs` recorded. Requests scheduled in the recorded window are
 * recorded when they complete; the run ends when all have completed or timed out.
 * @module
 */
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import { Histogram, type HistogramJSON } from './histogram.js'
import { prng } from '../soak/tokens.js'

export interface OpenLoopConfig {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  readonly host: string
  /** Request paths rotate over `/jwt/items/<0..pathCount-1>`. */
  readonly pathPrefix: string
  readonly pathCount: number
  readonly rate: number
  readonly warmupMs: number
  readonly durationMs: number
  readonly connections: number
  readonly timeoutMs: number
  /** JSON file `{ hot: string[], fresh: string[] }`. */
  readonly tokensFile: string
  readonly missRatio: number
  readonly seed: number
  /** Status the upstream answers a good request with. */
  readonly expectStatus: number
  /**
   * Requests outstanding (sent or queued for a connection) at most; a request scheduled beyond it
   * is not sent and counts as an error (`shed`), so an overloaded target cannot make the queue,
   * and the run's end, grow without bound.
   */
  readonly maxOutstanding: number
}

export interface OpenLoopResult {
  readonly latency: HistogramJSON
  readonly sendLag: HistogramJSON
  /** Requests scheduled in the recorded window. */
  readonly scheduled: number
  readonly completed: number
  readonly ok: number
  /** status → count, for answers other than `expectStatus`. */
  readonly statuses: Record<string, number>
  /** error code → count (timeouts, resets). */
  readonly errors: Record<string, number>
  /** Fresh (never-seen) tokens sent in the recorded window. */
  readonly misses: number
  readonly windowMs: number
  /** Wall time from the first recorded request's schedule to the last completion. */
  readonly elapsedMs: number
  /** CPU seconds this process used during the recorded window. */
  readonly cpuSeconds: number
}

export type OpenLoopMessage =
  | { readonly type: 'measuring' }
  | { readonly type: 'tick'; readonly second: number; readonly sent: number; readonly completed: number; readonly outstanding: number; readonly p99Ms: number }
  | { readonly type: 'done'; readonly result: OpenLoopResult }
  | { readonly type: 'error'; readonly message: string }

export async function runOpenLoop(c: OpenLoopConfig, emit: (m: OpenLoopMessage) => void): Promise<OpenLoopResult> {
  const tokens = JSON.parse(readFileSync(c.tokensFile, 'utf8')) as { hot: string[]; fresh: string[] }
  const rnd = prng(c.seed)
  const pool = new Pool(c.origin, {
    connections: c.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: c.timeoutMs,
    bodyTimeout: c.timeoutMs,
  })
  const latency = new Histogram()
  const sendLag = new Histogram()
  const tickLatency = { h: new Histogram() }
  const statuses: Record<string, number> = {}
  const errors: Record<string, number> = {}
  let ok = 0
  let completed = 0
  let recordedCompleted = 0
  let misses = 0
  let fresh = 0
  let outstanding = 0
  let sent = 0

  const interval = 1000 / c.rate
  const warmupN = Math.round((c.warmupMs / 1000) * c.rate)
  const total = warmupN + Math.round((c.durationMs / 1000) * c.rate)
  const start = performance.now() + 20
  const windowStart = start + warmupN * interval
  let cpuAtWindow: NodeJS.CpuUsage | undefined
  let lastCompletion = windowStart

  const headersFor = (i: number): Record<string, string> => {
    let token: string
    if (rnd() < c.missRatio) {
      const t = tokens.fresh[fresh++]
      if (t === undefined) throw new Error(`fresh token pool exhausted after ${fresh - 1} tokens`)
      token = t
      if (i >= warmupN) misses++
    } else {
      token = tokens.hot[Math.floor(rnd() * tokens.hot.length)]!
    }
    return { host: c.host, authorization: `Bearer ${token}` }
  }

  let resolveAll!: () => void
  const allDone = new Promise<void>((r) => (resolveAll = r))
  let scheduledAll = false
  const finishOne = (): void => {
    outstanding--
    completed++
    if (scheduledAll && outstanding === 0) resolveAll()
  }

  const fire = (i: number, at: number): void => {
    const recorded = i >= warmupN
    const lag = performance.now() - at
    if (recorded) sendLag.record(lag * 1000)
    if (outstanding >= c.maxOutstanding) {
      headersFor(i) // keep the token sequence identical
      if (recorded) errors['shed'] = (errors['shed'] ?? 0) + 1
      return
    }
    outstanding++
    sent++
    pool
      .request({ method: 'GET', path: `${c.pathPrefix}${i % c.pathCount}`, headers: headersFor(i) })
      .then(
        async (res) => {
          await res.body.dump()
          const now = performance.now()
          const us = (now - at) * 1000
          tickLatency.h.record(us)
          if (recorded) {
            latency.record(us)
            recordedCompleted++
            lastCompletion = now
            if (res.statusCode === c.expectStatus) ok++
            else statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
          }
        },
        (err: unknown) => {
          const now = performance.now()
          if (recorded) {
            latency.record((now - at) * 1000)
            recordedCompleted++
            lastCompletion = now
            const code = (err as { code?: string }).code ?? (err as Error).name
            errors[code] = (errors[code] ?? 0) + 1
          }
        },
      )
      .finally(finishOne)
  }

  // Progress once per second of schedule.
  let second = 0
  const progress = setInterval(() => {
    second++
    emit({ type: 'tick', second, sent, completed, outstanding, p99Ms: Math.round(tickLatency.h.quantileUs(0.99)) / 1000 })
    tickLatency.h = new Histogram()
  }, 1000)

  let i = 0
  await new Promise<void>((resolve, reject) => {
    const tick = (): void => {
      try {
        const now = performance.now()
        while (i < total) {
          const at = start + i * interval
          if (at > now) break
          if (i === warmupN) {
            cpuAtWindow = process.cpuUsage()
            emit({ type: 'measuring' })
          }
          fire(i, at)
          i++
        }
        if (i >= total) return resolve()
        setTimeout(tick, Math.max(0, start + i * interval - performance.now()))
      } catch (err) {
        reject(err as Error)
      }
    }
    setTimeout(tick, Math.max(0, start - performance.now()))
  })
  scheduledAll = true
  if (outstanding > 0) await allDone
  clearInterval(progress)
  const cpu = process.cpuUsage(cpuAtWindow)
  await pool.close()
  return {
    latency: latency.toJSON(),
    sendLag: sendLag.toJSON(),
    scheduled: total - warmupN,
    completed: recordedCompleted,
    ok,
    statuses,
    errors,
    misses,
    windowMs: c.durationMs,
    elapsedMs: lastCompletion - windowStart,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  }
}

// Run as a forked child: config in argv[2], messages to the parent.
if (process.send !== undefined && process.argv[2] !== undefined) {
  const send = (m: OpenLoopMessage): void => void process.send?.(m)
  let finished = false
  // The parent went away: stop at once.
  process.on('disconnect', () => {
    if (!finished) process.exit(1)
  })
  runOpenLoop(JSON.parse(process.argv[2]) as OpenLoopConfig, send).then(
    (result) => {
      finished = true
      send({ type: 'done', result })
      process.disconnect()
    },
    (err: unknown) => {
      finished = true
      send({ type: 'error', message: (err as Error).stack ?? String(err) })
      process.disconnect()
      process.exitCode = 1
    },
  )
}
