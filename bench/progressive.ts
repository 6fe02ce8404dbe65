/**
 * Progressive load (the seed's "start low, step up"): one Portcullis process (or the do-nothing
 * baseline) pinned to core 0, ghz pinned to core 1 with a rate limit (`--rps`) stepping up
 * 1k → 2k → … until the first step that breaks the SLO or the last step. Per step it prints
 * achieved RPS, p50/p99/p99.9, errors, server CPU (from /proc/<pid>/stat), RSS and the event-loop
 * delay (`portcullis_nodejs_eventloop_lag_p99_seconds` from the server's metrics endpoint, reset at
 * every scrape, so one value per step). Progress is shown while a step runs. Writes JSON and an SVG
 * (latency vs offered load; RSS over time) to bench/out/, and to bench/results/ with
 * `--write-results`.
 *
 * ghz is a closed loop with a rate limit: each of `--concurrency` workers sends when the limiter
 * lets it and waits for its answer. With enough workers for the step's rate (default 200) a slow
 * server delays the next sends only once every worker waits, so latencies up to
 * concurrency / rate are seen as they are (no coordinated omission below that).
 *
 * Usage: `node dist/bench/progressive.js [--scenario jwt-cached] [--start 1000] [--step 1000]
 *   [--max 20000] [--step-seconds 5] [--warmup 15] [--slo-p99-ms 5] [--slo-errors 0.001] [--decision-sample R]
 *   [--node-arg=…] [--write-results]`
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { isBaseline, makeCredentials, prepareScenario, SCENARIOS, type ScenarioId } from './fixtures/scenarios.js'
import { ensureProtoset, findGhz, installGhz, runGhz, type GhzResult } from './ghz/ghz.js'
import { CpuMeter, pinSelf, rssBytes, waitQuiet } from './ghz/proc.js'
import { freePorts, REPO_ROOT, scrape, startIntrospectionStub, startTarget } from './ghz/servers.js'
import { lineChart, svgDocument } from './ghz/svg.js'
import { machineInfo } from './ghz/bench.js'

export interface StepResult {
  readonly offeredRps: number
  readonly achievedRps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly errors: number
  readonly errorRatio: number
  readonly serverCpu: number
  readonly rssMiB: number | undefined
  readonly eventLoopP99Ms: number | undefined
  readonly breaks: string | undefined
}

export interface Slo {
  readonly p99Ms: number
  readonly errorRatio: number
  /** Achieved below this share of the offered rate also breaks the SLO (the server fell behind). */
  readonly minAchieved: number
}

