/**
 * The Check throughput benchmark: every scenario of bench/fixtures/scenarios.ts, side by side in
 * one run, driven by ghz and h2load. The server under test runs alone on core `serverCpu` (every
 * thread: `taskset -c 0`), the load generator (and this orchestrator, and the introspection stub)
 * on `loadCpu`. Each target gets a fresh process, a warm-up (discarded), then the measured runs;
 * rounds rotate the scenario order so slow drift of the machine (other tenants, thermal) spreads
 * over every scenario instead of landing on one.
 *
 * Per scenario and driver the report keeps every round; the summary uses the median round.
 * @module
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { encodeCheckRequest, lengthDelimited } from '../fixtures/request.js'
import {
  DESCRIPTIONS,
  isBaseline,
  makeCredentials,
  prepareScenario,
  type PreparedScenario,
  type ScenarioId,
} from '../fixtures/scenarios.js'
import { signTokens } from '../fixtures/tokens.js'
import { findH2load, runH2load, type H2loadLoad, type H2loadResult } from '../h2load/h2load.js'
import { ensureProtoset, findGhz, installGhz, runGhz, type GhzLoad, type GhzResult } from './ghz.js'
import { CpuMeter, loadAverage, rssBytes, TASKSET, waitQuiet } from './proc.js'
import { freePorts, REPO_ROOT, scrape, startIntrospectionStub, startTarget, type Target } from './servers.js'

export interface BenchOptions {
  readonly scenarios: readonly ScenarioId[]
  readonly drivers: readonly ('ghz' | 'h2load')[]
  readonly rounds: number
  readonly durationS: number
  readonly warmupS: number
  readonly ghzLoad: Omit<GhzLoad, 'durationS'>
  readonly h2loadLoad: Omit<H2loadLoad, 'durationS' | 'warmupS'>
  readonly serverCpu: number | undefined
  readonly loadCpu: number | undefined
  readonly outDir: string
  /** `log.decision_sample` for Portcullis; undefined: default (every decision logged). */
  readonly decisionSample?: number | undefined
  readonly uniqueTokens: number
  /** Install ghz with `go install` when missing and Go is there. */
  readonly install: boolean
  /** Extra node flags for the servers (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[]
  /** Another build of the Portcullis CLI (before/after comparisons); default dist/src/cli.js. */
  readonly cli?: string
  readonly log: (line: string) => void
  /**
   * Before each target, wait up to this many seconds for the machine to be quiet (0: don't), and
   * measure a run again (up to twice) when other processes took more than 10 % of the server's
   * core during it.
   */
  readonly quietWaitS?: number
}

export interface RunRecord {
  readonly scenario: ScenarioId
  readonly round: number
  readonly driver: 'ghz' | 'h2load'
  readonly rps: number
  readonly errors: number
  readonly p50Ms?: number
  readonly p99Ms?: number
  readonly p999Ms?: number
  readonly meanMs?: number
  /** Server CPU over the measured run (1 = one core). */
  readonly serverCpu: number
  /**
   * Server CPU time per answered Check, in µs (`serverCpu / rps`): the cost of one Check, much
   * less sensitive than RPS to other tenants taking time on the server's core.
   */
  readonly cpuUsPerCheck: number
  readonly loadGenCpu: number
  /** Busy share of each core over the run (everything on the machine). */
  readonly cores: readonly number[]
  readonly rssMiB: number | undefined
  /**
   * CPU used on the server's core by anything but the server (other tenants of the machine):
   * busy share of that core minus the server's own share. Above ~0.05 the run was disturbed.
   */
  readonly foreignCpu: number
  /** For jwt-unique: share of jwt cache lookups that missed during the run. */
  readonly missRatio?: number
  readonly eventLoopP99Ms?: number
}

export interface BenchReport {
  readonly date: string
  readonly machine: Record<string, unknown>
  readonly options: Omit<BenchOptions, 'log'>
  readonly scenarios: readonly { id: ScenarioId; description: string; rules: number; requestBytes: number; distinctRequests: number }[]
  readonly runs: readonly RunRecord[]
  readonly skipped: readonly string[]
}

