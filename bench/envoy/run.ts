/**
 * Latency added by ext_authz through the real Envoy, at a fixed open-loop request rate.
 *
 *   npm run build && node dist/bench/envoy/run.js [options]
 *
 * For each run, fresh processes: the upstream (bench/envoy/upstream.ts), Portcullis (the built
 * CLI, JWT rule + header mutator, JWKS served here) and Envoy 1.40 `--concurrency 1` with either
 * envoy/envoy.yaml as is ("ext_authz") or the same config minus the ext_authz filter ("no
 * ext_authz", derived programmatically: support.ts `withoutExtAuthz`). The open-loop generator
 * (open-loop.ts, its own process) sends GET /jwt/items/<n> with a Bearer RS256 JWT: `--miss-ratio`
 * of the requests carry a token never seen before (signature verified), the rest one of `--hot`
 * tokens (cache hits once warm). Both variants get the identical request sequence.
 *
 * Runs: `--reps` × (no ext_authz, ext_authz) at `--rate` for `--duration` s (interleaved, so slow
 * drift of the machine hits both), then one pair per `--steps` rate for `--step-duration` s. Every
 * run has `--warmup` s at its rate first (not recorded). Before each run the script waits up to
 * `--quiet-wait` s for the machine to be idle (other processes under `--quiet-cores`), and it
 * records the CPU every process used during the window, and what else ran.
 *
 * Output: a summary on stdout, raw data in bench/out/envoy-latency-<time>.json, a markdown table
 * in bench/out/envoy-latency-<time>.md and the plot in bench/results/envoy-latency.svg.
 *
 * Options: --rate 6000 --duration 30 --warmup 5 --reps 2 --steps 1000,3000 --step-duration 15
 *          --miss-ratio 0.1 --hot 1000 --connections 64 --workers 1 --quiet-wait 120
 *          --quiet-cores 0.3 --max-other 0.3 --attempts 3 --node-options '' (node/V8 flags for Portcullis, space-separated)
 *          --pin (Portcullis alone on CPU 1, Envoy, upstream, load generator and this script on CPU 0)
 *          --quick (seconds-long smoke: 500/s, 2 s, no steps; the plot goes to bench/out)
 * @module
 */
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Histogram, percentiles, type Percentiles } from './histogram.js'
import type { OpenLoopConfig, OpenLoopMessage, OpenLoopResult } from './open-loop.js'
import {
  cpuModel,
  cpuSeconds,
  envoyConfigs,
  envoyVersion,
  httpGet,
  loadAverage,
  machineBusySeconds,
  makeKey,
  OPEN_LOOP,
  REPO_ROOT,
  serveJwks,
  signTokens,
  sleep,
  startEnvoy,
  startPortcullis,
  startUpstream,
  serverView,
  type Proc,
  type ServerView,
} from './support.js'
import { lineChart, type Series } from './svg.js'
import { pinSelf } from '../ghz/proc.js'

type Variant = 'baseline' | 'ext_authz'
const LABEL: Record<Variant, string> = { baseline: 'Envoy, no ext_authz', ext_authz: 'Envoy + ext_authz (Portcullis)' }

interface Options {
  rate: number
  duration: number
  warmup: number
  reps: number
  steps: number[]
  stepDuration: number
  missRatio: number
  hot: number
  connections: number
  workers: number
  quietWait: number
  quietCores: number
  /** A run during which other processes used more than this many cores is repeated. */
  maxOther: number
  attempts: number
  /** Node/V8 flags for Portcullis (passed as arguments: NODE_OPTIONS refuses most V8 flags). */
  nodeOptions: string
  /** Comma-separated JSON files of earlier runs: no load, report and plot from them instead. */
  replot: string[]
  quick: boolean
  /** Portcullis alone on CPU 1, everything else (Envoy, upstream, load generator, this script) on CPU 0. */
  pin: boolean
}

