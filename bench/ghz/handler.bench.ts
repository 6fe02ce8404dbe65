/**
 * The Check handler alone, in process, without gRPC transport: what Portcullis adds per Check on
 * top of a do-nothing server (which also decodes the request and encodes an answer). Used to
 * iterate on the hot path quickly and with little noise; the end-to-end figures come from
 * bench/run.ts. Wiring is main.ts' own (`startPortcullis`, then the same handler and wrapper the
 * gRPC server uses), with the decision log written to /dev/null through pino as in production.
 *
 * Per round: `batch` concurrent Checks (like 64 streams in flight), repeated to `calls`; prints
 * µs per Check for (a) decode + handler + encode as the server does them (its own decoder and
 * encoder), (b) the generated decode + encode of a fixed answer (what the baseline server does),
 * and their difference.
 *
 * Usage: `node dist/bench/ghz/handler.bench.js [--scenario jwt-cached] [--calls 200000]
 *   [--decision-sample 1] [--rounds 5]`
 * @module
 */
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import type * as grpc from '@grpc/grpc-js'
import { AuthorizationService, CheckRequest, type CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { startPortcullis } from '../../src/main.js'
import { createLogger } from '../../src/observability/logger.js'
import { encodeCheckResponse } from '../../src/server/check.js'
import { createCheckHandler, decodeCheckRequest } from '../../src/server/grpc.js'
import { wrapCheckHandler } from '../../src/server/lifecycle.js'
import { makeCredentials, prepareScenario, type ScenarioId } from '../fixtures/scenarios.js'
import { FIXED_OK } from '../baseline-server.js'
import { freePorts, firstMessage } from './servers.js'

/** What the baseline server's generated service encodes with. */
const serializeGenerated = AuthorizationService.check.responseSerialize

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'jwt-cached' },
      calls: { type: 'string', default: '200000' },
      batch: { type: 'string', default: '64' },
      rounds: { type: 'string', default: '5' },
      'decision-sample': { type: 'string' },
    },
  })
  const id = values.scenario as ScenarioId
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-handler-bench-'))
  const creds = makeCredentials(dir)
  const ports = await freePorts()
  const sample = values['decision-sample'] === undefined ? undefined : Number(values['decision-sample'])
  const s = prepareScenario(id, dir, creds, ports, { decisionSample: sample })
  const log = createLogger('info', pino.destination({ dest: process.env['BENCH_LOG_FILE'] ?? '/dev/null', sync: false }))
  const app = await startPortcullis({ configFile: s.configPath!, env: {}, log })
  const cfg = app.loaded.config
  const check = wrapCheckHandler(
    createCheckHandler(app.holder, log, {
      maxCheckDurationMs: cfg.serve.grpc.max_check_duration_ms,
      observer: app.metrics,
      decisionSample: cfg.log.decision_sample,
    }),
    { inflight: app.inflight, guard: app.guard, log },
  )
  const bytes = firstMessage(s)
  const calls = Number(values.calls)
  const batch = Number(values.batch)

  let lastOk = 0
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const call = Object.assign(new EventEmitter(), {
        request: decodeCheckRequest(bytes),
        getDeadline: () => Infinity,
      }) as unknown as grpc.ServerUnaryCall<CheckRequest, CheckResponse>
      check(call, (err, value) => {
        if (err || value === undefined || value === null) return reject(err ?? new Error('no value'))
        if (value.status?.code === 0) lastOk++
        encodeCheckResponse(value)
        resolve()
      })
    })
  const baseline = (): Promise<void> =>
    new Promise((resolve) => {
      CheckRequest.decode(bytes)
      queueMicrotask(() => {
        serializeGenerated(FIXED_OK)
        resolve()
      })
    })
  async function time(f: () => Promise<void>, n: number): Promise<number> {
    const t0 = performance.now()
    for (let done = 0; done < n; done += batch) {
      const ps: Promise<void>[] = []
      for (let i = 0; i < batch; i++) ps.push(f())
      await Promise.all(ps)
    }
    return ((performance.now() - t0) * 1000) / n
  }
  await time(one, 20_000)
  await time(baseline, 20_000)
  if (lastOk === 0) throw new Error(`${id}: no Check was allowed; the scenario is misconfigured`)
  const rows: [number, number][] = []
  for (let r = 0; r < Number(values.rounds); r++) {
    const a = await time(one, calls)
    const b = await time(baseline, calls)
    rows.push([a, b])
    console.log(`round ${r + 1}: handler ${a.toFixed(2)} µs/Check, baseline work ${b.toFixed(2)} µs, added ${(a - b).toFixed(2)} µs`)
  }
  const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!
  const ha = med(rows.map((r) => r[0]))
  const hb = med(rows.map((r) => r[1]))
  console.log(`median: handler ${ha.toFixed(2)} µs/Check, baseline work ${hb.toFixed(2)} µs, added ${(ha - hb).toFixed(2)} µs (${id}, decision log ${sample === undefined ? 'every decision' : `sampled at ${sample}`})`)
  await app.stop(100)
  rmSync(dir, { recursive: true, force: true })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
