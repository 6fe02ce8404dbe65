/**
 * Micro-benchmark of the rule URL matcher (`src/rules/matcher.ts`): build time and `match()`
 * cost for 10, 1 000 and 10 000 rules, `regexp` and `glob`, on hits of the first and the last
 * rule, misses, and a mix of the three; plus the per-test cost of the two V8 regexp engines that
 * motivated the engine choice (`src/rules/matcher-engine.ts`).
 *
 * A plain Node script: `npm run bench` (compiles with tsc, runs `node dist/bench/matcher.bench.js`
 * from the repository root). Writes `bench/out/matcher.json` (or the path given with `--out`)
 * and prints a Markdown table. Fixed iteration counts after a warm-up; rounds for the three rule
 * set sizes are interleaved (so a change in machine load hits all sizes alike) and the median and
 * minimum per round are reported; the whole run stops early (and says so) after ~50 s.
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release } from 'node:os'
import { dirname, resolve } from 'node:path'
import { buildMatcher, type MatcherEntry, type RuleMatcher } from '../src/rules/matcher.js'
import { compileIndexedPattern, type MatchingStrategy } from '../src/rules/pattern.js'
import { BACKTRACKS_BEFORE_FALLBACK, REGEXP_ENGINE, type RegexpEngine } from '../src/rules/matcher-engine.js'

const SIZES = [10, 1_000, 10_000] as const
const STRATEGIES: readonly MatchingStrategy[] = ['regexp', 'glob']
const WARMUP_OPS = 200_000
const ROUND_OPS = 200_000
const ROUNDS = 7
const BUILD_REPEATS = 3
const TIME_BUDGET_MS = 50_000

interface MatchRow {
  readonly strategy: MatchingStrategy
  readonly rules: number
  readonly scenario: string
  /** Median over rounds. */
  readonly nsPerOp: number
  readonly opsPerSec: number
  /** Fastest round: the least disturbed by other load on the machine. */
  readonly minNsPerOp: number
}

interface BuildRow {
  readonly strategy: MatchingStrategy
  readonly rules: number
  readonly buildMs: number
  readonly usPerRule: number
}

interface EngineRow {
  readonly pattern: string
  readonly input: string
  readonly engine: RegexpEngine
  readonly nsPerTest: number
}

const started = performance.now()
let truncated = false
/** Keeps results observable so the JIT cannot drop the loops. */
let sink = 0

main()

function main(): void {
  const loadBefore = loadavg()
  const matchRows: MatchRow[] = []
  const buildRows: BuildRow[] = []
  for (const strategy of STRATEGIES) {
    if (overBudget()) break
    const matchers = SIZES.map((rules) => {
      const { matcher, buildMs } = timeBuild(ruleSet(strategy, rules), strategy)
      buildRows.push({ strategy, rules, buildMs, usPerRule: (buildMs * 1000) / rules })
      return { rules, matcher, scenarios: scenarios(strategy, rules) }
    })
    const scenarioNames = matchers[0]?.scenarios.map(([name]) => name) ?? []
    for (const [index, scenario] of scenarioNames.entries()) {
      if (overBudget()) break
      const runs = matchers.map(({ matcher, scenarios: all }) => ({ matcher, requests: all[index]?.[1] ?? [] }))
      const rounds = timeMatch(runs)
      matchers.forEach(({ rules }, i) => {
        const perRound = rounds[i] ?? []
        const nsPerOp = median(perRound)
        matchRows.push({ strategy, rules, scenario, nsPerOp, opsPerSec: 1e9 / nsPerOp, minNsPerOp: Math.min(...perRound) })
      })
    }
  }
  const engineRows = overBudget() ? [] : compareEngines()
  report(matchRows, buildRows, engineRows, [loadBefore, loadavg()])
}

/**
 * `n` rules in four realistic shapes, each with its own literal prefix (service `i`). Values
 * are rule numbers, so a result can be checked.
 */
function ruleSet(strategy: MatchingStrategy, n: number): MatcherEntry<number>[] {
  const entries: MatcherEntry<number>[] = []
  for (let i = 0; i < n; i++) {
    const url =
      strategy === 'regexp'
        ? [
            `https://api.example.com/svc${i}/<.*>`,
            `https://api.example.com/users${i}/<[0-9]+>/profile`,
            `<http|https>://svc${i}.example.com/<.*>`,
            `https://svc${i}.example.com/items/<[a-z0-9-]+>/<[0-9a-f]{8}>`,
          ][i % 4]
        : [
            `https://api.example.com/svc${i}/<**>`,
            `https://api.example.com/users${i}/<*>/profile`,
            `<{http,https}>://svc${i}.example.com/<**>`,
            `https://svc${i}.example.com/static/<**>.css`,
          ][i % 4]
    entries.push({ methods: ['GET', 'POST'], url: url ?? '', value: i })
  }
  return entries
}

type Request = readonly [method: string, url: string, expected: number | 'none']