interface RunRecord {
  readonly variant: Variant
  readonly rate: number
  readonly rep: number
  readonly durationS: number
  readonly latency: Percentiles
  readonly sendLag: Percentiles
  readonly histogram: OpenLoopResult['latency']
  readonly scheduled: number
  readonly completed: number
  readonly ok: number
  readonly statuses: Record<string, number>
  readonly errors: Record<string, number>
  readonly misses: number
  readonly achievedRate: number
  /** CPU cores (CPU seconds / wall seconds) during the recorded window. */
  readonly cores: { envoy: number; portcullis: number; upstream: number; loadgen: number; other: number; machine: number }
  readonly quietBefore: number
  readonly loadAverage: number
  /** Which attempt this is (runs disturbed by other processes are repeated). */
  readonly attempt?: number
  /** Portcullis' own metrics after the run (ext_authz runs). */
  readonly server?: ServerView
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      reps: { type: 'string' },
      steps: { type: 'string' },
      'step-duration': { type: 'string' },
      'miss-ratio': { type: 'string' },
      hot: { type: 'string' },
      connections: { type: 'string' },
      workers: { type: 'string' },
      'quiet-wait': { type: 'string' },
      'quiet-cores': { type: 'string' },
      'max-other': { type: 'string' },
      attempts: { type: 'string' },
      'node-options': { type: 'string' },
      replot: { type: 'string' },
      quick: { type: 'boolean' },
      pin: { type: 'boolean' },
    },
  })
  const num = (v: string | undefined, d: number): number => {
    if (v === undefined) return d
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${v}`)
    return n
  }
  const quick = values.quick === true
  return {
    rate: num(values.rate, quick ? 500 : 6000),
    duration: num(values.duration, quick ? 2 : 30),
    warmup: num(values.warmup, quick ? 1 : 5),
    reps: num(values.reps, quick ? 1 : 2),
    steps: values.steps !== undefined ? values.steps.split(',').filter((s) => s !== '').map((s) => num(s, 0)) : quick ? [] : [1000, 3000],
    stepDuration: num(values['step-duration'], 15),
    missRatio: num(values['miss-ratio'], 0.1),
    hot: num(values.hot, 1000),
    connections: num(values.connections, 64),
    workers: num(values.workers, 1),
    quietWait: num(values['quiet-wait'], quick ? 0 : 120),
    quietCores: num(values['quiet-cores'], 0.3),
    maxOther: num(values['max-other'], 0.3),
    attempts: num(values.attempts, quick ? 1 : 3),
    nodeOptions: values['node-options'] ?? '',
    replot: (values.replot ?? '').split(',').filter((f) => f !== ''),
    quick,
    pin: values.pin === true,
  }
}

const log = (s: string): void => void process.stderr.write(`${s}\n`)

/** Waits until the machine's busy CPU (nothing of ours running) is under `cores`; returns the last figure. */
async function waitQuiet(maxS: number, cores: number): Promise<number> {
  const until = Date.now() + maxS * 1000
  for (;;) {
    const b0 = machineBusySeconds()
    await sleep(2000)
    const busy = (machineBusySeconds() - b0) / 2
    if (busy < cores) return busy
    if (Date.now() > until) {
      log(`  machine still busy (${busy.toFixed(2)} cores used by other processes); running anyway`)
      return busy
    }
    log(`  waiting for a quiet machine: other processes use ${busy.toFixed(2)} cores`)
  }
}

/**
 * `oneRun`, repeated (up to `o.attempts`) while other processes used more than `o.maxOther` cores
 * during it; when every attempt was disturbed, the least disturbed one is kept (and flagged by its
 * `other` figure in the table).
 */
async function measuredRun(o: Options, variant: Variant, rate: number, durationS: number, rep: number, ctx: Parameters<typeof oneRun>[5]): Promise<RunRecord> {
  let best: RunRecord | undefined
  for (let attempt = 1; attempt <= Math.max(1, o.attempts); attempt++) {
    const r: RunRecord = { ...(await oneRun(o, variant, rate, durationS, rep, ctx)), attempt }
    if (best === undefined || r.cores.other < best.cores.other) best = r
    if (r.cores.other <= o.maxOther) return r
    log(`  other processes used ${r.cores.other} cores during the run (limit ${o.maxOther})${attempt < o.attempts ? ': repeating it' : `: keeping the least disturbed attempt (${best.cores.other} cores)`}`)
  }
  return best!
}

async function oneRun(
  o: Options,
  variant: Variant,
  rate: number,
  durationS: number,
  rep: number,
  ctx: { jwksUrl: string; tokensFile: string; hotSample: { token: string; sub: string }; tmp: string },
): Promise<RunRecord> {
  const quietBefore = o.quietWait > 0 ? await waitQuiet(o.quietWait, o.quietCores) : 0
  const procs: Proc[] = []
  try {
    const upstream = await startUpstream()
    procs.push(upstream)
    let portcullis: Awaited<ReturnType<typeof startPortcullis>> | undefined
    if (variant === 'ext_authz') {
      portcullis = await startPortcullis({ jwksUrl: ctx.jwksUrl, workers: o.workers, nodeOptions: o.nodeOptions, ...(o.pin ? { cpus: '1' } : {}), logFile: join(ctx.tmp, `portcullis-${variant}-${rate}-${rep}.log`) })
      procs.push(portcullis)
    }
    // The no-ext_authz config still names the portcullis cluster (unused); any port will do.
    const configs = await envoyConfigs(portcullis?.port ?? 9, upstream.port)
    const envoy = await startEnvoy(variant === 'ext_authz' ? configs.withAuthz : configs.withoutAuthz)
    procs.push(envoy)

    // Sanity: with ext_authz a request without a token is denied and one with a token reaches the
    // upstream with X-User set by the mutator; without it both reach the upstream untouched.
    const base = `http://127.0.0.1:${envoy.port}/jwt/items/0`
    const anon = await httpGet(base, { host: 'api.example.com' })
    const authed = await httpGet(base, { host: 'api.example.com', authorization: `Bearer ${ctx.hotSample.token}` })
    if (variant === 'ext_authz') {
      if (anon.status !== 401) throw new Error(`ext_authz sanity: no token gave ${anon.status}, expected 401`)
      if (authed.status !== 200 || !authed.body.includes(`"user":"${ctx.hotSample.sub}"`)) throw new Error(`ext_authz sanity: ${authed.status} ${authed.body}`)
    } else if (anon.status !== 200 || authed.status !== 200 || !authed.body.includes('"user":null')) {
      throw new Error(`baseline sanity: ${anon.status}/${authed.status} ${authed.body}`)
    }

    const cfg: OpenLoopConfig = {
      origin: `http://127.0.0.1:${envoy.port}`,
      host: 'api.example.com',
      pathPrefix: '/jwt/items/',
      pathCount: 1000,
      rate,
      warmupMs: o.warmup * 1000,
      durationMs: durationS * 1000,
      connections: o.connections,
      timeoutMs: 5_000,
      tokensFile: ctx.tokensFile,
      missRatio: o.missRatio,
      seed: 42,
      expectStatus: 200,
      maxOutstanding: Math.max(1000, rate * 2),
    }
    const pidsOf = (): Record<'envoy' | 'portcullis' | 'upstream', number[]> => ({
      envoy: [envoy.pid],
      portcullis: portcullis?.pids() ?? [],
      upstream: [upstream.pid],
    })
    const cpuOf = (pids: number[]): number => pids.reduce((s, p) => s + (cpuSeconds(p) ?? 0), 0)
    const tag = `[${variant} ${rate}/s${rep > 0 ? ` rep ${rep}` : ''}]`
    const child = fork(OPEN_LOOP, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const kill = (): void => void child.kill('SIGKILL')
    process.once('exit', kill)
    let at0: { t: number; machine: number; cpu: Record<string, number> } | undefined
    const snapshot = (): { t: number; machine: number; cpu: Record<string, number> } => {
      const p = pidsOf()
      return { t: performance.now(), machine: machineBusySeconds(), cpu: { envoy: cpuOf(p.envoy), portcullis: cpuOf(p.portcullis), upstream: cpuOf(p.upstream) } }
    }
    const result = await new Promise<OpenLoopResult>((resolve, reject) => {
      child.on('message', (m: OpenLoopMessage) => {
        if (m.type === 'measuring') at0 = snapshot()
        else if (m.type === 'tick') {
          if (m.second % 5 === 0 || m.second === 1) log(`  ${tag} ${m.second}s: sent ${m.sent}, answered ${m.completed}, outstanding ${m.outstanding}, p99 of last second ${m.p99Ms} ms`)
        } else if (m.type === 'done') resolve(m.result)
        else reject(new Error(m.message))
      })
      child.once('exit', (code) => setTimeout(() => reject(new Error(`load generator exited with ${String(code)}`)), 100))
    })
    process.off('exit', kill)
    const at1 = snapshot()
    const wall = (at1.t - (at0?.t ?? at1.t)) / 1000 || 1
    const d = (k: string): number => ((at1.cpu[k] ?? 0) - (at0?.cpu[k] ?? 0)) / wall
    const machine = (at1.machine - (at0?.machine ?? at1.machine)) / wall
    const ours = d('envoy') + d('portcullis') + d('upstream') + result.cpuSeconds / wall
    const latency = percentiles(Histogram.fromJSON(result.latency))
    const server = portcullis?.metricsUrl === undefined ? undefined : await serverView(portcullis.metricsUrl).catch(() => undefined)
    const record: RunRecord = {
      ...(server === undefined ? {} : { server }),
      variant,
      rate,
      rep,
      durationS,
      latency,
      sendLag: percentiles(Histogram.fromJSON(result.sendLag)),
      histogram: result.latency,
      scheduled: result.scheduled,
      completed: result.completed,
      ok: result.ok,
      statuses: result.statuses,
      errors: result.errors,
      misses: result.misses,
      achievedRate: Math.round(result.completed / Math.max(durationS, result.elapsedMs / 1000)),
      cores: {
        envoy: round2(d('envoy')),
        portcullis: round2(d('portcullis')),
        upstream: round2(d('upstream')),
        loadgen: round2(result.cpuSeconds / wall),
        other: round2(Math.max(0, machine - ours)),
        machine: round2(machine),
      },
      quietBefore: round2(quietBefore),
      loadAverage: loadAverage(),
    }
    if (server !== undefined) {
      const gc = Object.entries(server.gc).map(([k, g]) => `${k} ${g.count}×/${Math.round(g.seconds * 1000)} ms`).join(', ')
      log(`  ${tag} Portcullis itself: ${server.checks} allowed Checks, p50 ≤ ${server.checkP50Ms} ms, p99 ≤ ${server.checkP99Ms} ms, p99.9 ≤ ${server.checkP999Ms} ms; GC ${gc}; event-loop lag max ${server.eventLoopLagMaxMs?.toFixed(1)} ms`)
    }
    log(
      `  ${tag} done: ${record.achievedRate}/s, ok ${record.ok}/${record.scheduled} ${JSON.stringify({ ...record.statuses, ...record.errors })}, p50 ${latency.p50Ms} p99 ${latency.p99Ms} p99.9 ${latency.p999Ms} max ${latency.maxMs} ms; ` +
        `cores: envoy ${record.cores.envoy}, portcullis ${record.cores.portcullis}, upstream ${record.cores.upstream}, loadgen ${record.cores.loadgen}, other ${record.cores.other}`,
    )
    return record
  } finally {
    for (const p of procs.reverse()) await p.stop()
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100

function pooled(records: readonly RunRecord[]): Percentiles {
  const h = new Histogram()
  for (const r of records) h.merge(Histogram.fromJSON(r.histogram))
  return percentiles(h)
}

const ms = (x: number): string => x.toFixed(2)
const perReq = (cores: number, rate: number): string => (rate > 0 && cores > 0 ? String(Math.round((cores / rate) * 1e6)) : '–')

/**
 * `--replot a.json,b.json`: the runs of earlier invocations, keeping for each (variant, rate, rep)
 * the one during which other processes used the least CPU, re-reported and re-plotted.
 */
function replot(o: Options): void {
  const best = new Map<string, RunRecord>()
  let meta: { started: Date; envoyVer: string; tokenBytes: number } | undefined
  for (const f of o.replot) {
    const j = JSON.parse(readFileSync(f, 'utf8')) as { meta: { started: string; envoyVer: string; tokenBytes: number }; records: RunRecord[] }
    meta ??= { ...j.meta, started: new Date(j.meta.started) }
    for (const r of j.records) {
      const k = `${r.variant}/${r.rate}/${r.rate === o.rate ? Math.max(r.rep, 1) : 0}`
      const kept = best.get(k)
      if (kept === undefined || r.cores.other < kept.cores.other) best.set(k, { ...r, rep: r.rate === o.rate ? Math.max(r.rep, 1) : 0 })
    }
  }
  if (meta === undefined) throw new Error('--replot: no files')
  const records = [...best.values()].sort((a, b) => a.rate - b.rate || (a.variant < b.variant ? -1 : 1) || a.rep - b.rep)
  const reps = Math.max(0, ...records.filter((r) => r.rate === o.rate).map((r) => r.rep))
  report({ ...o, reps, quick: false }, records, { ...meta, started: new Date() })
}

async function main(): Promise<void> {
  const o = options()
  if (o.replot.length > 0) return replot(o)
  const started = new Date()
  if (o.pin && !pinSelf(0)) throw new Error('--pin needs taskset (util-linux)')
  const envoyVer = envoyVersion()
  log(`Envoy ${envoyVer}; Node ${process.version}; ${cpus().length} × ${cpuModel()}; load average ${loadAverage()}`)
  const tmp = await mkdtemp(join(tmpdir(), 'portcullis-bench-envoy-run-'))
  const key = makeKey()
  const jwks = await serveJwks(key.jwks)
  try {
    // Fresh tokens: a run consumes about rate × (warmup + duration) × missRatio of them; every run
    // starts a new Portcullis, so each run may use the same list from the start.
    const longest = Math.max(o.rate * (o.warmup + o.duration), ...o.steps.map((s) => s * (o.warmup + o.stepDuration)))
    const freshCount = Math.ceil(longest * o.missRatio * 1.1) + 200
    const t0 = performance.now()
    const prefix = randomBytes(4).toString('hex')
    const [hot, fresh] = [await signTokens(key, `hot-${prefix}`, o.hot), await signTokens(key, `new-${prefix}`, freshCount)]
    log(`signed ${hot.length} hot + ${fresh.length} fresh RS256 tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s (${hot[0]!.length} bytes each)`)
    const tokensFile = join(tmp, 'tokens.json')
    await writeFile(tokensFile, JSON.stringify({ hot, fresh }))
    const ctx = { jwksUrl: jwks.url, tokensFile, hotSample: { token: hot[0]!, sub: `hot-${prefix}-0` }, tmp }

    const records: RunRecord[] = []
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const v of ['baseline', 'ext_authz'] as const) records.push(await measuredRun(o, v, o.rate, o.duration, rep, ctx))
    }
    for (const rate of o.steps) {
      for (const v of ['baseline', 'ext_authz'] as const) records.push(await measuredRun(o, v, rate, o.stepDuration, 0, ctx))
    }
    report(o, records, { started, envoyVer, tokenBytes: hot[0]!.length })
  } finally {
    await jwks.close()
    await rm(tmp, { recursive: true, force: true })
  }
}

