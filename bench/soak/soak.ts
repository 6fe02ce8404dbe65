/**
 * The gRPC soak (security.md §7.3, methods 2 and 3): the real server as a child process under a
 * hard heap cap (`node --max-old-space-size=<cap> dist/bench/soak/server.js`, so a leak becomes a
 * crash instead of a slow drift), its rules pointing at the IdP stub (a worker thread here), and
 * the load generator (loadgen.ts) as a second child process sending Checks with unique
 * credentials. On every one-second tick of the load generator (its counters for that second), this
 * process reads the server's RSS (`/proc/<pid>/status` VmRSS) and its latest summary line (heap,
 * caches, GC, event-loop delay, logged every second), and makes one row of them (report.ts); if the
 * ticks stop for 2.5 s, it samples on its own.
 *
 * Loopback only; bounded in time (`durationS` plus at most ~30 s of start and stop); every child
 * is killed on the way out, including when this process exits or fails.
 *
 * Needs the compiled tree (`npm run build`: dist/bench/soak/{server,loadgen}.js).
 * @module
 */
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { startIdpStub, type IdpStubCounts } from './idp-stub.js'
import { availableScenarios, registryWith } from './in-process.js'
import type { LoadCounts, LoadgenConfig, LoadgenMessage } from './loadgen.js'
import { figures, toCsv, toSvg, type SoakFigures, type SoakRow } from './report.js'
import { configFor, makeJwtKeys, ruleFor, type CacheSizing, type ScenarioId } from './scenarios.js'
import { DEFAULT_MIX, type TokenMix } from './tokens.js'

const MiB = 1024 * 1024

export interface SoakOptions {
  /** Load duration, seconds. */
  readonly durationS: number
  /** Checks per second; 0 = as many as the server answers. */
  readonly rate?: number
  readonly mix?: TokenMix
  /** `--max-old-space-size` of the server, MiB. */
  readonly heapCapMb?: number
  /** Default: every scenario whose authenticator the shipped registry has. */
  readonly scenarios?: readonly ScenarioId[]
  readonly channels?: number
  readonly inflight?: number
  /** Cache limits of every scenario's handler; default 4 MiB + 256 KiB (full within a minute or two). */
  readonly sizing?: CacheSizing
  /** Server `log.level`; default `warn` (no per-decision lines). */
  readonly logLevel?: string
  /** Write `soak-<timestamp>.csv` and `.svg` here. */
  readonly outDir?: string
  /** Extra lines for the plot's subtitle (command, machine). */
  readonly plotNotes?: readonly string[]
  readonly onRow?: (row: SoakRow) => void
}

export interface SoakResult {
  readonly scenarios: readonly ScenarioId[]
  readonly rows: readonly SoakRow[]
  readonly figures: SoakFigures
  readonly totals: LoadCounts
  readonly server: {
    readonly pid: number
    /** The server exited before it was asked to. */
    readonly crashed: boolean
    /** Its stderr says it ran out of heap. */
    readonly oom: boolean
    readonly exitCode: number | null
    readonly signal: string | null
    readonly stderrTail: readonly string[]
  }
  readonly stub: IdpStubCounts
  readonly files: { readonly csv: string; readonly svg: string } | undefined
  readonly heapCapMb: number
}