/** Eight distinct URLs per scenario, so no single string stays hot in every cache. */
function scenarios(strategy: MatchingStrategy, n: number): [string, Request[]][] {
  const hit = (i: number, k: number): Request => {
    const urls = [
      `https://api.example.com/svc${i}/v1/orders/${k}`,
      `https://api.example.com/users${i}/${1000 + k}/profile`,
      `https://svc${i}.example.com/a/b/${k}`,
      strategy === 'regexp'
        ? `https://svc${i}.example.com/items/item-${k}/deadbee${k}`
        : `https://svc${i}.example.com/static/css/site-${k}.css`,
    ]
    return ['GET', urls[i % 4] ?? '', i]
  }
  const eight = (f: (k: number) => Request): Request[] => Array.from({ length: 8 }, (_, k) => f(k))
  const first = eight((k) => hit(0, k))
  const last = eight((k) => hit(n - 1, k))
  const missKnown = eight((k): Request => ['GET', `https://api.example.com/svc${n + k}/x`, 'none'])
  const missHost = eight((k): Request => ['GET', `https://unknown${k}.example.org/svc1/x`, 'none'])
  const mix = [first, last, missKnown, missHost].flatMap((s) => s.slice(0, 2))
  return [
    ['hit first rule', first],
    ['hit last rule', last],
    ['miss, known prefix', missKnown],
    ['miss, unknown host', missHost],
    ['mix (25 % each)', mix],
  ]
}

function timeBuild(
  entries: readonly MatcherEntry<number>[],
  strategy: MatchingStrategy,
): { matcher: RuleMatcher<number>; buildMs: number } {
  const times: number[] = []
  let matcher: RuleMatcher<number> | undefined
  for (let r = 0; r < BUILD_REPEATS; r++) {
    const t0 = performance.now()
    matcher = buildMatcher(entries, strategy)
    times.push(performance.now() - t0)
  }
  if (matcher === undefined) throw new Error('unreachable')
  return { matcher, buildMs: median(times) }
}

/** ns/op of each round for each run; rounds of the runs are interleaved. */
function timeMatch(runs: readonly { matcher: RuleMatcher<number>; requests: readonly Request[] }[]): number[][] {
  const loop = (matcher: RuleMatcher<number>, requests: readonly Request[], ops: number): void => {
    const mask = requests.length - 1 // 8: a power of two
    for (let i = 0; i < ops; i++) {
      const [method, url] = requests[i & mask] as Request
      sink += matcher.match(method, url).kind.length
    }
  }
  for (const { matcher, requests } of runs) {
    check(matcher, requests)
    loop(matcher, requests, WARMUP_OPS)
  }
  const rounds = runs.map((): number[] => [])
  for (let r = 0; r < ROUNDS; r++) {
    runs.forEach(({ matcher, requests }, i) => {
      const t0 = process.hrtime.bigint()
      loop(matcher, requests, ROUND_OPS)
      rounds[i]?.push(Number(process.hrtime.bigint() - t0) / ROUND_OPS)
    })
  }
  return rounds
}

/** A benchmark of wrong answers is worthless: verify every request once. */
function check(matcher: RuleMatcher<number>, requests: readonly Request[]): void {
  for (const [method, url, expected] of requests) {
    const result = matcher.match(method, url)
    const got = result.kind === 'one' ? result.value : result.kind
    if (got !== expected) throw new Error(`${method} ${url}: expected ${expected}, got ${JSON.stringify(result)}`)
  }
}

/** ns per `test()` of single patterns on both engines, and the pathological inputs. */
function compareEngines(): EngineRow[] {
  const cases: [pattern: string, input: string, label: string][] = [
    ['https://api.example.com/api/v1/users/<[0-9]+>', 'https://api.example.com/api/v1/users/123456', 'hit'],
    ['https://api.example.com/public/<.*>', 'https://api.example.com/public/some/long/path/file.css', 'hit'],
    ['https://api.example.com/public/<.*>', 'https://api.example.com/private/x', 'miss'],
    ['https://h/<.*>/<.*>/<.*>/end', 'https://h/a/b/c/end', 'hit'],
    ['https://h/<.*>/<.*>/<.*>/end', `https://h/${'/'.repeat(3000)}x`, 'evil, 3 000 slashes'],
    ['https://h/<(\\w+\\s?)+>', `https://h/${'a'.repeat(30)}!`, 'evil, 30 × a + !'],
  ]
  const rows: EngineRow[] = []
  for (const engine of ['backtracking-with-linear-fallback', 'linear'] as const) {
    for (const [pattern, input, label] of cases) {
      const compiled = compileIndexedPattern(pattern, 'regexp', engine)
      const ops = input.length > 100 ? 20 : 200_000
      for (let i = 0; i < Math.min(ops, 20_000); i++) sink += compiled.test(input)?.length ?? 0
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < ops; i++) sink += compiled.test(input)?.length ?? 0
      rows.push({ pattern, input: label, engine, nsPerTest: Number(process.hrtime.bigint() - t0) / ops })
    }
  }
  return rows
}

