/**
 * `npm run bench`: the whole Check throughput table in one bounded run (≈ 8 minutes with the
 * defaults): the do-nothing baselines and Portcullis with every rule set, through ghz and h2load,
 * server pinned to core 0 and load generator to core 1, two rounds in rotated order. Prints the
 * tables (markdown, as in bench/RESULTS.md), the ceiling and rule-count ratios, and writes
 * `bench/out/check-<date>.json` (every run) plus `bench/results/throughput.svg` with
 * `--write-results`.
 *
 * Options: --duration S (10) --warmup S (10) --rounds N (2) --scenarios a,b,… --drivers ghz,h2load
 * --connections N (4) --concurrency N (64) --h2-streams N (16) --decision-sample R
 * --unique-tokens N (50000) --no-install --server-cpu N (0) --load-cpu N (1) --write-results
 * --node-arg=FLAG (repeatable, for every server) --cli PATH (another Portcullis build)
 * --report FILE (re-render the tables of a saved run; with --write-results, its plot too)
 * --quiet-wait S (120: wait up to S seconds for a quiet machine before each target, and measure
 * again a run during which other processes took > 10 % of the server core; 0 turns both off)
 *
 * The progressive-load run (latency vs offered load, RSS over time) is bench/progressive.ts.
 * @module
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { SCENARIOS, type ScenarioId } from './fixtures/scenarios.js'
import { median, medianRun, runBench, type BenchReport, type RunRecord } from './ghz/bench.js'
import { pinSelf } from './ghz/proc.js'
import { REPO_ROOT } from './ghz/servers.js'
import { barChart, svgDocument } from './ghz/svg.js'

export const CEILING_TARGET = 0.85
export const RULES_TARGET = 0.9

const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(0)} %`)
const ms = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2))
const int = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'))

/** Ratio of median RPS (a / b) for one driver, or undefined. */
export function ratio(report: BenchReport, a: ScenarioId, b: ScenarioId, driver: 'ghz' | 'h2load'): number | undefined {
  const ra = report.runs.filter((r) => r.scenario === a && r.driver === driver).map((r) => r.rps)
  const rb = report.runs.filter((r) => r.scenario === b && r.driver === driver).map((r) => r.rps)
  if (ra.length === 0 || rb.length === 0) return undefined
  return median(ra) / median(rb)
}

/** Ratio of median CPU cost per Check (b / a: higher is better, like the RPS ratio), or undefined. */
export function cpuRatio(report: BenchReport, a: ScenarioId, b: ScenarioId, driver: 'ghz' | 'h2load'): number | undefined {
  const ca = report.runs.filter((r) => r.scenario === a && r.driver === driver).map((r) => -r.cpuUsPerCheck)
  const cb = report.runs.filter((r) => r.scenario === b && r.driver === driver).map((r) => -r.cpuUsPerCheck)
  if (ca.length === 0 || cb.length === 0) return undefined
  // Upper median of the negated costs = the lower median cost, as for RPS.
  return median(cb) / median(ca)
}

/** Per-round ratios (a and b measured in the same round), to show the spread. */
export function roundRatios(report: BenchReport, a: ScenarioId, b: ScenarioId, driver: 'ghz' | 'h2load'): number[] {
  const out: number[] = []
  const rounds = new Set(report.runs.map((r) => r.round))
  for (const round of rounds) {
    const ra = report.runs.find((r) => r.round === round && r.scenario === a && r.driver === driver)
    const rb = report.runs.find((r) => r.round === round && r.scenario === b && r.driver === driver)
    if (ra !== undefined && rb !== undefined) out.push(ra.rps / rb.rps)
  }
  return out
}

