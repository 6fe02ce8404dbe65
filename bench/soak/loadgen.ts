/**
 * The soak's load generator: a separate process (forked by soak.ts, IPC channel) sending
 * `Authorization/Check` calls with a unique credential each (scenarios.ts) to 127.0.0.1 over
 * several grpc-js channels (each its own HTTP/2 connection), each with many calls in flight.
 *
 * - `rate: 0`: closed loop, `channels × inflight` calls always outstanding (the highest rate the
 *   server sustains); `rate > 0`: open loop at that many calls per second, never more than
 *   `channels × inflight` outstanding (calls that would exceed it are skipped and counted).
 * - Every answer is checked: a valid credential must be allowed, an invalid one denied with HTTP
 *   401. An invalid credential allowed is the one outcome that must never happen.
 * - Reports once per second (`tick`) and at the end (`done`) to the parent; stops after
 *   `durationMs` or on a `stop` message, waits for outstanding calls (each has a 5 s deadline),
 *   closes its channels and exits. Exits on its own if the parent goes away.
 *
 * Input: one JSON argument (`LoadgenConfig`).
 * @module
 */
import { readFileSync } from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import { AuthorizationService, CheckRequest, type CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { HOST, RequestStream, type JwtKeys, type ScenarioId, type SoakRequest } from './scenarios.js'
import type { TokenMix } from './tokens.js'

export interface LoadgenConfig {
  readonly port: number
  readonly scenarios: readonly ScenarioId[]
  readonly mix: TokenMix
  /** Calls per second; 0 = as fast as the server answers. */
  readonly rate: number
  readonly durationMs: number
  readonly channels: number
  /** Outstanding calls per channel at most. */
  readonly inflight: number
  /** JSON file with `JwtKeys` (jwt scenario only). */
  readonly jwtKeysFile?: string
}

/** Counters for one tick (or for the whole run in `done`). */
export interface LoadCounts {
  sent: number
  completed: number
  allowed: number
  denied401: number
  /** Valid credentials denied, by reason (503s under overload land here). */
  validDenied: Record<string, number>
  /** Invalid credentials denied with another status than 401, by reason. */
  invalidOther: Record<string, number>
  /** Invalid credentials allowed: must stay 0. */
  invalidAllowed: number
  /** gRPC errors (a Check must always get a CheckResponse). */
  grpcErrors: Record<string, number>
  /** Open loop only: calls not sent because `channels × inflight` were outstanding. */
  skipped: number
  latencyP50Ms: number
  latencyP99Ms: number
  latencyMaxMs: number
}

export type LoadgenMessage =
  | { readonly type: 'tick'; readonly t: number; readonly counts: LoadCounts; readonly outstanding: number }
  | { readonly type: 'done'; readonly totals: LoadCounts; readonly elapsedMs: number }
  | { readonly type: 'error'; readonly message: string }

const CALL_DEADLINE_MS = 5_000
/** Latencies kept per tick for percentiles (a bounded reservoir: the first N of the tick). */
const MAX_LATENCIES = 200_000

type CheckFn = (req: CheckRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<CheckResponse>) => void

function emptyCounts(): LoadCounts {
  return {
    sent: 0,
    completed: 0,
    allowed: 0,
    denied401: 0,
    validDenied: {},
    invalidOther: {},
    invalidAllowed: 0,
    grpcErrors: {},
    skipped: 0,
    latencyP50Ms: 0,
    latencyP99Ms: 0,
    latencyMaxMs: 0,
  }
}

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1
}