export function sloBreach(r: Omit<StepResult, 'breaks'>, slo: Slo): string | undefined {
  const why: string[] = []
  if (r.p99Ms > slo.p99Ms) why.push(`p99 ${r.p99Ms.toFixed(2)} ms > ${slo.p99Ms} ms`)
  if (r.errorRatio > slo.errorRatio) why.push(`errors ${(r.errorRatio * 100).toFixed(2)} % > ${(slo.errorRatio * 100).toFixed(2)} %`)
  if (r.achievedRps < r.offeredRps * slo.minAchieved) why.push(`achieved ${Math.round(r.achievedRps)} < ${(slo.minAchieved * 100).toFixed(0)} % of ${r.offeredRps}`)
  return why.length === 0 ? undefined : why.join(', ')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'jwt-cached' },
      start: { type: 'string', default: '1000' },
      step: { type: 'string', default: '1000' },
      max: { type: 'string', default: '20000' },
      'step-seconds': { type: 'string', default: '5' },
      warmup: { type: 'string', default: '15' },
      concurrency: { type: 'string', default: '200' },
      connections: { type: 'string', default: '4' },
      'slo-p99-ms': { type: 'string', default: '5' },
      'slo-errors': { type: 'string', default: '0.001' },
      'decision-sample': { type: 'string' },
      'unique-tokens': { type: 'string', default: '200000' },
      'node-arg': { type: 'string', multiple: true },
      'no-install': { type: 'boolean', default: false },
      'write-results': { type: 'boolean', default: false },
    },
  })
  const id = values.scenario as ScenarioId
  if (!(SCENARIOS as readonly string[]).includes(id)) throw new Error(`unknown scenario ${id}`)
  pinSelf(1)
  let ghz = findGhz()
  if (ghz.path === undefined && !values['no-install']) ghz = installGhz()
  if (ghz.path === undefined) {
    console.error(`SKIPPED: ${ghz.missing ?? 'ghz missing'}`)
    process.exit(2)
  }
  const slo: Slo = { p99Ms: Number(values['slo-p99-ms']), errorRatio: Number(values['slo-errors']), minAchieved: 0.95 }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const outDir = join(REPO_ROOT, 'bench', 'out', `progressive-${stamp}`)
  mkdirSync(outDir, { recursive: true })
  const protoset = ensureProtoset(outDir)
  const creds = makeCredentials(outDir)
  const ports = isBaseline(id) ? undefined : await freePorts()
  const stub = id === 'introspection' ? await startIntrospectionStub(1) : undefined
  const decisionSample = values['decision-sample'] === undefined ? undefined : Number(values['decision-sample'])
  const s = prepareScenario(id, join(outDir, id), creds, ports, {
    decisionSample,
    uniqueTokens: Number(values['unique-tokens']),
    ...(stub === undefined ? {} : { introspectionOrigin: stub.origin }),
  })
  const q = await waitQuiet(0.15, 120)
  if (!q.quiet) console.error(`machine not quiet after ${q.waitedS.toFixed(0)} s (other processes): measuring anyway`)
  const target = await startTarget(s, ports, 0, values['node-arg'] ?? [])
  const stepS = Number(values['step-seconds'])
  const rssTimeline: [number, number][] = []
  const t0 = performance.now()
  const rssTimer = setInterval(() => {
    const r = rssBytes(target.pid)
    if (r !== undefined) rssTimeline.push([(performance.now() - t0) / 1000, r / 1024 / 1024])
  }, 250)
  const steps: StepResult[] = []
  console.log(`progressive load: ${id} (${s.distinctRequests} distinct requests), pid ${target.pid}; SLO p99 ≤ ${slo.p99Ms} ms, errors ≤ ${(slo.errorRatio * 100).toFixed(2)} %, achieved ≥ 95 % of offered`)
  console.log('| offered RPS | achieved RPS | p50 ms | p99 ms | p99.9 ms | errors | server CPU | RSS MiB | event-loop p99 ms | SLO |')
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|')
  try {
    // Warm-up at the first step's rate (discarded): V8 needs 10–20 s of load to optimise the
    // request path and size its heap; without it the first step measures the JIT, not the server.
    const warmupS = Number(values.warmup)
    process.stderr.write(`  warm-up: ${warmupS} s at ${values.start} rps (not recorded)\n`)
    await runGhz({ ghz: ghz.path, protoset, port: target.port, dataFile: s.ghzData, load: { connections: Number(values.connections), concurrency: Number(values.concurrency), durationS: warmupS, rps: Number(values.start) }, cpu: 1, outFile: join(outDir, 'warmup.json') })
    for (let rate = Number(values.start); rate <= Number(values.max); rate += Number(values.step)) {
      if (target.metricsUrl !== undefined) await scrape(target.metricsUrl) // resets the event-loop histogram
      const meter = new CpuMeter([target.pid]).start(250)
      const started = performance.now()
      const progress = setInterval(() => {
        const el = (performance.now() - started) / 1000
        process.stderr.write(`\r  step ${rate} rps: ${el.toFixed(0)}/${stepS} s, server RSS ${((rssBytes(target.pid) ?? 0) / 1048576).toFixed(0)} MiB   `)
      }, 1000)
      let r: GhzResult
      try {
        r = await runGhz({
          ghz: ghz.path,
          protoset,
          port: target.port,
          dataFile: s.ghzData,
          load: { connections: Number(values.connections), concurrency: Number(values.concurrency), durationS: stepS, rps: rate },
          cpu: 1,
          outFile: join(outDir, `step-${rate}.json`),
          timeoutS: 2,
        })
      } finally {
        clearInterval(progress)
        process.stderr.write('\r' + ' '.repeat(70) + '\r')
      }
      const m = meter.stop()
      const metrics = target.metricsUrl === undefined ? undefined : await scrape(target.metricsUrl)
      const lag = metrics?.get('portcullis_nodejs_eventloop_lag_p99_seconds')
      const rss = rssBytes(target.pid)
      const base = {
        offeredRps: rate,
        achievedRps: r.rps,
        p50Ms: r.latency.p50Ms,
        p99Ms: r.latency.p99Ms,
        p999Ms: r.latency.p999Ms,
        errors: r.errors,
        errorRatio: r.count === 0 ? 1 : r.errors / r.count,
        serverCpu: m.perPid.get(target.pid) ?? NaN,
        rssMiB: rss === undefined ? undefined : rss / 1048576,
        eventLoopP99Ms: lag === undefined ? undefined : lag * 1000,
      }
      const step: StepResult = { ...base, breaks: sloBreach(base, slo) }
      steps.push(step)
      console.log(
        `| ${rate} | ${Math.round(step.achievedRps)} | ${step.p50Ms.toFixed(2)} | ${step.p99Ms.toFixed(2)} | ${step.p999Ms.toFixed(2)} | ${step.errors} | ${(step.serverCpu * 100).toFixed(0)} % | ${step.rssMiB?.toFixed(0) ?? '–'} | ${step.eventLoopP99Ms?.toFixed(2) ?? '–'} | ${step.breaks === undefined ? 'ok' : `**broken**: ${step.breaks}`} |`,
      )
      if (step.breaks !== undefined) break
    }
  } finally {
    clearInterval(rssTimer)
    await target.stop()
    await stub?.stop()
  }
  const last = [...steps].reverse().find((x) => x.breaks === undefined)
  console.log(`\nhighest step within the SLO: ${last === undefined ? 'none' : `${last.offeredRps} RPS (p99 ${last.p99Ms.toFixed(2)} ms)`}`)
  const report = { date: new Date().toISOString(), machine: machineInfo(findGhz().version, undefined), scenario: id, decisionSample, slo, steps, rss: rssTimeline }
  const json = join(REPO_ROOT, 'bench', 'out', `progressive-${id}-${stamp}.json`)
  writeFileSync(json, JSON.stringify(report, null, 2))
  const svg = progressiveSvg(id, steps, rssTimeline, slo, `${report.date}; ${String(report.machine['cpu'])}, Node ${process.version}, ghz ${GHZ_LABEL(report.machine['ghz'])}; server pinned to core 0, ghz to core 1`)
  writeFileSync(join(outDir, `progressive-${id}.svg`), svg)
  if (values['write-results']) {
    mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
    writeFileSync(join(REPO_ROOT, 'bench', 'results', `progressive-${id}.svg`), svg)
  }
  console.log(`raw results: ${json}`)
}