export function markdown(report: BenchReport): string {
  const lines: string[] = []
  const drivers = [...new Set(report.runs.map((r) => r.driver))]
  for (const driver of drivers) {
    lines.push(`**${driver}** (median of ${report.options.rounds} rounds × ${report.options.durationS} s, upper median for an even count; ${driver === 'ghz' ? `${report.options.ghzLoad.connections} connections, ${report.options.ghzLoad.concurrency} concurrent calls` : `${report.options.h2loadLoad.connections} connections × ${report.options.h2loadLoad.streamsPerConnection} streams`})`)
    lines.push('')
    const head = driver === 'ghz'
      ? '| scenario | Check/s | vs baseline | CPU µs/Check | p50 ms | p99 ms | p99.9 ms | server CPU | ghz CPU | RSS MiB | errors | notes |'
      : '| scenario | Check/s | vs baseline | CPU µs/Check | mean ms | server CPU | h2load CPU | RSS MiB | errors | notes |'
    lines.push(head)
    lines.push(head.replace(/[^|]+/g, (c) => (c.trim() === 'scenario' || c.trim() === 'notes' ? '---' : '---:')))
    const base = medianRun(report.runs, 'baseline', driver)
    for (const s of report.scenarios) {
      const r: RunRecord | undefined = medianRun(report.runs, s.id, driver)
      if (r === undefined) continue
      const rel = base === undefined ? undefined : ratio(report, s.id, 'baseline', driver)
      const notes = [
        r.missRatio === undefined ? '' : `jwt cache misses ${pct(r.missRatio)}`,
        r.eventLoopP99Ms === undefined ? '' : `event-loop p99 ${ms(r.eventLoopP99Ms)} ms`,
      ].filter((x) => x !== '').join('; ')
      lines.push(
        driver === 'ghz'
          ? `| ${s.id} | ${int(r.rps)} | ${rel === undefined ? '–' : rel.toFixed(2)} | ${r.cpuUsPerCheck.toFixed(1)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.p999Ms)} | ${pct(r.serverCpu)} | ${pct(r.loadGenCpu)} | ${int(r.rssMiB)} | ${r.errors} | ${notes} |`
          : `| ${s.id} | ${int(r.rps)} | ${rel === undefined ? '–' : rel.toFixed(2)} | ${r.cpuUsPerCheck.toFixed(1)} | ${ms(r.meanMs)} | ${pct(r.serverCpu)} | ${pct(r.loadGenCpu)} | ${int(r.rssMiB)} | ${r.errors} | ${notes} |`,
      )
    }
    lines.push('')
  }
  lines.push('| target | driver | ratio (median RPS) | per round | ratio of CPU µs/Check | goal | met (RPS) |')
  lines.push('|---|---|---:|---|---:|---:|---|')
  for (const driver of drivers) {
    const c = ratio(report, 'jwt-cached', 'baseline', driver)
    if (c !== undefined) {
      lines.push(`| ceiling: jwt-cached / baseline | ${driver} | ${c.toFixed(3)} | ${roundRatios(report, 'jwt-cached', 'baseline', driver).map((x) => x.toFixed(3)).join(', ')} | ${cpuRatio(report, 'jwt-cached', 'baseline', driver)?.toFixed(3) ?? '–'} | ≥ ${CEILING_TARGET} | ${c >= CEILING_TARGET ? 'yes' : 'no'} |`)
    }
    const rc = ratio(report, 'rules-10k', 'jwt-cached', driver)
    if (rc !== undefined) {
      lines.push(`| rule count: rules-10k / jwt-cached (10 rules) | ${driver} | ${rc.toFixed(3)} | ${roundRatios(report, 'rules-10k', 'jwt-cached', driver).map((x) => x.toFixed(3)).join(', ')} | ${cpuRatio(report, 'rules-10k', 'jwt-cached', driver)?.toFixed(3) ?? '–'} | ≥ ${RULES_TARGET} | ${rc >= RULES_TARGET ? 'yes' : 'no'} |`)
    }
  }
  return lines.join('\n')
}

