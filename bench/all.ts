/**
 * `npm run bench`: every benchmark behind bench/RESULTS.md, one after the other, bounded
 * (≈ 20 minutes on the 2-core benchmark machine). Each part is its own script, runnable alone
 * (`npm run bench:<part>`), and writes its raw results to bench/out/ and its plot to
 * bench/results/:
 *
 * 1. `throughput` — bench/run.ts: the do-nothing baseline server vs Portcullis with each rule set,
 *    ghz and h2load, server and load generator pinned to separate cores; the ceiling ratio
 *    (jwt-cached / baseline ≥ 0.85) and the rule-count ratio (10 000 rules / 10 ≥ 0.9). ≈ 8 min.
 * 2. `progressive-baseline`, `progressive-jwt-cached` — bench/progressive.ts: 2k → 4k → …
 *    Check/s (15 s warm-up, 5 s steps) until the first step that breaks the SLO (p99 ≤ 25 ms,
 *    errors ≤ 0.1 %, ≥ 95 % of the offered rate achieved), for the do-nothing server and for
 *    Portcullis. ≤ 2 × 3 min.
 * 3. `envoy` — bench/envoy/run.ts: latency added by ext_authz through the real Envoy at fixed
 *    open-loop rates (JWT rule, 10 % never-seen tokens). ≈ 6 min.
 * 4. `workers` — bench/envoy/workers.ts: Check throughput with `serve.workers` 1 and 2. ≈ 2 min.
 *
 * The decision log is sampled at 1 % (`log.decision_sample`), as a deployment at thousands of
 * Checks per second would run it.
 *
 * Usage: `node dist/bench/all.js [--only throughput,envoy] [--no-write-results]`. A part that
 * fails (a missing tool: ghz, h2load, Envoy — each says how to install it) is reported and the
 * others still run; the exit code is 1 if any failed.
 * @module
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { REPO_ROOT } from './ghz/servers.js'

interface Part {
  readonly id: string
  readonly script: string
  readonly args: readonly string[]
  /** Arguments that write bench/results/ (left out with --no-write-results). */
  readonly writeArgs: readonly string[]
  /** Hard bound: the part is stopped after this long. */
  readonly timeoutMin: number
}

export const PARTS: readonly Part[] = [
  { id: 'throughput', script: 'run.js', args: ['--rounds', '2', '--decision-sample', '0.01'], writeArgs: ['--write-results'], timeoutMin: 20 },
  // The same steps and SLO for the do-nothing server and for Portcullis: the load generator and the
  // transport have a tail of their own on this machine, so the two are read side by side.
  ...(['baseline', 'jwt-cached'] as const).map((scenario) => ({
    id: `progressive-${scenario}`,
    script: 'progressive.js',
    args: ['--scenario', scenario, '--start', '2000', '--step', '2000', '--max', '20000', '--step-seconds', '5', '--slo-p99-ms', '25', '--decision-sample', '0.01'],
    writeArgs: ['--write-results'],
    timeoutMin: 6,
  })),
  {
    id: 'envoy',
    script: 'envoy/run.js',
    args: ['--rate', '6000', '--duration', '15', '--reps', '1', '--steps', '1000,2000,3000', '--step-duration', '15', '--quiet-wait', '30', '--attempts', '1'],
    writeArgs: [],
    timeoutMin: 15,
  },
  { id: 'workers', script: 'envoy/workers.js', args: ['--duration', '10', '--warmup', '3', '--reps', '2'], writeArgs: [], timeoutMin: 6 },
]

function main(): number {
  const { values } = parseArgs({ options: { only: { type: 'string' }, 'no-write-results': { type: 'boolean', default: false } } })
  const only = values.only?.split(',').filter((s) => s !== '')
  const unknown = only?.filter((id) => !PARTS.some((p) => p.id === id)) ?? []
  if (unknown.length > 0) {
    process.stderr.write(`unknown part(s) ${unknown.join(', ')}; parts: ${PARTS.map((p) => p.id).join(', ')}\n`)
    return 2
  }
  const failed: string[] = []
  for (const part of PARTS.filter((p) => only === undefined || only.includes(p.id))) {
    const args = [join(REPO_ROOT, 'dist', 'bench', part.script), ...part.args, ...(values['no-write-results'] ? [] : part.writeArgs)]
    process.stderr.write(`\n=== bench ${part.id}: node ${args.join(' ')}\n`)
    const t0 = Date.now()
    const r = spawnSync(process.execPath, args, { stdio: 'inherit', timeout: part.timeoutMin * 60_000, killSignal: 'SIGTERM' })
    const took = Math.round((Date.now() - t0) / 1000)
    if (r.status !== 0) {
      failed.push(part.id)
      process.stderr.write(`=== bench ${part.id}: FAILED (${r.error?.message ?? `exit ${String(r.status ?? r.signal)}`}) after ${took} s\n`)
    } else process.stderr.write(`=== bench ${part.id}: done in ${took} s\n`)
  }
  if (failed.length > 0) process.stderr.write(`\nfailed: ${failed.join(', ')}\n`)
  return failed.length > 0 ? 1 : 0
}

// Run only as a script (the test imports PARTS).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main()