function report(
  matchRows: readonly MatchRow[],
  buildRows: readonly BuildRow[],
  engineRows: readonly EngineRow[],
  load: readonly (readonly number[])[],
): void {
  const cpu = cpus()
  const machine = {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    os: `${platform()} ${release()}`,
    node: process.version,
    v8: process.versions.v8,
    loadAverage1m: load.map((l) => Number((l[0] ?? 0).toFixed(2))),
  }
  const outFile = resolve(argument('--out') ?? 'bench/out/matcher.json')
  mkdirSync(dirname(outFile), { recursive: true })
  const totalMs = performance.now() - started
  writeFileSync(
    outFile,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        regexpEngine: REGEXP_ENGINE,
        backtracksBeforeFallback: BACKTRACKS_BEFORE_FALLBACK,
        settings: { warmupOps: WARMUP_OPS, roundOps: ROUND_OPS, rounds: ROUNDS, buildRepeats: BUILD_REPEATS },
        truncated,
        totalMs: Math.round(totalMs),
        match: matchRows,
        build: buildRows,
        engines: engineRows,
        sink,
      },
      null,
      2,
    )}\n`,
  )

  const lines: string[] = []
  lines.push(`- Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.os}; Node ${machine.node} (V8 ${machine.v8})`)
  lines.push(`- Regexp engine: ${REGEXP_ENGINE} (fallback after ${BACKTRACKS_BEFORE_FALLBACK} backtracks)`)
  lines.push(`- Median (min) of ${ROUNDS} interleaved rounds × ${ROUND_OPS.toLocaleString('en')} matches after ${WARMUP_OPS.toLocaleString('en')} warm-up; total ${(totalMs / 1000).toFixed(1)} s; 1-min load average ${machine.loadAverage1m.join(' → ')}${truncated ? ' (TRUNCATED: time budget hit)' : ''}`)
  lines.push('')
  lines.push('| strategy | scenario | ' + SIZES.map((n) => `${n.toLocaleString('en')} rules: ns/op (min), ops/s`).join(' | ') + ` | ${SIZES.at(-1)?.toLocaleString('en')} vs ${SIZES[0]}: median (min) |`)
  lines.push('|---|---|' + SIZES.map(() => '---:').join('|') + '|---:|')
  for (const strategy of STRATEGIES) {
    const scenarioNames = [...new Set(matchRows.filter((r) => r.strategy === strategy).map((r) => r.scenario))]
    for (const scenario of scenarioNames) {
      const cells = SIZES.map((rules) => matchRows.find((r) => r.strategy === strategy && r.rules === rules && r.scenario === scenario))
      const small = cells[0]
      const large = cells.at(-1)
      const ratio =
        small !== undefined && large !== undefined
          ? `${(large.nsPerOp / small.nsPerOp).toFixed(2)}× (${(large.minNsPerOp / small.minNsPerOp).toFixed(2)}×)`
          : 'n/a'
      const cell = (c: MatchRow | undefined): string =>
        c === undefined ? 'n/a' : `${c.nsPerOp.toFixed(0)} (${c.minNsPerOp.toFixed(0)}), ${formatOps(c.opsPerSec)}`
      lines.push(`| ${strategy} | ${scenario} | ${cells.map(cell).join(' | ')} | ${ratio} |`)
    }
  }
  lines.push('')
  lines.push('| strategy | rules | build (load) time | per rule |')
  lines.push('|---|---:|---:|---:|')
  for (const b of buildRows) {
    lines.push(`| ${b.strategy} | ${b.rules.toLocaleString('en')} | ${b.buildMs.toFixed(1)} ms | ${b.usPerRule.toFixed(1)} µs |`)
  }
  if (engineRows.length > 0) {
    lines.push('')
    lines.push('| single pattern `test()` | input | backtracking + fallback | `l` (linear only) |')
    lines.push('|---|---|---:|---:|')
    const fast = engineRows.filter((r) => r.engine === 'backtracking-with-linear-fallback')
    for (const row of fast) {
      const linear = engineRows.find((r) => r.engine === 'linear' && r.pattern === row.pattern && r.input === row.input)
      lines.push(`| \`${row.pattern.replaceAll('|', '\\|')}\` | ${row.input} | ${formatNs(row.nsPerTest)} | ${linear === undefined ? 'n/a' : formatNs(linear.nsPerTest)} |`)
    }
  }
  lines.push('')
  lines.push(`Results written to ${outFile}`)
  console.log(lines.join('\n'))
}

function overBudget(): boolean {
  if (performance.now() - started > TIME_BUDGET_MS) truncated = true
  return truncated
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}

function formatOps(opsPerSec: number): string {
  return opsPerSec >= 1e6 ? `${(opsPerSec / 1e6).toFixed(1)} M` : `${(opsPerSec / 1e3).toFixed(0)} k`
}

function formatNs(ns: number): string {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`
}

function argument(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}
