/**
 * The ghz driver: finds (or installs, with Go) the pinned ghz, builds the protoset of the Envoy
 * ext_authz API from the protos the repository already ships (node_modules/@grpc/grpc-js-xds/deps,
 * compiled with the pinned buf, as scripts/gen-proto.mjs does), runs ghz pinned to the load
 * generator core, and reads its JSON report: throughput, status counts and percentiles computed
 * from every call's latency (ghz' own summary stops at p99).
 * @module
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from './servers.js'
import { CpuMeter, spawnPinned, which } from './proc.js'

/** The ghz release the numbers in bench/RESULTS.md were taken with. */
export const GHZ_VERSION = 'v0.120.0'
export const GHZ_MODULE = `github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION}`
export const CALL = 'envoy.service.auth.v3.Authorization/Check'

const GO_DIRS = ['/usr/local/go/bin']

function goBinDirs(): string[] {
  const dirs = [join(homedir(), 'go', 'bin')]
  const gopath = process.env['GOPATH']
  if (gopath !== undefined && gopath !== '') dirs.unshift(...gopath.split(':').map((p) => join(p, 'bin')))
  const gobin = process.env['GOBIN']
  if (gobin !== undefined && gobin !== '') dirs.unshift(gobin)
  return dirs
}

export interface ToolStatus {
  readonly path: string | undefined
  readonly version: string | undefined
  /** What is missing and how to get it, when `path` is undefined. */
  readonly missing: string | undefined
}

/** `$GHZ`, then PATH, then Go's bin folders. */
export function findGhz(): ToolStatus {
  const env = process.env['GHZ']
  const path = env !== undefined && env !== '' && existsSync(env) ? env : which('ghz', goBinDirs())
  if (path === undefined) {
    const go = which('go', GO_DIRS)
    return {
      path: undefined,
      version: undefined,
      missing:
        go === undefined
          ? `ghz is not installed and Go is not available to build it: install Go, then \`go install ${GHZ_MODULE}\` (or put a ghz binary on PATH / in $GHZ)`
          : `ghz is not installed: \`${go} install ${GHZ_MODULE}\` (or run with --install)`,
    }
  }
  let version: string | undefined
  try {
    const r = spawnSync(path, ['--version'], { encoding: 'utf8' })
    version = `ghz ${(r.stdout + r.stderr).trim()}`
    // `go install` builds report "dev": read the module version from the binary instead.
    const go = which('go', GO_DIRS)
    if (go !== undefined) {
      const m = /\bmod\s+github\.com\/bojand\/ghz\s+(\S+)/.exec(spawnSync(go, ['version', '-m', path], { encoding: 'utf8' }).stdout ?? '')
      if (m?.[1] !== undefined) version = `ghz ${m[1]}`
    }
  } catch {
    version = undefined
  }
  return { path, version, missing: undefined }
}

/** `go install` of the pinned ghz; returns the status afterwards. */
export function installGhz(log: (s: string) => void = console.error): ToolStatus {
  const go = which('go', GO_DIRS)
  if (go === undefined) return findGhz()
  log(`installing ghz: ${go} install ${GHZ_MODULE} (a minute on a cold module cache)`)
  const r = spawnSync(go, ['install', GHZ_MODULE], { stdio: 'inherit', timeout: 600_000 })
  if (r.status !== 0) log(`go install failed (exit ${String(r.status)})`)
  return findGhz()
}

/** The FileDescriptorSet of external_auth.proto and its imports (built once into `outDir`). */
export function ensureProtoset(outDir: string): string {
  const out = join(outDir, 'external_auth.protoset')
  if (existsSync(out)) return out
  mkdirSync(outDir, { recursive: true })
  const deps = join(REPO_ROOT, 'node_modules', '@grpc', 'grpc-js-xds', 'deps')
  const buf = join(REPO_ROOT, 'node_modules', '.bin', 'buf')
  const config = JSON.stringify({ version: 'v2', modules: ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((path) => ({ path })) })
  execFileSync(
    buf,
    ['build', '--config', config, '--path', 'envoy-api/envoy/service/auth/v3/external_auth.proto', '--as-file-descriptor-set', '-o', out],
    { cwd: deps, stdio: ['ignore', 'ignore', 'inherit'] },
  )
  return out
}