function merge(into: LoadCounts, c: LoadCounts): void {
  for (const k of ['sent', 'completed', 'allowed', 'denied401', 'invalidAllowed', 'skipped'] as const) into[k] += c[k]
  for (const k of ['validDenied', 'invalidOther', 'grpcErrors'] as const) {
    for (const [r, n] of Object.entries(c[k])) into[k][r] = (into[k][r] ?? 0) + n
  }
  into.latencyMaxMs = Math.max(into.latencyMaxMs, c.latencyMaxMs)
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** The CheckRequest Envoy would send (`fromJSON` fills every field the encoder needs). */
function checkRequest(r: SoakRequest, n: number): CheckRequest {
  return CheckRequest.fromJSON({
    attributes: {
      source: { address: { socketAddress: { address: '10.0.0.7', portValue: 40000 } } },
      request: {
        http: {
          id: `soak-${n}`,
          method: 'GET',
          scheme: 'https',
          host: HOST,
          path: r.path,
          protocol: 'HTTP/2',
          headers: { ':authority': HOST, ':method': 'GET', ':path': r.path, ':scheme': 'https', ...r.headers },
        },
      },
    },
  })
}

async function main(cfg: LoadgenConfig): Promise<void> {
  const send = (m: LoadgenMessage): void => void process.send?.(m)
  const jwtKeys = cfg.jwtKeysFile === undefined ? undefined : (JSON.parse(readFileSync(cfg.jwtKeysFile, 'utf8')) as JwtKeys)
  const stream = new RequestStream(cfg.scenarios, cfg.mix, jwtKeys, process.pid)
  const Client = grpc.makeGenericClientConstructor(AuthorizationService, 'Authorization')
  const clients = Array.from(
    { length: cfg.channels },
    // A local subchannel pool per client: one HTTP/2 connection each, as several Envoy workers.
    () => new Client(`127.0.0.1:${cfg.port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
  )
  const checks = clients.map((c) => (c as unknown as { check: CheckFn }).check.bind(c))
  const outstanding = new Array<number>(cfg.channels).fill(0)
  const maxOutstanding = cfg.channels * cfg.inflight

  let tick = emptyCounts()
  const totals = emptyCounts()
  const latencies = new Float64Array(MAX_LATENCIES)
  let nLat = 0
  let total = 0
  let stopping = false
  const started = performance.now()
  let idle: (() => void) | undefined

  const onAnswer = (r: SoakRequest, t0: number, err: grpc.ServiceError | null, res: CheckResponse | undefined): void => {
    const ms = performance.now() - t0
    if (nLat < MAX_LATENCIES) latencies[nLat++] = ms
    if (ms > tick.latencyMaxMs) tick.latencyMaxMs = ms
    tick.completed++
    if (err !== null || res === undefined) {
      bump(tick.grpcErrors, err === null ? 'no response' : grpc.status[err.code] ?? String(err.code))
      return
    }
    const code = res.status?.code ?? 0
    if (code === 0 && res.okResponse !== undefined && res.deniedResponse === undefined) {
      tick.allowed++
      if (!r.valid) tick.invalidAllowed++
      return
    }
    const http = res.deniedResponse?.status?.code ?? 0
    const reason = `${http} ${res.status?.message ?? ''}`
    if (r.valid) bump(tick.validDenied, reason)
    else if (http === 401) tick.denied401++
    else bump(tick.invalidOther, reason)
  }

  const fire = (ch: number): void => {
    const n = stream.count
    const r = stream.next()
    outstanding[ch]!++
    total++
    tick.sent++
    const t0 = performance.now()
    checks[ch]!(checkRequest(r, n), new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) => {
      outstanding[ch]!--
      total--
      onAnswer(r, t0, err, res)
      if (!stopping && cfg.rate === 0) {
        // After an error, yield to the event loop first: grpc-js can fail a call without I/O, and
        // refiring from its callback would then never let timers (ticks, the stop) run.
        if (err === null) fire(ch)
        else setImmediate(() => (stopping ? total === 0 && idle?.() : fire(ch)))
      } else if (total === 0) idle?.()
    })
  }

  const ticker = setInterval(() => {
    const sorted = latencies.subarray(0, nLat).sort()
    tick.latencyP50Ms = Math.round(percentile(sorted, 50) * 100) / 100
    tick.latencyP99Ms = Math.round(percentile(sorted, 99) * 100) / 100
    tick.latencyMaxMs = Math.round(tick.latencyMaxMs * 100) / 100
    send({ type: 'tick', t: Math.round(performance.now() - started), counts: tick, outstanding: total })
    merge(totals, tick)
    tick = emptyCounts()
    nLat = 0
  }, 1000)

  let opener: NodeJS.Timeout | undefined
  if (cfg.rate === 0) {
    for (let ch = 0; ch < cfg.channels; ch++) for (let i = 0; i < cfg.inflight; i++) fire(ch)
  } else {
    // Open loop: every 10 ms, the calls due since the start minus those already issued.
    let issued = 0
    opener = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * cfg.rate) - issued
      for (let i = 0; i < due; i++) {
        issued++
        if (total >= maxOutstanding) {
          tick.skipped++
          continue
        }
        let ch = 0
        for (let c = 1; c < cfg.channels; c++) if (outstanding[c]! < outstanding[ch]!) ch = c
        fire(ch)
      }
    }, 10)
  }

  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, cfg.durationMs)
    process.on('message', (m) => {
      if (m === 'stop') {
        clearTimeout(t)
        resolve()
      }
    })
  })
  stopping = true
  if (opener !== undefined) clearInterval(opener)
  if (total > 0) {
    await new Promise<void>((resolve) => {
      idle = resolve
      // Every call has a deadline; this is a backstop.
      setTimeout(resolve, CALL_DEADLINE_MS + 1000).unref()
    })
  }
  clearInterval(ticker)
  merge(totals, tick)
  for (const c of clients) c.close()
  send({ type: 'done', totals, elapsedMs: Math.round(performance.now() - started) })
}

// Never outlive the orchestrator.
process.on('disconnect', () => process.exit(0))
const arg = process.argv[2]
if (arg === undefined) {
  process.stderr.write('usage: loadgen.js <json config>\n')
  process.exit(2)
}
main(JSON.parse(arg) as LoadgenConfig).then(
  () => {
    // Let the IPC message flush, then leave.
    setTimeout(() => process.exit(0), 100)
  },
  (err: unknown) => {
    process.send?.({ type: 'error', message: (err as Error).stack ?? String(err) } satisfies LoadgenMessage)
    setTimeout(() => process.exit(1), 100)
  },
)
