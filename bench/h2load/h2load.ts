/**
 * The h2load driver (Debian `nghttp2-client`): HTTP/2 POSTs of a pre-encoded gRPC frame (1-byte
 * compression flag, 4-byte length, CheckRequest bytes) with `content-type: application/grpc` and
 * `te: trailers`, which is all a gRPC unary call is on the wire. h2load is C and far cheaper per
 * request than ghz, so it shows the server's ceiling with less noise from the load generator; it
 * cannot vary the body (one request for every call, so no unique-token scenario) and does not read
 * `grpc-status` trailers, so every scenario is verified with a real gRPC call before the run
 * (bench/ghz/servers.ts `verify`).
 * @module
 */
import { execFileSync } from 'node:child_process'
import { GRPC_PATH } from '../fixtures/request.js'
import { CpuMeter, spawnPinned, which, type Spawned } from '../ghz/proc.js'

export interface H2loadStatus {
  readonly path: string | undefined
  readonly version: string | undefined
  readonly missing: string | undefined
}

export function findH2load(): H2loadStatus {
  const path = which('h2load')
  if (path === undefined) {
    return { path, version: undefined, missing: 'h2load is not installed: `apt-get install nghttp2-client` (Debian/Ubuntu)' }
  }
  let version: string | undefined
  try {
    version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim().split('\n')[0]
  } catch {
    version = undefined
  }
  return { path, version, missing: undefined }
}

export interface H2loadLoad {
  /** HTTP/2 connections (h2load clients). */
  readonly connections: number
  /** Concurrent streams per connection (`-m`). */
  readonly streamsPerConnection: number
  readonly durationS: number
  readonly warmupS: number
}

export interface H2loadResult {
  readonly rps: number
  readonly succeeded: number
  readonly failed: number
  readonly status2xx: number
  /** 3xx + 4xx + 5xx answers. */
  readonly statusOther: number
  readonly meanMs: number
  readonly maxMs: number
  readonly h2loadCpu: number
}

/** Parses h2load's text report. */
export function parseH2load(out: string): Omit<H2loadResult, 'h2loadCpu'> {
  const fin = /finished in [\d.]+(?:s|ms|us), ([\d.]+) req\/s/.exec(out)
  const req = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out)
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out)
  if (fin === null || req === null) throw new Error(`unexpected h2load output:\n${out}`)
  return {
    rps: Number(fin[1]),
    succeeded: Number(req[1]),
    failed: Number(req[2]) + Number(req[3]) + Number(req[4]),
    status2xx: Number(codes?.[1] ?? 0),
    statusOther: Number(codes?.[2] ?? 0) + Number(codes?.[3] ?? 0) + Number(codes?.[4] ?? 0),
    meanMs: time === null ? NaN : toMs(time[3]!),
    maxMs: time === null ? NaN : toMs(time[2]!),
  }
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v)
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

export async function runH2load(o: { h2load: string; port: number; body: string; load: H2loadLoad; cpu: number | undefined }): Promise<H2loadResult> {
  const args = [
    '-c', String(o.load.connections),
    '-m', String(o.load.streamsPerConnection),
    '-D', `${Math.round(o.load.durationS * 1000)}ms`,
    `--warm-up-time=${Math.round(o.load.warmupS * 1000)}ms`,
    '-d', o.body,
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    `http://127.0.0.1:${o.port}${GRPC_PATH}`,
  ]
  const s: Spawned = spawnPinned(o.cpu, o.h2load, args, { pipe: true })
  let out = ''
  s.child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  s.child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const meter = new CpuMeter([s.pid]).start(200)
  const killer = setTimeout(() => void s.stop(), (o.load.durationS + o.load.warmupS + 30) * 1000)
  await s.exited
  clearTimeout(killer)
  const cpu = meter.stop().perPid.get(s.pid) ?? NaN
  return { ...parseH2load(out), h2loadCpu: cpu }
}