/** How ghz loads the server. */
export interface GhzLoad {
  /** gRPC connections (HTTP/2) ghz opens. */
  readonly connections: number
  /** Concurrent workers (closed loop: each waits for its answer). */
  readonly concurrency: number
  readonly durationS: number
  /** Open-ish loop: ghz' rate limit in requests per second (0: none). */
  readonly rps?: number
}

export interface LatencyStats {
  readonly count: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
  readonly meanMs: number
}

export interface GhzResult {
  readonly rps: number
  readonly count: number
  readonly ok: number
  readonly errors: number
  /** Status name → count (OK, Unavailable, DeadlineExceeded, …). */
  readonly statuses: Readonly<Record<string, number>>
  readonly latency: LatencyStats
  /** ghz' own CPU (1 = one core), sampled from /proc. */
  readonly ghzCpu: number
  readonly wallS: number
}

interface GhzReport {
  count: number
  total: number
  rps: number
  statusCodeDistribution?: Record<string, number>
  details?: { latency: number; status: string; error: string }[]
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
  return sorted[idx]!
}

export function latencyStats(latenciesNs: readonly number[]): LatencyStats {
  const a = Float64Array.from(latenciesNs, (ns) => ns / 1e6).sort()
  let sum = 0
  for (const v of a) sum += v
  return {
    count: a.length,
    p50Ms: percentile(a, 0.5),
    p90Ms: percentile(a, 0.9),
    p99Ms: percentile(a, 0.99),
    p999Ms: percentile(a, 0.999),
    maxMs: a.length > 0 ? a[a.length - 1]! : NaN,
    meanMs: a.length > 0 ? sum / a.length : NaN,
  }
}

/** Runs ghz once against 127.0.0.1:`port`; resolves with the parsed report. */
export async function runGhz(o: {
  ghz: string
  protoset: string
  port: number
  dataFile: string
  load: GhzLoad
  cpu: number | undefined
  outFile: string
  /** Per-call timeout (default 5 s). */
  timeoutS?: number
}): Promise<GhzResult> {
  rmSync(o.outFile, { force: true })
  const args = [
    '--insecure',
    '--protoset', o.protoset,
    '--call', CALL,
    '-B', o.dataFile,
    '--connections', String(o.load.connections),
    '-c', String(o.load.concurrency),
    '-z', `${o.load.durationS}s`,
    '-t', `${o.timeoutS ?? 5}s`,
    '--duration-stop', 'ignore',
    '-O', 'json',
    '-o', o.outFile,
  ]
  if (o.load.rps !== undefined && o.load.rps > 0) args.push('--rps', String(o.load.rps))
  args.push(`127.0.0.1:${o.port}`)
  const t0 = performance.now()
  const s = spawnPinned(o.cpu, o.ghz, args, { pipe: true })
  let stderr = ''
  s.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  s.child.stdout?.resume()
  const meter = new CpuMeter([s.pid]).start(200)
  const killer = setTimeout(() => void s.stop(), (o.load.durationS + 60) * 1000)
  const code = await s.exited
  clearTimeout(killer)
  const cpu = meter.stop().perPid.get(s.pid) ?? NaN
  const wallS = (performance.now() - t0) / 1000
  if (code !== 0 && !existsSync(o.outFile)) throw new Error(`ghz exited with ${String(code)}: ${stderr.trim()}`)
  const report = JSON.parse(readFileSync(o.outFile, 'utf8')) as GhzReport
  const statuses: Record<string, number> = { ...(report.statusCodeDistribution ?? {}) }
  const details = report.details ?? []
  const okLat: number[] = []
  for (const d of details) if (d.status === 'OK') okLat.push(d.latency)
  const ok = statuses['OK'] ?? 0
  return {
    rps: report.rps,
    count: report.count,
    ok,
    errors: report.count - ok,
    statuses,
    latency: latencyStats(okLat),
    // ghz runs duration + setup; its share over the run is close enough to tell saturation.
    ghzCpu: cpu,
    wallS,
  }
}
