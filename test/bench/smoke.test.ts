/**
 * CI smoke run of the Check benchmark harness (bench/): every scenario (do-nothing baselines,
 * Portcullis with each rule set, the introspection stub) through ghz and h2load for about a second
 * each, servers pinned as in the real run. It proves the harness, the fixtures and the rule sets
 * work end to end — every request answered, none denied — and never asserts timing: figures from a
 * CI machine mean nothing. Skipped, with the reason, when ghz is not installed (`go install
 * github.com/bojand/ghz/cmd/ghz@v0.120.0`) or the build output is missing (`npm run build`).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SCENARIOS } from '../../bench/fixtures/scenarios.js'
import { runBench, type BenchReport } from '../../bench/ghz/bench.js'
import { findGhz } from '../../bench/ghz/ghz.js'
import { BASELINE, CLI, STUB } from '../../bench/ghz/servers.js'
import { findH2load } from '../../bench/h2load/h2load.js'
import { progressiveSvg, sloBreach } from '../../bench/progressive.js'
import { markdown, throughputSvg } from '../../bench/run.js'

const ghz = findGhz()
const h2load = findH2load()
const built = [CLI, BASELINE, STUB].every((f) => existsSync(f))
const skipReason =
  ghz.path === undefined ? ghz.missing : !built ? `the build output is missing (${CLI}): run \`npm run build\` (\`npm test\` does)` : undefined
if (skipReason !== undefined) console.warn(`[bench smoke] SKIPPED: ${skipReason}`)
if (skipReason === undefined && h2load.path === undefined) console.warn(`[bench smoke] h2load part skipped: ${h2load.missing}`)

describe.skipIf(skipReason !== undefined)('bench harness smoke (seconds, no timing assertions)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-smoke-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  let report: BenchReport

  it('runs every scenario through every available driver; every Check is answered, none denied', async () => {
    const lines: string[] = []
    report = await runBench({
      scenarios: SCENARIOS,
      drivers: h2load.path === undefined ? ['ghz'] : ['ghz', 'h2load'],
      rounds: 1,
      durationS: 1,
      warmupS: 0.5,
      ghzLoad: { connections: 2, concurrency: 16 },
      h2loadLoad: { connections: 2, streamsPerConnection: 8 },
      serverCpu: 0,
      loadCpu: 1,
      outDir: dir,
      decisionSample: 0.01,
      uniqueTokens: 2000,
      install: false,
      log: (l) => lines.push(l),
    })
    expect(report.skipped).toEqual([])
    for (const s of report.scenarios) {
      // The ~1.4 KB Envoy-like request of every scenario.
      expect(s.requestBytes).toBeGreaterThan(1300)
      expect(s.requestBytes).toBeLessThan(1600)
    }
    const expected = SCENARIOS.length * (h2load.path === undefined ? 1 : 2) - (h2load.path === undefined ? 0 : 1) // no h2load for unique tokens
    expect(report.runs.length, lines.join('\n')).toBe(expected)
    for (const r of report.runs) {
      expect(r.rps, `${r.driver} ${r.scenario}`).toBeGreaterThan(0)
      // ghz counts non-OK gRPC statuses as errors; h2load non-2xx: a denial or failure would show here.
      expect(r.errors, `${r.driver} ${r.scenario}`).toBe(0)
      expect(Number.isFinite(r.serverCpu)).toBe(true)
    }
    const unique = report.runs.find((r) => r.scenario === 'jwt-unique')
    expect(unique?.missRatio).toBeGreaterThan(0)
  }, 240_000)

  it('renders the tables and the plots', () => {
    expect(report).toBeDefined()
    const md = markdown(report)
    expect(md).toContain('| baseline |')
    expect(md).toContain('ceiling: jwt-cached / baseline')
    expect(md).toContain('rule count: rules-10k / jwt-cached')
    expect(throughputSvg(report)).toMatch(/^<\?xml[\s\S]*<\/svg>\n$/)
    const slo = { p99Ms: 5, errorRatio: 0.001, minAchieved: 0.95 }
    const step = { offeredRps: 1000, achievedRps: 999, p50Ms: 0.5, p99Ms: 2, p999Ms: 4, errors: 0, errorRatio: 0, serverCpu: 0.2, rssMiB: 100, eventLoopP99Ms: 1 }
    expect(sloBreach(step, slo)).toBeUndefined()
    expect(sloBreach({ ...step, p99Ms: 6 }, slo)).toMatch(/p99/)
    expect(sloBreach({ ...step, achievedRps: 500 }, slo)).toMatch(/achieved/)
    expect(progressiveSvg('x', [{ ...step, breaks: undefined }], [[0, 100], [1, 101]], slo, 'caption')).toContain('</svg>')
  })
})