/** The repository root: the closest ancestor with a package.json (works from bench/ and dist/bench/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the repository root')
    dir = up
  }
  return dir
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    if (m !== null) return Number(m[1]) / 1024
  } catch {
    // not Linux, or the process is gone
  }
  try {
    return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024
  } catch {
    return Number.NaN
  }
}

interface SummaryLine {
  readonly heap_used_bytes: number
  readonly heap_total_bytes: number
  readonly cache_bytes: number
  readonly cache_entries: number
  readonly event_loop_delay_p99_ms: number
  readonly gc_pause_ms_total: number
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const root = repoRoot()
  const dist = join(root, 'dist', 'bench', 'soak')
  const serverJs = join(dist, 'server.js')
  const loadgenJs = join(dist, 'loadgen.js')
  for (const f of [serverJs, loadgenJs]) {
    if (!existsSync(f)) throw new Error(`${f} does not exist: run \`npm run build\` first`)
  }
  const heapCapMb = o.heapCapMb ?? 128
  const scenarios = o.scenarios ?? availableScenarios(registryWith())
  const mix = o.mix ?? DEFAULT_MIX
  const sizing = o.sizing ?? { maxCost: 4 * MiB, negativeMaxCost: 256 * 1024 }
  const durationMs = Math.round(o.durationS * 1000)
  if (!(durationMs >= 1000)) throw new Error(`duration must be at least 1 s, got ${o.durationS}`)

  const children: ChildProcess[] = []
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  process.once('exit', killAll)

  const dir = mkdtempSync(join(tmpdir(), 'portcullis-soak-'))
  const jwtKeys = scenarios.includes('jwt') ? makeJwtKeys() : undefined
  const stub = await startIdpStub({ jwks: jwtKeys?.jwks })
  try {
    let jwtKeysFile: string | undefined
    if (jwtKeys !== undefined) {
      jwtKeysFile = join(dir, 'jwt-keys.json')
      writeFileSync(jwtKeysFile, JSON.stringify(jwtKeys), { mode: 0o600 })
    }
    writeFileSync(join(dir, 'rules.yaml'), stringify(scenarios.map((id) => ruleFor(id, stub.origin, sizing))))
    const configFile = join(dir, 'portcullis.yaml')
    writeFileSync(
      configFile,
      stringify({
        ...configFor(scenarios, 256 * MiB),
        // Metrics on (an ephemeral port): their per-request bookkeeping is part of what is measured.
        serve: { grpc: { host: '127.0.0.1', port: 0 }, prometheus: { enabled: true, host: '127.0.0.1', port: 0 } },
        access_rules: { repositories: ['file://./rules.yaml'] },
        // server.ts logs its own summary every second, at info whatever the level: no second one.
        log: { level: o.logLevel ?? 'warn', summary_interval: '0s' },
      }),
    )

    // --- server ---------------------------------------------------------------------------
    // Only the overrides we choose: an inherited PORTCULLIS_* variable would change the config.
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PORTCULLIS_')) env[k] = v
    const server = spawn(process.execPath, [`--max-old-space-size=${heapCapMb}`, serverJs, '--config', configFile, '--summary-interval', '1000'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.push(server)
    const stderrTail: string[] = []
    createInterface({ input: server.stderr! }).on('line', (l) => {
      stderrTail.push(l)
      if (stderrTail.length > 40) stderrTail.shift()
    })
    let summary: SummaryLine | undefined
    let stopRequested = false
    const serverExit = new Promise<{ code: number | null; signal: string | null }>((res) =>
      server.once('exit', (code, signal) => res({ code, signal })),
    )
    let serverExited = false
    void serverExit.then(() => (serverExited = true))
    const port = await new Promise<number>((resolvePort, reject) => {
      const timer = setTimeout(() => reject(new Error(`soak server not ready within 20 s; stderr:\n${stderrTail.join('\n')}`)), 20_000)
      createInterface({ input: server.stdout! }).on('line', (line) => {
        if (line.includes('"msg":"summary"')) {
          try {
            summary = JSON.parse(line) as SummaryLine
          } catch {
            // a torn line: the next one will do
          }
        } else if (line.includes('"msg":"soak server ready"')) {
          clearTimeout(timer)
          resolvePort((JSON.parse(line) as { port: number }).port)
        }
      })
      void serverExit.then(({ code }) => {
        clearTimeout(timer)
        reject(new Error(`soak server exited with ${code} before it was ready; stderr:\n${stderrTail.join('\n')}`))
      })
    })

    // --- load generator ---------------------------------------------------------------------
    const lgConfig: LoadgenConfig = {
      port,
      scenarios,
      mix,
      rate: o.rate ?? 0,
      durationMs,
      channels: o.channels ?? 4,
      inflight: o.inflight ?? 16,
      ...(jwtKeysFile === undefined ? {} : { jwtKeysFile }),
    }
    const loadgen = fork(loadgenJs, [JSON.stringify(lgConfig)], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(loadgen)
    let pending: LoadCounts[] = []
    let done: { totals: LoadCounts } | undefined
    let loadgenError: string | undefined
    // One row per load-generator tick (its second is the rate's unit), sampled when it arrives.
    let onTick: () => void = () => {}
    const loadgenDone = new Promise<void>((res) => {
      loadgen.on('message', (m: LoadgenMessage) => {
        if (m.type === 'tick') {
          pending.push(m.counts)
          onTick()
        } else if (m.type === 'done') {
          done = m
          res()
        } else if (m.type === 'error') {
          loadgenError = m.message
          res()
        }
      })
      loadgen.once('exit', () => res())
    })

    // --- sampling -------------------------------------------------------------------------
    const rows: SoakRow[] = []
    const started = performance.now()
    let lastRowAt = started
    const sampleRow = (): void => {
      lastRowAt = performance.now()
      const ticks = pending
      pending = []
      let rate = 0
      let allowed = 0
      let denied = 0
      let errors = 0
      let validDenied = 0
      let p99 = 0
      for (const c of ticks) {
        rate += c.completed
        allowed += c.allowed
        denied += c.completed - c.allowed
        const grpcErrors = Object.values(c.grpcErrors).reduce((a, b) => a + b, 0)
        denied -= grpcErrors
        errors += grpcErrors + c.invalidAllowed
        validDenied += Object.values(c.validDenied).reduce((a, b) => a + b, 0)
        p99 = Math.max(p99, c.latencyP99Ms)
      }
      const s = summary
      const row: SoakRow = {
        t: Math.round((performance.now() - started) / 100) / 10,
        rate,
        rssMb: rssMb(server.pid!),
        heapUsedMb: s === undefined ? Number.NaN : s.heap_used_bytes / MiB,
        heapTotalMb: s === undefined ? Number.NaN : s.heap_total_bytes / MiB,
        cacheBytes: s?.cache_bytes ?? 0,
        cacheEntries: s?.cache_entries ?? 0,
        errors,
        allowed,
        denied,
        validDenied,
        p99Ms: p99,
        eventLoopP99Ms: s?.event_loop_delay_p99_ms ?? 0,
        gcPauseMsTotal: s?.gc_pause_ms_total ?? 0,
      }
      rows.push(row)
      o.onRow?.(row)
    }
    onTick = sampleRow
    // Keep sampling RSS if the load generator stalls (no tick for 2.5 s).
    const sampler = setInterval(() => {
      if (performance.now() - lastRowAt > 2500) sampleRow()
    }, 500)
    // Backstops: ask it to stop shortly after its duration, kill it if it does not exit after that.
    const hardStop = setTimeout(() => loadgen.connected && loadgen.send('stop'), durationMs + 2_000)
    const hardKill = setTimeout(() => loadgen.kill('SIGKILL'), durationMs + 20_000)
    // A crashed server ends the run early (the heap cap turned a leak into a crash).
    void serverExit.then(() => {
      if (!stopRequested && loadgen.connected) loadgen.send('stop')
    })
    await loadgenDone
    clearTimeout(hardStop)
    clearTimeout(hardKill)
    clearInterval(sampler)
    if (pending.length > 0) sampleRow()
    if (loadgenError !== undefined) throw new Error(`load generator failed:\n${loadgenError}`)
    if (done === undefined) throw new Error(`load generator exited without its totals (code ${loadgen.exitCode})`)

    // --- stop -----------------------------------------------------------------------------
    const crashed = serverExited
    stopRequested = true
    if (!serverExited) server.kill('SIGTERM')
    const killTimer = setTimeout(() => server.kill('SIGKILL'), 5_000)
    const exit = await serverExit
    clearTimeout(killTimer)
    const stubCounts = await stub.counts()

    const fig = figures(rows)
    let files: SoakResult['files']
    if (o.outDir !== undefined) {
      mkdirSync(o.outDir, { recursive: true })
      const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
      const base = resolve(o.outDir, `soak-${stamp}`)
      files = { csv: `${base}.csv`, svg: `${base}.svg` }
      writeFileSync(files.csv, toCsv(rows))
      writeFileSync(
        files.svg,
        toSvg(rows, {
          title: `Portcullis soak: ${fig.checks.toLocaleString('en-US')} Checks with unique credentials (${scenarios.join(', ')}), ${fig.durationS.toFixed(0)} s`,
          subtitle: [
            `${fig.rate}/s; RSS ${fig.rssStartMb.toFixed(1)} → ${fig.rssAt25Mb.toFixed(1)} (25 %) → ${fig.rssEndMb.toFixed(1)} MiB (end), slope after 25 % ${fig.rssSlopeMbPerMin.toFixed(2)} MiB/min`,
            `heap used: median ${fig.heapPlateauMb.toFixed(1)} MiB, floor (lowest per 10 s) ${fig.heapFloorMb.toFixed(1)} MiB, floor slope after 25 % ${fig.heapFloorSlopeMbPerMin.toFixed(2)} MiB/min; ` +
              `gRPC errors + invalid allowed: ${fig.errors}`,
            ...(o.plotNotes ?? []),
          ],
          heapCapMb,
        }),
      )
    }
    return {
      scenarios,
      rows,
      figures: fig,
      totals: done.totals,
      server: {
        pid: server.pid!,
        crashed,
        oom: stderrTail.some((l) => /heap out of memory|Reached heap limit/i.test(l)),
        exitCode: exit.code,
        signal: exit.signal,
        stderrTail,
      },
      stub: stubCounts,
      files,
      heapCapMb,
    }
  } finally {
    killAll()
    process.off('exit', killAll)
    await stub.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