const GHZ_LABEL = (v: unknown): string => String(v ?? '').replace(/^ghz\s*/, '') || 'unknown'

export function progressiveSvg(id: string, steps: readonly StepResult[], rss: readonly (readonly [number, number])[], slo: Slo, caption: string): string {
  const lat = lineChart({
    title: `${id}: latency vs offered load (ghz, rate-limited)`,
    xLabel: 'offered load (Check/s)',
    yLabel: 'latency (ms, log scale)',
    logY: true,
    series: [
      { label: 'p50', color: '#3b6fb6', points: steps.map((s) => [s.offeredRps, s.p50Ms] as const) },
      { label: 'p99', color: '#e08a2c', points: steps.map((s) => [s.offeredRps, s.p99Ms] as const) },
      { label: 'p99.9', color: '#c0392b', points: steps.map((s) => [s.offeredRps, s.p999Ms] as const) },
      { label: 'achieved/offered × 10 ms', color: '#7f8c8d', dashed: true, points: steps.map((s) => [s.offeredRps, (s.achievedRps / s.offeredRps) * 10] as const) },
    ],
    hLines: [{ y: slo.p99Ms, label: `SLO p99 ${slo.p99Ms} ms`, color: '#c0392b' }],
  })
  const mem = lineChart({
    title: `${id}: server RSS over the run`,
    xLabel: 'time (s)',
    yLabel: 'RSS (MiB)',
    series: [{ label: 'RSS', color: '#27ae60', points: rss }],
  })
  return svgDocument([lat, mem], caption)
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
