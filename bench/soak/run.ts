/**
 * `npm run soak` (= `npm run build --silent && node dist/bench/soak/run.js`): the memory soak.
 *
 * Default: the gRPC soak (soak.ts) for 300 s at the highest rate the server sustains, unique
 * credentials of 32 B – 4 KiB, half valid, server heap capped at 128 MiB. Writes
 * `bench/out/soak-<timestamp>.{csv,svg}` and prints the figures; exits 1 on any gRPC error,
 * invalid credential allowed, or server crash.
 *
 * `--in-process`: the in-process proof (in-process.ts) with 2 000 000 credentials instead; writes
 * `bench/out/memory-<timestamp>.{csv,svg}` and exits 1 unless the heap plateaus.
 *
 * Options (flag, else environment variable, else default):
 * | flag | env | default | |
 * |---|---|---|---|
 * | `--duration S` | `SOAK_DURATION` | 300 | seconds of load |
 * | `--rate N` | `SOAK_RATE` | 0 | Checks/s; 0 = as fast as answered |
 * | `--sizes A-B` | `SOAK_TOKEN_SIZES` | 32-4096 | credential sizes, bytes (log-uniform) |
 * | `--valid-ratio R` | `SOAK_VALID_RATIO` | 0.5 | fraction of valid credentials |
 * | `--heap-cap MiB` | `SOAK_HEAP_CAP_MB` | 128 | server `--max-old-space-size` |
 * | `--scenarios a,b` | `SOAK_SCENARIOS` | every registered one | introspection, jwt, bearer, cookie |
 * | `--channels N` | `SOAK_CHANNELS` | 4 | gRPC connections |
 * | `--inflight N` | `SOAK_INFLIGHT` | 16 | outstanding Checks per connection |
 * | `--cache-mib N` | `SOAK_CACHE_MIB` | 4 | each handler's `cache.max_cost` (negative: 1/16 of it) |
 * | `--log-level L` | `SOAK_LOG_LEVEL` | warn | server `log.level` (`info` adds a line per decision) |
 * | `--out DIR` | `SOAK_OUT` | bench/out | |
 * | `--in-process` | | | the in-process proof instead |
 * | `--tokens N` | `PORTCULLIS_MEMORY_TOKENS` | 2000000 | credentials (in-process) |
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { filledAt, mb, plateau } from './analysis.js'
import { runInProcess } from './in-process.js'
import { toSvg, type SoakRow } from './report.js'
import { parseScenarios } from './scenarios.js'
import { repoRoot, runSoak } from './soak.js'
import { parseMix } from './tokens.js'

const MiB = 1024 * 1024

function machine(): string {
  const c = cpus()
  return `${c[0]?.model.trim() ?? 'unknown CPU'}, ${c.length} cores, ${platform()} ${release()}; Node ${process.version} (V8 ${process.versions.v8})`
}

function intOpt(flag: string | undefined, env: string, def: number): number {
  const raw = flag ?? process.env[env]
  if (raw === undefined || raw === '') return def
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${env}: expected a non-negative number, got ${JSON.stringify(raw)}`)
  return n
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      rate: { type: 'string' },
      sizes: { type: 'string' },
      'valid-ratio': { type: 'string' },
      'heap-cap': { type: 'string' },
      scenarios: { type: 'string' },
      channels: { type: 'string' },
      inflight: { type: 'string' },
      'cache-mib': { type: 'string' },
      'log-level': { type: 'string' },
      out: { type: 'string' },
      'in-process': { type: 'boolean', default: false },
      tokens: { type: 'string' },
    },
  })
  const root = repoRoot()
  const outDir = resolve(root, values.out ?? process.env['SOAK_OUT'] ?? 'bench/out')
  const mix = parseMix(values.sizes ?? process.env['SOAK_TOKEN_SIZES'], values['valid-ratio'] ?? process.env['SOAK_VALID_RATIO'])
  const scenariosRaw = values.scenarios ?? process.env['SOAK_SCENARIOS']
  const scenarios = scenariosRaw === undefined || scenariosRaw === '' ? undefined : parseScenarios(scenariosRaw)
  const started = new Date()
  console.log(`machine: ${machine()}; 1-min load ${loadavg()[0]!.toFixed(2)}`)

  if (values['in-process']) return inProcess(intOpt(values.tokens, 'PORTCULLIS_MEMORY_TOKENS', 2_000_000), mix, scenarios, outDir, started)

  const cacheMib = intOpt(values['cache-mib'], 'SOAK_CACHE_MIB', 4)
  const opts = {
    durationS: intOpt(values.duration, 'SOAK_DURATION', 300),
    rate: intOpt(values.rate, 'SOAK_RATE', 0),
    mix,
    heapCapMb: intOpt(values['heap-cap'], 'SOAK_HEAP_CAP_MB', 128),
    channels: intOpt(values.channels, 'SOAK_CHANNELS', 4),
    inflight: intOpt(values.inflight, 'SOAK_INFLIGHT', 16),
    sizing: { maxCost: Math.round(cacheMib * MiB), negativeMaxCost: Math.max(64 * 1024, Math.round((cacheMib * MiB) / 16)) },
    logLevel: values['log-level'] ?? process.env['SOAK_LOG_LEVEL'] ?? 'warn',
    ...(scenarios === undefined ? {} : { scenarios }),
  }
  console.log(
    `soak: ${opts.durationS} s, rate ${opts.rate === 0 ? 'max' : `${opts.rate}/s`}, credentials ${mix.minBytes}-${mix.maxBytes} B ` +
      `(${mix.validRatio * 100} % valid), server heap cap ${opts.heapCapMb} MiB, ${opts.channels} channels × ${opts.inflight} in flight, ` +
      `caches ${cacheMib} MiB + ${cacheMib / 16} MiB each`,
  )
  let printed = -1
  const r = await runSoak({
    ...opts,
    outDir,
    plotNotes: [`${started.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${machine()}`],
    onRow: (row) => {
      if (Math.floor(row.t / 10) > printed) {
        printed = Math.floor(row.t / 10)
        console.log(
          `  t=${row.t.toFixed(0).padStart(4)} s  ${String(row.rate).padStart(6)}/s  RSS ${row.rssMb.toFixed(1).padStart(6)} MiB  ` +
            `heap ${Number.isNaN(row.heapUsedMb) ? '   -  ' : row.heapUsedMb.toFixed(1).padStart(6)} MiB  cache ${mb(row.cacheBytes).padStart(5)} MiB  ` +
            `p99 ${row.p99Ms} ms  errors ${row.errors}`,
        )
      }
    },
  })
  const f = r.figures
  const t = r.totals
  const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0)
  console.log(
    [
      '',
      `scenarios: ${r.scenarios.join(', ')}`,
      `duration ${f.durationS.toFixed(0)} s, ${f.checks.toLocaleString('en-US')} Checks answered, ${f.rate}/s`,
      `RSS: start ${f.rssStartMb.toFixed(1)} MiB, at 25 % ${f.rssAt25Mb.toFixed(1)} MiB, plateau (median of 2nd half) ${f.rssPlateauMb.toFixed(1)} MiB, ` +
        `end ${f.rssEndMb.toFixed(1)} MiB, max ${f.rssMaxMb.toFixed(1)} MiB; slope after 25 %: ${f.rssSlopeMbPerMin.toFixed(3)} MiB/min`,
      `heap used: start ${f.heapStartMb.toFixed(1)} MiB, plateau ${f.heapPlateauMb.toFixed(1)} MiB, end ${f.heapEndMb.toFixed(1)} MiB, ` +
        `max ${f.heapMaxMb.toFixed(1)} MiB (cap ${r.heapCapMb} MiB); slope after 25 %: ${f.heapSlopeMbPerMin.toFixed(3)} MiB/min; ` +
        `floor (lowest of each 10 s) ${f.heapFloorMb.toFixed(1)} MiB, slope after 25 % ${f.heapFloorSlopeMbPerMin.toFixed(3)} MiB/min`,
      `caches: max ${mb(f.cacheMaxBytes)} MiB held; latency p99 max ${f.p99MaxMs} ms; event-loop delay p99 max ${f.eventLoopP99MaxMs} ms`,
      `answers: ${t.allowed} allowed, ${t.denied401} invalid denied 401, valid denied ${sum(t.validDenied)} ${JSON.stringify(t.validDenied)}, ` +
        `invalid allowed ${t.invalidAllowed}, invalid denied otherwise ${sum(t.invalidOther)}, gRPC errors ${sum(t.grpcErrors)} ${JSON.stringify(t.grpcErrors)}`,
      `server: ${r.server.crashed ? `CRASHED (code ${r.server.exitCode}, signal ${r.server.signal})${r.server.oom ? ', out of heap' : ''}` : 'stopped cleanly'}`,
      r.files === undefined ? '' : `wrote ${relative(root, r.files.csv)} and ${relative(root, r.files.svg)}`,
    ].join('\n'),
  )
  if (r.server.crashed) console.log(r.server.stderrTail.join('\n'))
  // Denials of valid credentials (503 when the box is saturated) are reported, not failures.
  const failed = r.server.crashed || t.invalidAllowed > 0 || sum(t.grpcErrors) > 0
  return failed ? 1 : 0
}

async function inProcess(tokens: number, mix: ReturnType<typeof parseMix>, scenarios: ReturnType<typeof parseScenarios> | undefined, outDir: string, started: Date): Promise<number> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const sampleEvery = Math.max(10_000, Math.round(tokens / 100 / 1000) * 1000)
  console.log(`in-process proof: ${tokens.toLocaleString('en-US')} unique credentials, sampled every ${sampleEvery.toLocaleString('en-US')}`)
  let last = performance.now()
  let lastTokens = 0
  const rows: SoakRow[] = []
  const r = await runInProcess({
    tokens,
    sampleEvery,
    mix,
    gc,
    timeLimitMs: 3 * 3600_000,
    ...(scenarios === undefined ? {} : { scenarios }),
    onSample: (s) => {
      const now = performance.now()
      const rate = s.tokens === 0 ? 0 : Math.round(((s.tokens - lastTokens) * 1000) / (now - last))
      last = now
      lastTokens = s.tokens
      rows.push({
        t: s.tokens / 1000,
        rate,
        rssMb: s.rss / MiB,
        heapUsedMb: s.heapUsed / MiB,
        heapTotalMb: s.heapTotal / MiB,
        cacheBytes: s.cacheBytes,
        cacheEntries: s.cacheEntries,
        errors: 0,
        allowed: 0,
        denied: 0,
        validDenied: 0,
        p99Ms: 0,
        eventLoopP99Ms: 0,
        gcPauseMsTotal: 0,
      })
      if (rows.length % 10 === 1) {
        console.log(`  ${String(s.tokens).padStart(8)}  ${(s.ms / 1000).toFixed(0).padStart(5)} s  heapUsed ${mb(s.heapUsed, 2)} MiB  RSS ${mb(s.rss)} MiB  caches ${mb(s.cacheBytes, 2)} MiB`)
      }
    },
  })
  const points = r.samples.map((s): [number, number] => [s.tokens, s.heapUsed])
  const full = filledAt(r.samples, r.capacityBytes)
  const v = plateau(points, r.reservedBytes, full)
  const peak = Math.max(...r.samples.map((s) => s.heapUsed))
  const bound = r.baseline.heapUsed + 1.5 * r.reservedBytes
  const ok = v.ok && peak <= bound && r.mismatches === 0 && r.cacheViolations.length === 0 && !r.stoppedEarly
  console.log(
    [
      '',
      `scenarios: ${r.scenarios.join(', ')}; ${r.tokens.toLocaleString('en-US')} credentials in ${(r.durationMs / 1000).toFixed(0)} s (${Math.round(r.tokens / (r.durationMs / 1000))}/s)${r.stoppedEarly ? ' (STOPPED EARLY)' : ''}`,
      `outcomes: ${JSON.stringify(r.outcomes)}; mismatches ${r.mismatches}`,
      `heapUsed after GC: baseline ${mb(r.baseline.heapUsed, 2)} MiB, peak ${mb(peak, 2)} MiB, last ${mb(r.samples.at(-1)!.heapUsed, 2)} MiB; bound ${mb(bound, 2)} MiB (baseline + 1.5 × ${mb(r.reservedBytes, 2)} MiB reserved)`,
      `caches full at ${full.toLocaleString('en-US')} credentials; slope over the last ${v.points} samples: ${(v.bytesPer100k / 1024).toFixed(2)} KiB per 100k credentials ` +
        `(${v.bytesPerToken.toFixed(4)} B/credential; threshold ${(v.thresholdPer100k / 1024).toFixed(1)} KiB) → ${v.ok ? 'plateau' : 'GROWING'}`,
      `cache limits respected at every sample: ${r.cacheViolations.length === 0 ? 'yes' : r.cacheViolations.join('; ')}`,
      `IdP stub: ${r.stub.requests.toLocaleString('en-US')} requests over ${r.stub.connections} connections`,
    ].join('\n'),
  )
  mkdirSync(outDir, { recursive: true })
  const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const csv = join(outDir, `memory-${stamp}.csv`)
  const svg = join(outDir, `memory-${stamp}.svg`)
  writeFileSync(
    csv,
    `credentials,ms,heap_used_mb,heap_total_mb,rss_mb,external_mb,cache_bytes,cache_entries\n${r.samples
      .map((s) => [s.tokens, s.ms, mb(s.heapUsed, 3), mb(s.heapTotal, 3), mb(s.rss, 3), mb(s.external, 3), s.cacheBytes, s.cacheEntries].join(','))
      .join('\n')}\n`,
  )
  writeFileSync(
    svg,
    toSvg(rows, {
      title: `Portcullis in-process memory proof: ${r.tokens.toLocaleString('en-US')} unique credentials (${r.scenarios.join(', ')})`,
      subtitle: [
        `post-GC heap used: baseline ${mb(r.baseline.heapUsed)} MiB, peak ${mb(peak)} MiB; caches reserve ${mb(r.reservedBytes)} MiB, ` +
          `hold ${mb(r.samples.at(-1)!.cacheBytes)} MiB; ${r.mismatches} wrong decisions`,
        `slope over the second half (caches full): ${(v.bytesPer100k / 1024).toFixed(2)} KiB per 100k credentials (threshold ${(v.thresholdPer100k / 1024).toFixed(0)} KiB)`,
        `${started.toISOString().slice(0, 16).replace('T', ' ')} UTC · ${machine()}`,
      ],
      xLabel: 'credentials processed (thousands)',
      rateLabel: ['credentials/s', 'credentials per second'],
    }),
  )
  console.log(`wrote ${relative(repoRoot(), csv)} and ${relative(repoRoot(), svg)}`)
  return ok ? 0 : 1
}

// Ctrl-C or a CI timeout: exit through 'exit', where soak.ts kills the server and load generator.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