function report(o: Options, records: readonly RunRecord[], meta: { started: Date; envoyVer: string; tokenBytes: number }): void {
  const main = (v: Variant): RunRecord[] => records.filter((r) => r.variant === v && r.rate === o.rate && r.rep > 0)
  const b = pooled(main('baseline'))
  const a = pooled(main('ext_authz'))
  const addedP99 = a.p99Ms - b.p99Ms
  const addedP999 = a.p999Ms - b.p999Ms
  const lines: string[] = []
  lines.push(`Run ${meta.started.toISOString()}: Envoy ${meta.envoyVer}, Node ${process.version}, ${cpus().length} × ${cpuModel()}`)
  lines.push(
    `Open loop ${o.rate}/s, ${o.reps} × ${o.duration} s per variant (+${o.warmup} s warm-up each), ${o.connections} connections, ` +
      `${Math.round(o.missRatio * 100)} % never-seen tokens, ${o.hot} hot tokens (RS256, ${meta.tokenBytes} bytes), Portcullis serve.workers ${o.workers}${o.nodeOptions ? `, node flags ${o.nodeOptions}` : ''}`,
  )
  lines.push('')
  lines.push('| variant | rate (req/s) | run | achieved | ok / scheduled | p50 ms | p90 ms | p99 ms | p99.9 ms | p99.99 ms | max ms | send lag p99.9 ms | CPU cores envoy / portcullis / upstream / loadgen / other | CPU µs per request envoy / portcullis |')
  lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|')
  for (const r of records) {
    const l = r.latency
    lines.push(
      `| ${LABEL[r.variant]} | ${r.rate} | ${r.rep > 0 ? `rep ${r.rep}` : 'step'} | ${r.achievedRate} | ${r.ok} / ${r.scheduled} | ${ms(l.p50Ms)} | ${ms(l.p90Ms)} | ${ms(l.p99Ms)} | ${ms(l.p999Ms)} | ${ms(l.p9999Ms)} | ${ms(l.maxMs)} | ${ms(r.sendLag.p999Ms)} | ${r.cores.envoy} / ${r.cores.portcullis} / ${r.cores.upstream} / ${r.cores.loadgen} / ${r.cores.other} | ${perReq(r.cores.envoy, r.achievedRate)} / ${perReq(r.cores.portcullis, r.achievedRate)} |`,
    )
  }
  for (const [v, p] of [['baseline', b], ['ext_authz', a]] as const) {
    lines.push(`| **${LABEL[v]}, pooled** | ${o.rate} | all reps | | ${p.count} recorded | ${ms(p.p50Ms)} | ${ms(p.p90Ms)} | ${ms(p.p99Ms)} | ${ms(p.p999Ms)} | ${ms(p.p9999Ms)} | ${ms(p.maxMs)} | | | |`)
  }
  lines.push('')
  lines.push(`Added by ext_authz at ${o.rate}/s (pooled): p50 ${ms(a.p50Ms - b.p50Ms)} ms, p99 ${ms(addedP99)} ms (target ≤ 1 ms: ${addedP99 <= 1 ? 'met' : 'NOT met'}), p99.9 ${ms(addedP999)} ms (target ≤ 5 ms: ${addedP999 <= 5 ? 'met' : 'NOT met'})`)
  for (let rep = 1; rep <= o.reps; rep++) {
    const rb = records.find((r) => r.variant === 'baseline' && r.rate === o.rate && r.rep === rep)
    const ra = records.find((r) => r.variant === 'ext_authz' && r.rate === o.rate && r.rep === rep)
    if (rb && ra) lines.push(`- rep ${rep}: added p99 ${ms(ra.latency.p99Ms - rb.latency.p99Ms)} ms, p99.9 ${ms(ra.latency.p999Ms - rb.latency.p999Ms)} ms`)
  }
  const text = lines.join('\n')
  process.stdout.write(`${text}\n`)

  const stamp = meta.started.toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const outDir = join(REPO_ROOT, 'bench', 'out')
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, `envoy-latency-${stamp}.json`), JSON.stringify({ options: o, meta, records }, null, 1))
  writeFileSync(join(outDir, `envoy-latency-${stamp}.md`), `${text}\n`)

  // Plot: per (variant, rate), the run during which other processes used the least CPU.
  const rates = [...new Set(records.map((r) => r.rate))].sort((x, y) => x - y)
  const at = (v: Variant, rate: number): Percentiles =>
    records.filter((r) => r.variant === v && r.rate === rate).reduce((b, r) => (r.cores.other < b.cores.other ? r : b)).latency
  const durations = [...new Set(records.map((r) => r.durationS))].sort((x, y) => x - y).join(' or ')
  const colors = { p50Ms: '#1f77b4', p99Ms: '#ff7f0e', p999Ms: '#d62728' } as const
  const names = { p50Ms: 'p50', p99Ms: 'p99', p999Ms: 'p99.9' } as const
  const series: Series[] = []
  for (const k of ['p50Ms', 'p99Ms', 'p999Ms'] as const) {
    for (const v of ['ext_authz', 'baseline'] as const) {
      series.push({ label: `${names[k]} ${v === 'ext_authz' ? '+ ext_authz' : 'no ext_authz'}`, color: colors[k], dashed: v === 'baseline', points: rates.map((r) => [r, at(v, r)[k]] as const) })
    }
  }
  const svg = lineChart({
    title: 'Latency through Envoy vs offered load (open loop)',
    subtitle: `Envoy ${meta.envoyVer.split('/')[1] ?? ''} --concurrency 1, JWT rule + header mutator, ${Math.round(o.missRatio * 100)} % new tokens; ${meta.started.toISOString().slice(0, 10)}`,
    xLabel: 'offered load (requests/s, fixed rate)',
    yLabel: 'latency from scheduled send (ms, log scale)',
    series,
    notes: [
      `2 cores shared by Envoy, Portcullis, the upstream and the load generator. Solid: + ext_authz; dashed: the same Envoy route without it.`,
      `Each point: one ${durations} s run (the least disturbed by other processes). Latency counts from the scheduled send time (no coordinated omission).`,
    ],
  })
  // A --quick smoke run does not replace the published plot.
  const svgPath = o.quick ? join(outDir, `envoy-latency-${stamp}.svg`) : join(REPO_ROOT, 'bench', 'results', 'envoy-latency.svg')
  mkdirSync(join(svgPath, '..'), { recursive: true })
  writeFileSync(svgPath, svg)
  log(`wrote bench/out/envoy-latency-${stamp}.{json,md} and ${svgPath}`)
}

// Interrupted: exit through 'exit' so every child process is killed (support.ts registers them).
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(130))

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