export function throughputSvg(report: BenchReport): string {
  const drivers = [...new Set(report.runs.map((r) => r.driver))]
  const cats = report.scenarios.map((s) => s.id)
  const colors: Record<string, string> = { ghz: '#3b6fb6', h2load: '#e08a2c' }
  const base = medianRun(report.runs, 'baseline', drivers.includes('h2load') ? 'h2load' : 'ghz')?.rps
  const panel = barChart({
    title: 'Check throughput, server pinned to one core (median round)',
    yLabel: 'Check/s',
    categories: cats,
    series: drivers.map((d) => ({ label: d, color: colors[d] ?? '#777', values: cats.map((c) => medianRun(report.runs, c, d)?.rps) })),
    ...(base === undefined ? {} : { hLines: [{ y: base * CEILING_TARGET, label: `${CEILING_TARGET} × baseline (${drivers.includes('h2load') ? 'h2load' : 'ghz'})`, color: '#c0392b' }] }),
  })
  const m = report.machine
  return svgDocument([panel], `${report.date}: ${String(m['cpu'])}, ${String(m['cores'])} cores; Node ${String(m['node'])}; grpc-js ${String(m['grpcJs'])}; ${String(m['ghz'])}; ${String(m['h2load'])}`)
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '2' },
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      drivers: { type: 'string', default: 'ghz,h2load' },
      connections: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '64' },
      'h2-connections': { type: 'string', default: '4' },
      'h2-streams': { type: 'string', default: '16' },
      'decision-sample': { type: 'string' },
      'unique-tokens': { type: 'string', default: '50000' },
      'no-install': { type: 'boolean', default: false },
      'server-cpu': { type: 'string', default: '0' },
      'load-cpu': { type: 'string', default: '1' },
      'write-results': { type: 'boolean', default: false },
      'node-arg': { type: 'string', multiple: true },
      cli: { type: 'string' },
      'quiet-wait': { type: 'string', default: '120' },
      out: { type: 'string' },
      /** Re-render the tables and the plot of a saved run (bench/out/check-*.json) without running. */
      report: { type: 'string' },
    },
  })
  if (values.report !== undefined) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8')) as BenchReport
    console.log(`decision log: ${saved.options.decisionSample === undefined ? 'every decision (default)' : `sampled at ${saved.options.decisionSample}`}\n\n${markdown(saved)}`)
    if (values['write-results']) writeFileSync(join(REPO_ROOT, 'bench', 'results', 'throughput.svg'), throughputSvg(saved))
    return
  }
  const scenarios = values.scenarios.split(',').map((s) => s.trim()) as ScenarioId[]
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s} (known: ${SCENARIOS.join(', ')})`)
  const loadCpu = Number(values['load-cpu'])
  pinSelf(loadCpu)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const outDir = values.out === undefined ? join(REPO_ROOT, 'bench', 'out', `check-${stamp}`) : resolve(values.out)
  const t0 = Date.now()
  const report = await runBench({
    scenarios,
    drivers: values.drivers.split(',').map((d) => d.trim()) as ('ghz' | 'h2load')[],
    rounds: Number(values.rounds),
    durationS: Number(values.duration),
    warmupS: Number(values.warmup),
    ghzLoad: { connections: Number(values.connections), concurrency: Number(values.concurrency) },
    h2loadLoad: { connections: Number(values['h2-connections']), streamsPerConnection: Number(values['h2-streams']) },
    serverCpu: Number(values['server-cpu']),
    loadCpu,
    outDir,
    decisionSample: values['decision-sample'] === undefined ? undefined : Number(values['decision-sample']),
    uniqueTokens: Number(values['unique-tokens']),
    install: !values['no-install'],
    nodeArgs: values['node-arg'] ?? [],
    ...(values.cli === undefined ? {} : { cli: resolve(values.cli) }),
    quietWaitS: Number(values['quiet-wait']),
    log: (l) => console.error(l),
  })
  const json = join(REPO_ROOT, 'bench', 'out', `check-${stamp}.json`)
  mkdirSync(join(REPO_ROOT, 'bench', 'out'), { recursive: true })
  writeFileSync(json, JSON.stringify(report, null, 2))
  const md = markdown(report)
  writeFileSync(join(outDir, 'summary.md'), md)
  console.log(`\nmachine: ${JSON.stringify(report.machine)}`)
  console.log(`decision log: ${report.options.decisionSample === undefined ? 'every decision (default)' : `sampled at ${report.options.decisionSample}`}`)
  if (report.skipped.length > 0) console.log(`skipped: ${report.skipped.join('; ')}`)
  console.log(`\n${md}\n`)
  const svg = throughputSvg(report)
  writeFileSync(join(outDir, 'throughput.svg'), svg)
  if (values['write-results']) {
    mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
    writeFileSync(join(REPO_ROOT, 'bench', 'results', 'throughput.svg'), svg)
  }
  console.log(`raw results: ${json}; took ${Math.round((Date.now() - t0) / 1000)} s`)
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