/**
 * The median; for an even count the upper of the two middle values: other tenants of the machine
 * only ever slow a run down, so of two rounds the faster one is the better estimate.
 */
export function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y)
  return a.length === 0 ? NaN : a[a.length >> 1]!
}

/** The median-RPS run of (scenario, driver) (upper median), or undefined. */
export function medianRun(runs: readonly RunRecord[], scenario: ScenarioId, driver: 'ghz' | 'h2load'): RunRecord | undefined {
  const rs = runs.filter((r) => r.scenario === scenario && r.driver === driver).sort((a, b) => a.rps - b.rps)
  return rs[rs.length >> 1]
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const skipped: string[] = []
  let ghz = findGhz()
  if (ghz.path === undefined && o.install) ghz = installGhz(o.log)
  const drivers = o.drivers.filter((d) => {
    if (d === 'ghz' && ghz.path === undefined) {
      skipped.push(`ghz: ${ghz.missing ?? 'missing'}`)
      return false
    }
    if (d === 'h2load' && findH2load().path === undefined) {
      skipped.push(`h2load: ${findH2load().missing ?? 'missing'}`)
      return false
    }
    return true
  })
  for (const s of skipped) o.log(`SKIPPED ${s}`)
  if (TASKSET === undefined) o.log('taskset (util-linux) not found: servers and load generator are NOT pinned to cores')
  mkdirSync(o.outDir, { recursive: true })
  const protoset = drivers.includes('ghz') ? ensureProtoset(o.outDir) : ''
  const creds = makeCredentials(o.outDir)
  const h2 = findH2load()

  // Prepare every scenario's files once (unique tokens are signed here, before any load).
  const prepared = new Map<ScenarioId, { s: PreparedScenario; warmData: string }>()
  for (const id of o.scenarios) {
    const dir = join(o.outDir, id)
    const s = prepareScenario(id, dir, creds, id === 'baseline' || id === 'baseline-raw' ? undefined : { grpc: 0, prometheus: 0, api: 0 }, {
      decisionSample: o.decisionSample,
      uniqueTokens: o.uniqueTokens,
    })
    let warmData = s.ghzData
    if (id === 'jwt-unique') {
      // Warm up with other tokens, so the measured run starts with none of its tokens cached.
      warmData = join(dir, 'warmup.bin')
      const warm = signTokens(creds.key, 5000, Date.now()).map((t, i) => encodeCheckRequest(`Bearer ${t}`, 1_000_000 + i))
      writeFileSync(warmData, lengthDelimited(warm))
    }
    prepared.set(id, { s, warmData })
  }
  o.log(`prepared ${o.scenarios.length} scenarios in ${o.outDir} (request ${[...prepared.values()][0]?.s.requestBytes ?? 0} bytes)`)

  const runs: RunRecord[] = []
  for (let round = 1; round <= o.rounds; round++) {
    // Rotate the order each round.
    const order = o.scenarios.map((_, i) => o.scenarios[(i + round - 1) % o.scenarios.length]!)
    for (const id of order) {
      const { s: base, warmData } = prepared.get(id)!
      // Fresh ports per process start; the config is rewritten with them.
      const ports = isBaseline(id) ? undefined : await freePorts()
      let stub: Awaited<ReturnType<typeof startIntrospectionStub>> | undefined
      if (id === 'introspection') stub = await startIntrospectionStub(o.loadCpu)
      const s = isBaseline(id)
        ? base
        : prepareScenario(id, base.dir, creds, ports, {
            decisionSample: o.decisionSample,
            uniqueTokens: o.uniqueTokens,
            ...(stub === undefined ? {} : { introspectionOrigin: stub.origin }),
          })
      if ((o.quietWaitS ?? 0) > 0) {
        const q = await waitQuiet(0.15, o.quietWaitS ?? 0)
        if (!q.quiet) o.log(`  machine not quiet after ${q.waitedS.toFixed(0)} s (other processes): measuring anyway`)
        else if (q.waitedS > 3) o.log(`  waited ${q.waitedS.toFixed(0)} s for the machine to be quiet`)
      }
      let target: Target | undefined
      try {
        target = await startTarget(s, ports, o.serverCpu, o.nodeArgs, o.cli)
        o.log(`[round ${round}/${o.rounds}] ${id}: pid ${target.pid} on port ${target.port}; warm-up ${o.warmupS}s`)
        // Warm-up (discarded): V8 needs 10-20 s of load before a server's cost per Check settles
        // (optimised code, heap limits), and Portcullis, with more code on the path, longer than the
        // do-nothing server. h2load warms up at full speed with the first request; the unique-token
        // scenario warms up with other tokens so its measured tokens start uncached.
        if (h2.path !== undefined && drivers.includes('h2load') && id !== 'jwt-unique') {
          await runH2load({ h2load: h2.path, port: target.port, body: s.h2loadBody, load: { ...o.h2loadLoad, durationS: o.warmupS, warmupS: 0 }, cpu: o.loadCpu })
        } else if (ghz.path !== undefined && drivers.includes('ghz')) {
          await runGhz({
            ghz: ghz.path,
            protoset,
            port: target.port,
            dataFile: warmData,
            load: { ...o.ghzLoad, durationS: o.warmupS },
            cpu: o.loadCpu,
            outFile: join(s.dir, 'warmup.json'),
          })
        }
        for (const driver of drivers) {
          if (driver === 'h2load' && id === 'jwt-unique') continue // one body for every call
          // The unique-token run is not repeated: its tokens are cached after one pass.
          for (let attempt = 1; attempt <= (id === 'jwt-unique' || (o.quietWaitS ?? 0) === 0 ? 1 : 3); attempt++) {
            const before = target.metricsUrl === undefined ? undefined : await scrape(target.metricsUrl)
            const meter = new CpuMeter([target.pid]).start(250)
            let rec: Omit<RunRecord, 'serverCpu' | 'cpuUsPerCheck' | 'cores' | 'foreignCpu' | 'rssMiB' | 'scenario' | 'round' | 'driver'>
            /** Checks answered while the meter ran (ghz: all; h2load: undefined, its warm-up is not counted). */
            let answered: number | undefined
            if (driver === 'ghz') {
              const r: GhzResult = await runGhz({
                ghz: ghz.path!,
                protoset,
                port: target.port,
                dataFile: s.ghzData,
                load: { ...o.ghzLoad, durationS: o.durationS },
                cpu: o.loadCpu,
                outFile: join(s.dir, `ghz-r${round}.json`),
              })
              rec = { rps: r.rps, errors: r.errors, p50Ms: r.latency.p50Ms, p99Ms: r.latency.p99Ms, p999Ms: r.latency.p999Ms, meanMs: r.latency.meanMs, loadGenCpu: r.ghzCpu }
              answered = r.count
            } else {
              const r: H2loadResult = await runH2load({
                h2load: h2.path!,
                port: target.port,
                body: s.h2loadBody,
                load: { ...o.h2loadLoad, durationS: o.durationS, warmupS: Math.min(1, o.durationS / 2) },
                cpu: o.loadCpu,
              })
              rec = { rps: r.rps, errors: r.failed + r.statusOther, meanMs: r.meanMs, loadGenCpu: r.h2loadCpu }
            }
            const m = meter.stop()
            const after = target.metricsUrl === undefined ? undefined : await scrape(target.metricsUrl)
            const rss = rssBytes(target.pid)
            let missRatio: number | undefined
            if (before !== undefined && after !== undefined && id.startsWith('jwt')) {
              const d = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0)
              const hits = d('portcullis_cache_hits_total')
              const misses = d('portcullis_cache_misses_total')
              missRatio = hits + misses > 0 ? misses / (hits + misses) : undefined
            }
            const lag = after?.get('portcullis_nodejs_eventloop_lag_p99_seconds')
            const record: RunRecord = {
              scenario: id,
              round,
              driver,
              ...rec,
              serverCpu: m.perPid.get(target.pid) ?? NaN,
              // ghz: CPU seconds / Checks (ghz may spend seconds parsing a big -B file before
              // sending); h2load: CPU share / rate (its warm-up is metered but not counted).
              cpuUsPerCheck:
                answered !== undefined && answered > 0
                  ? (((m.perPid.get(target.pid) ?? NaN) * m.seconds) / answered) * 1e6
                  : ((m.perPid.get(target.pid) ?? NaN) / rec.rps) * 1e6,
              cores: m.cores,
              foreignCpu: o.serverCpu === undefined ? NaN : Math.max(0, (m.cores[o.serverCpu] ?? NaN) - (m.perPid.get(target.pid) ?? NaN)),
              rssMiB: rss === undefined ? undefined : rss / 1024 / 1024,
              ...(missRatio === undefined ? {} : { missRatio }),
              ...(lag === undefined ? {} : { eventLoopP99Ms: lag * 1000 }),
            }
            const disturbed = record.foreignCpu > 0.1
            if (disturbed && attempt < 3 && id !== 'jwt-unique' && (o.quietWaitS ?? 0) > 0) {
              o.log(`  ${driver} ${id}: other processes took ${(record.foreignCpu * 100).toFixed(0)} % of the server core: measuring again`)
              await waitQuiet(0.15, Math.min(60, o.quietWaitS ?? 0))
              continue
            }
            runs.push(record)
            o.log(`  ${driver.padEnd(6)} ${id.padEnd(13)} ${Math.round(record.rps).toString().padStart(6)} rps  ${record.cpuUsPerCheck.toFixed(1)} µs CPU/Check  server CPU ${(record.serverCpu * 100).toFixed(0)}%  load gen CPU ${(record.loadGenCpu * 100).toFixed(0)}%  cores ${record.cores.map((c) => `${(c * 100).toFixed(0)}%`).join('/')}${record.foreignCpu > 0.05 ? ` (foreign ${(record.foreignCpu * 100).toFixed(0)}% on server core)` : ''}${record.p99Ms === undefined ? '' : `  p50 ${record.p50Ms!.toFixed(2)} ms p99 ${record.p99Ms.toFixed(2)} ms`}${record.errors > 0 ? `  ERRORS ${record.errors}` : ''}${missRatio === undefined ? '' : `  miss ${(missRatio * 100).toFixed(0)}%`}`)
            break
          }
        }
      } finally {
        await target?.stop()
        await stub?.stop()
      }
    }
  }
  const { log: _log, ...options } = o
  return {
    date: new Date().toISOString(),
    machine: machineInfo(ghz.version, h2.version),
    options,
    scenarios: o.scenarios.map((id) => {
      const s = prepared.get(id)!.s
      return { id, description: DESCRIPTIONS[id], rules: s.rules, requestBytes: s.requestBytes, distinctRequests: s.distinctRequests }
    }),
    runs,
    skipped,
  }
}

export function machineInfo(ghzVersion: string | undefined, h2loadVersion: string | undefined): Record<string, unknown> {
  let cpu = 'unknown'
  let kernel = 'unknown'
  try {
    cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()
  } catch {
    // not Linux
  }
  return {
    cpu,
    cores: cpus().length,
    kernel,
    node: process.version,
    v8: process.versions.v8,
    grpcJs: grpcJsVersion(),
    ghz: ghzVersion,
    h2load: h2loadVersion,
    loadAverage1m: loadAverage(),
  }
}

function grpcJsVersion(): string {
  const u = join(REPO_ROOT, 'node_modules', '@grpc', 'grpc-js', 'package.json')
  return existsSync(u) ? (JSON.parse(readFileSync(u, 'utf8')) as { version: string }).version : 'unknown'
}
