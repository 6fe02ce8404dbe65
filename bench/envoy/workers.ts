/**
 * Check throughput of the built CLI with `serve.workers` 1 and 2 (src/cluster.ts), driven by ghz.
 *
 *   npm run build && node dist/bench/envoy/workers.js [--duration 15] [--warmup 5] [--reps 2]
 *       [--workers 1,2] [--connections 8] [--concurrency 64]
 *
 * Rule: JWT (RS256 via a loopback JWKS) + allow + header mutator, one pre-signed token, so every
 * Check after the first is a cache hit; the request is a ~1.4 KB Envoy-like CheckRequest
 * (pseudo-headers, the usual proxy headers, a 633-byte Bearer JWT). ghz (found on PATH, in $GHZ or
 * ~/go/bin; nothing is installed here) runs closed-loop with `--connections` HTTP/2 connections
 * so the cluster can spread them (round-robin per connection), warm-up first, then `--reps`
 * measured runs per worker count, alternating. Nothing is pinned: on this 2-core machine the
 * workers and ghz share both cores, and the report gives every process' CPU use.
 * @module
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { cpuModel, cpuSeconds, loadAverage, machineBusySeconds, makeKey, REPO_ROOT, serveJwks, signTokens, startPortcullis } from './support.js'

const CALL = 'envoy.service.auth.v3.Authorization/Check'
const log = (s: string): void => void process.stderr.write(`${s}\n`)

function findGhz(): string | undefined {
  const candidates = [process.env['GHZ'], ...(process.env['PATH'] ?? '').split(':').map((d) => join(d, 'ghz')), join(homedir(), 'go', 'bin', 'ghz')]
  return candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p))
}

/** The Envoy ext_authz API as a protoset, built from the protos node_modules ships (as scripts/gen-proto.mjs). */
function buildProtoset(out: string): void {
  const deps = join(REPO_ROOT, 'node_modules', '@grpc', 'grpc-js-xds', 'deps')
  const config = JSON.stringify({ version: 'v2', modules: ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((path) => ({ path })) })
  execFileSync(join(REPO_ROOT, 'node_modules', '.bin', 'buf'), ['build', '--config', config, '--path', 'envoy-api/envoy/service/auth/v3/external_auth.proto', '--as-file-descriptor-set', '-o', out], {
    cwd: deps,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

/** What Envoy 1.40 sends for `GET /jwt/items/42` with a Bearer token (encode_raw_headers off: the headers map). */
export function envoyLikeCheck(token: string): Uint8Array {
  const host = 'api.example.com'
  const path = '/jwt/items/42?view=full'
  return CheckRequest.encode(
    CheckRequest.fromJSON({
      attributes: {
        source: { address: { socketAddress: { address: '10.0.3.17', portValue: 51234 } } },
        destination: { address: { socketAddress: { address: '10.0.0.5', portValue: 10000 } } },
        request: {
          time: new Date().toISOString(),
          http: {
            id: '9123847561029384756',
            method: 'GET',
            scheme: 'http',
            host,
            path,
            protocol: 'HTTP/1.1',
            headers: {
              ':authority': host,
              ':method': 'GET',
              ':path': path,
              ':scheme': 'http',
              'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
              accept: 'application/json, text/plain, */*',
              'accept-encoding': 'gzip, deflate, br',
              'accept-language': 'en-US,en;q=0.9',
              authorization: `Bearer ${token}`,
              'x-forwarded-proto': 'http',
              'x-forwarded-for': '10.0.3.17',
              'x-request-id': '5f0c6a2e-4d7b-4f0e-9a51-2b1d8c3e7f90',
              'x-envoy-expected-rq-timeout-ms': '15000',
            },
          },
        },
      },
    }),
  ).finish()
}

interface GhzSummary {
  rps: number
  count: number
  average: number
  statusCodeDistribution?: Record<string, number>
  errorDistribution?: Record<string, number>
  latencyDistribution?: { percentage: number; latency: number }[]
}

async function ghz(bin: string, a: { protoset: string; dataFile: string; port: number; durationS: number; connections: number; concurrency: number; out: string }): Promise<GhzSummary & { cpuSeconds: number }> {
  const args = [
    '--insecure', '--protoset', a.protoset, '--call', CALL, '--binary-file', a.dataFile,
    '--connections', String(a.connections), '--concurrency', String(a.concurrency), '--duration', `${a.durationS}s`,
    '--timeout', '5s', '--format', 'json', '--output', a.out, `127.0.0.1:${a.port}`,
  ]
  let cpu = 0
  await new Promise<void>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] })
    const kill = (): void => void child.kill('SIGKILL')
    process.once('exit', kill)
    // ghz' own CPU: /proc is gone once it exits, so sample it while it runs.
    const sampler = setInterval(() => (cpu = cpuSeconds(child.pid!) ?? cpu), 250)
    child.once('exit', (code) => {
      clearInterval(sampler)
      process.off('exit', kill)
      if (code === 0) resolve()
      else reject(new Error(`ghz exited with ${String(code)}`))
    })
  })
  const r = JSON.parse(await readFile(a.out, 'utf8')) as GhzSummary & { details?: unknown }
  delete r.details
  return { ...r, cpuSeconds: cpu }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      reps: { type: 'string' },
      workers: { type: 'string' },
      connections: { type: 'string' },
      concurrency: { type: 'string' },
    },
  })
  const durationS = Number(values.duration ?? 15)
  const warmupS = Number(values.warmup ?? 5)
  const reps = Number(values.reps ?? 2)
  const counts = (values.workers ?? '1,2').split(',').map(Number)
  const connections = Number(values.connections ?? 8)
  const concurrency = Number(values.concurrency ?? 64)
  const bin = findGhz()
  if (bin === undefined) {
    process.stderr.write('ghz not found (PATH, $GHZ, ~/go/bin). With Go: go install github.com/bojand/ghz/cmd/ghz@v0.120.0\n')
    process.exitCode = 2
    return
  }
  const ghzVersion = spawnSync(bin, ['--version'], { encoding: 'utf8' }).output.join('').trim() || 'unknown'
  log(`ghz ${ghzVersion}; Node ${process.version}; ${cpus().length} × ${cpuModel()}; load average ${loadAverage()}`)
  const tmp = await mkdtemp(join(tmpdir(), 'portcullis-bench-workers-'))
  const key = makeKey()
  const jwks = await serveJwks(key.jwks)
  try {
    const protoset = join(tmp, 'external_auth.protoset')
    buildProtoset(protoset)
    const [token] = await signTokens(key, 'worker-bench', 1, 1)
    const dataFile = join(tmp, 'check.bin')
    const bytes = envoyLikeCheck(token!)
    await writeFile(dataFile, bytes)
    log(`CheckRequest: ${bytes.length} bytes`)
    const rows: { workers: number; rep: number; rps: number; p50: number; p99: number; errors: number; cores: { portcullis: number; ghz: number; machine: number } }[] = []
    for (let rep = 1; rep <= reps; rep++) {
      for (const workers of counts) {
        const p = await startPortcullis({ jwksUrl: jwks.url, workers, logFile: join(tmp, `portcullis-${workers}-${rep}.log`) })
        try {
          await ghz(bin, { protoset, dataFile, port: p.port, durationS: warmupS, connections, concurrency, out: join(tmp, 'warm.json') })
          const pids = p.pids()
          const cpu0 = pids.map((x) => cpuSeconds(x) ?? 0)
          const m0 = machineBusySeconds()
          const t0 = performance.now()
          const r = await ghz(bin, { protoset, dataFile, port: p.port, durationS, connections, concurrency, out: join(tmp, `run-${workers}-${rep}.json`) })
          const wall = (performance.now() - t0) / 1000
          const server = pids.reduce((s, x, i) => s + ((cpuSeconds(x) ?? 0) - cpu0[i]!), 0) / wall
          const machine = (machineBusySeconds() - m0) / wall
          const pct = (q: number): number => (r.latencyDistribution?.find((d) => d.percentage === q)?.latency ?? 0) / 1e6
          const ok = r.statusCodeDistribution?.['OK'] ?? 0
          // ghz cancels the calls still in flight when the duration ends, or sees them fail as it
          // closes its own connections ("use of closed network connection"): not server errors.
          const cut =
            (r.statusCodeDistribution?.['Canceled'] ?? 0) +
            Object.entries(r.errorDistribution ?? {}).reduce((n, [k, v]) => n + (k.includes('use of closed network connection') ? v : 0), 0)
          const row = { workers, rep, rps: Math.round(r.rps), p50: pct(50), p99: pct(99), errors: r.count - ok - cut, cores: { portcullis: Math.round(server * 100) / 100, ghz: Math.round((r.cpuSeconds / wall) * 100) / 100, machine: Math.round(machine * 100) / 100 } }
          rows.push(row)
          log(`  workers ${workers} rep ${rep}: ${row.rps} Check/s, p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, errors ${row.errors}, CPU cores: Portcullis ${row.cores.portcullis}, ghz ${row.cores.ghz}, machine ${row.cores.machine}`)
        } finally {
          await p.stop()
        }
      }
    }
    const lines = [
      `ghz ${ghzVersion}, ${connections} connections × ${concurrency} concurrent calls, ${durationS} s per run after ${warmupS} s warm-up; ${cpus().length} × ${cpuModel()}, Node ${process.version}`,
      '',
      '| serve.workers | run | Check/s | p50 ms | p99 ms | errors | CPU cores: Portcullis (all processes) | ghz | other processes | machine |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.workers} | ${r.rep} | ${r.rps} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} | ${r.cores.portcullis} | ${r.cores.ghz} | ${Math.max(0, Math.round((r.cores.machine - r.cores.portcullis - r.cores.ghz) * 100) / 100)} | ${r.cores.machine} |`,
      ),
    ]
    for (const w of counts) {
      const xs = rows.filter((r) => r.workers === w).map((r) => r.rps).sort((a, b) => a - b)
      lines.push(`- workers ${w}: best ${xs.at(-1)} Check/s, all runs ${xs.join(', ')}`)
    }
    process.stdout.write(`${lines.join('\n')}\n`)
  } finally {
    await jwks.close()
    await rm(tmp, { recursive: true, force: true })
  }
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(130))

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
