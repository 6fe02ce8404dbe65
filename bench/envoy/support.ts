/**
 * What the Envoy latency benchmark (run.ts) runs on: the two Envoy configurations derived from
 * envoy/envoy.yaml, an Envoy process for either, the Portcullis CLI and the upstream as child
 * processes, a JWKS served in-process, RS256 tokens signed in worker threads, and CPU accounting
 * from /proc.
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { createWriteStream, existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Worker } from 'node:worker_threads'
import { stringify } from 'yaml'
import { envoyBinary, loadEnvoyConfig, REPO_ROOT, rewriteEnvoyConfig } from '../../test/helpers/envoy.js'

export { REPO_ROOT }
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js')
export const UPSTREAM = join(REPO_ROOT, 'dist', 'bench', 'envoy', 'upstream.js')
export const OPEN_LOOP = join(REPO_ROOT, 'dist', 'bench', 'envoy', 'open-loop.js')

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

// ---------------------------------------------------------------------------------------------
// Envoy configurations

const EXT_AUTHZ = 'envoy.filters.http.ext_authz'

/**
 * envoy/envoy.yaml with socket addresses rewritten (test/helpers/envoy.ts), and the same minus
 * the ext_authz HTTP filter: the only difference between the two routes measured. Throws unless
 * exactly one ext_authz filter was removed.
 */
export async function envoyConfigs(portcullisPort: number, upstreamPort: number): Promise<{ withAuthz: unknown; withoutAuthz: unknown }> {
  const loopback = (port: number): { address: string; port: number } => ({ address: '127.0.0.1', port })
  const withAuthz = rewriteEnvoyConfig(await loadEnvoyConfig(), {
    listener: loopback(0),
    admin: loopback(0),
    clusters: { portcullis: loopback(portcullisPort), upstream: loopback(upstreamPort) },
  })
  return { withAuthz, withoutAuthz: withoutExtAuthz(withAuthz) }
}

/** A copy of an Envoy bootstrap config with every `envoy.filters.http.ext_authz` HTTP filter removed. */
export function withoutExtAuthz(config: unknown): unknown {
  const copy = structuredClone(config) as {
    static_resources?: { listeners?: { filter_chains?: { filters?: { typed_config?: { http_filters?: { name?: string }[] } }[] }[] }[] }
  }
  let removed = 0
  for (const l of copy.static_resources?.listeners ?? []) {
    for (const chain of l.filter_chains ?? []) {
      for (const f of chain.filters ?? []) {
        const hf = f.typed_config?.http_filters
        if (hf === undefined) continue
        const kept = hf.filter((x) => x.name !== EXT_AUTHZ)
        removed += hf.length - kept.length
        f.typed_config!.http_filters = kept
      }
    }
  }
  if (removed !== 1) throw new Error(`expected exactly one ${EXT_AUTHZ} filter in envoy/envoy.yaml, removed ${removed}`)
  return copy
}

export interface Proc {
  readonly pid: number
  readonly port: number
  stop(): Promise<void>
}

function exitedPromise(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.once('error', () => resolve())
  })
}

/** SIGTERM, SIGKILL after `graceMs`; resolves on exit. Registered for process exit too. */
function stopper(child: ChildProcess, graceMs = 5_000): () => Promise<void> {
  const exited = exitedPromise(child)
  const kill = (): void => void child.kill('SIGKILL')
  process.once('exit', kill)
  void exited.then(() => process.off('exit', kill))
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(t)
    }
  }
}

/** Envoy 1.40 (installed by test/global-setup.ts) with `config`, `--concurrency 1`, on loopback. */
export async function startEnvoy(config: unknown): Promise<Proc & { adminPort: number }> {
  const bin = envoyBinary()
  if (!existsSync(bin)) throw new Error(`Envoy is not installed at ${bin}: run the end-to-end tests once (npx vitest run test/e2e/envoy.test.ts), which install it`)
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-envoy-'))
  const configPath = join(dir, 'envoy.yaml')
  const adminPath = join(dir, 'admin-address')
  await writeFile(configPath, stringify(config))
  const child = spawn(
    bin,
    ['-c', configPath, '--admin-address-path', adminPath, '--use-dynamic-base-id', '--disable-hot-restart', '--concurrency', '1', '-l', 'warning'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const lines: string[] = []
  createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l))
  const stopChild = stopper(child)
  const stop = async (): Promise<void> => {
    await stopChild()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const adminPort = await until('Envoy admin address', 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`Envoy exited:\n${lines.join('\n')}`)
      const port = Number(/:(\d+)\s*$/.exec(await readFile(adminPath, 'utf8').catch(() => ''))?.[1])
      return port > 0 ? port : undefined
    })
    await until('Envoy /ready', 30_000, async () => ((await httpGet(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 200 ? true : undefined))
    const listeners = JSON.parse((await httpGet(`http://127.0.0.1:${adminPort}/listeners?format=json`)).body) as {
      listener_statuses?: { local_address?: { socket_address?: { port_value?: number } } }[]
    }
    const port = listeners.listener_statuses?.[0]?.local_address?.socket_address?.port_value
    if (port === undefined) throw new Error('Envoy did not report its listener port')
    return { pid: child.pid!, port, adminPort, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** `envoy --version`'s version field. */
export function envoyVersion(): string {
  try {
    const out = execFileSync(envoyBinary(), ['--version'], { encoding: 'utf8', timeout: 30_000 })
    return out.trim().replace(/^.*?version:\s*/, '')
  } catch {
    return 'unknown'
  }
}

// ---------------------------------------------------------------------------------------------
// Upstream and Portcullis

/** bench/envoy/upstream.ts in its own process. */
export async function startUpstream(): Promise<Proc> {
  const child = spawn(process.execPath, [UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] })
  const stop = stopper(child)
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => resolve((JSON.parse(l) as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`upstream exited with ${String(code)}`)))
  })
  return { pid: child.pid!, port, stop }
}

export interface PortcullisOptions {
  readonly jwksUrl: string
  /** `serve.workers` (1 = single process). */
  readonly workers?: number
  /** Where the process' stdout (JSON log lines) goes. */
  readonly logFile: string
  /** Node/V8 flags for Portcullis (e.g. `--max-semi-space-size=64`), space-separated. */
  readonly nodeOptions?: string
  /** CPU list for Portcullis (taskset -c), e.g. "1"; undefined = unpinned. */
  readonly cpus?: string
}

/** The rule measured: JWT (RS256, JWKS), allow, header mutator. */
export const JWT_RULES = [
  {
    id: 'jwt-api',
    description: 'A valid JWT for audience api reaches the upstream with X-User.',
    match: { url: '<http|https>://<[^/]+>/jwt/<.*>', methods: ['GET'] },
    authenticators: [{ handler: 'jwt' }],
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}' } } }],
  },
]

export const ISSUER = 'https://idp.bench.example'
export const AUDIENCE = 'api'

export function portcullisConfig(o: { jwksUrl: string; workers?: number }): Record<string, unknown> {
  return {
    serve: {
      ...(o.workers !== undefined && o.workers > 1 ? { workers: o.workers } : {}),
      grpc: { host: '127.0.0.1', port: 0 },
      api: { host: '127.0.0.1', port: 0 },
      prometheus: { host: '127.0.0.1', port: 0 },
    },
    access_rules: { matching_strategy: 'regexp', repositories: ['file://./rules.yaml'] },
    authenticators: { jwt: { enabled: true, config: { jwks_urls: [o.jwksUrl], trusted_issuers: [ISSUER], target_audience: [AUDIENCE] } } },
    authorizers: { allow: { enabled: true } },
    mutators: { header: { enabled: true, config: { headers: {} } } },
    errors: { fallback: ['json'], handlers: { json: { enabled: true, config: { verbose: false } } } },
    // At thousands of requests per second one allow in a hundred is logged (every denial is).
    log: { level: 'info', decision_sample: { allow: 0.01, deny: 1 } },
  }
}

/**
 * The built CLI (`node dist/src/cli.js serve`) with the JWT rule; resolves once `/health/ready`
 * answers 200 (the JWKS has been fetched). `pids()` lists the primary and workers for CPU
 * accounting.
 */
export async function startPortcullis(o: PortcullisOptions): Promise<Proc & { pids(): number[]; metricsUrl: string | undefined }> {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run \`npm run build\` first`)
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-'))
  await writeFile(join(dir, 'rules.yaml'), stringify(JWT_RULES))
  await writeFile(join(dir, 'portcullis.yaml'), stringify(portcullisConfig(o)))
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PORTCULLIS_')) env[k] = v
  // Passed as node arguments, not NODE_OPTIONS: that refuses most V8 flags (--single-threaded-gc…).
  const nodeArgs = (o.nodeOptions ?? '').split(/\s+/).filter((a) => a !== '')
  const argv = [...nodeArgs, CLI, 'serve', '--config', join(dir, 'portcullis.yaml')]
  // `cpus`: Portcullis (every thread) restricted to these CPUs with taskset, e.g. "1".
  const child =
    o.cpus === undefined
      ? spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('taskset', ['-c', o.cpus, process.execPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  // BENCH_PORTCULLIS_LOG=FILE keeps the server's output (e.g. with --node-options=--trace-gc-nvp).
  const out = createWriteStream(process.env['BENCH_PORTCULLIS_LOG'] ?? o.logFile)
  const lines: { msg?: string; port?: number; worker_pid?: number; path?: string }[] = []
  createInterface({ input: child.stdout! }).on('line', (l) => {
    out.write(`${l}\n`)
    if (lines.length < 10_000 && l.startsWith('{')) {
      try {
        lines.push(JSON.parse(l) as { msg?: string; port?: number })
      } catch {
        // not JSON
      }
    }
  })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l))
  const stopChild = stopper(child, 20_000)
  const stop = async (): Promise<void> => {
    await stopChild()
    out.end()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const want = o.workers !== undefined && o.workers > 1 ? 'all workers ready' : 'access rules loaded'
    await until(`Portcullis to start (${want})`, 30_000, () => {
      if (child.exitCode !== null) throw new Error(`Portcullis exited:\n${stderr.join('\n')}`)
      return lines.some((l) => l.msg === want) ? true : undefined
    })
    const grpcPort = lines.find((l) => l.msg === 'grpc server listening')!.port!
    const apiPort = lines.find((l) => l.msg === 'http api listening')!.port!
    await until('Portcullis /health/ready', 30_000, async () =>
      (await httpGet(`http://127.0.0.1:${apiPort}/health/ready`).catch(() => undefined))?.status === 200 ? true : undefined,
    )
    const pids = (): number[] => [child.pid!, ...lines.filter((l) => l.msg === 'worker ready').map((l) => l.worker_pid!)]
    const m = lines.find((l) => l.msg === 'metrics server listening')
    const metricsUrl = m === undefined ? undefined : `http://127.0.0.1:${m.port}${m.path ?? '/metrics'}`
    return { pid: child.pid!, port: grpcPort, pids, metricsUrl, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// JWKS and tokens

export interface SigningKey {
  readonly privatePem: string
  readonly jwks: { keys: Record<string, unknown>[] }
}

export const KID = 'bench-rs256'

export function makeKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'RS256' }] },
  }
}

/** Serves `jwks` at `/.well-known/jwks.json` on 127.0.0.1 (fetched once per Portcullis start). */
export async function serveJwks(jwks: unknown): Promise<{ url: string; close(): Promise<void> }> {
  const body = JSON.stringify(jwks)
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      }),
  }
}

/** The signing worker (CommonJS, `eval: true`): signs tokens `from..to-1` and posts them back. */
const SIGNER = String.raw`
const { createSign } = require('node:crypto')
const { parentPort, workerData } = require('node:worker_threads')
const { pem, kid, iss, aud, prefix, from, to } = workerData
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
const header = b64({ alg: 'RS256', typ: 'JWT', kid })
const now = Math.floor(Date.now() / 1000)
const out = []
for (let i = from; i < to; i++) {
  const payload = b64({ iss, aud: [aud], sub: prefix + '-' + i, iat: now, nbf: now - 60, exp: now + 4 * 3600, scp: ['read', 'write'], jti: prefix + '.' + i })
  const input = header + '.' + payload
  const s = createSign('RSA-SHA256')
  s.update(input)
  out.push(input + '.' + s.sign(pem).toString('base64url'))
}
parentPort.postMessage(out)
`

/** `count` distinct RS256 tokens (subjects `<prefix>-<i>`), signed on `threads` worker threads. */
export async function signTokens(key: SigningKey, prefix: string, count: number, threads = 2): Promise<string[]> {
  const per = Math.ceil(count / threads)
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const from = t * per
      const to = Math.min(count, from + per)
      if (from >= to) return Promise.resolve([] as string[])
      return new Promise<string[]>((resolve, reject) => {
        const w = new Worker(SIGNER, { eval: true, workerData: { pem: key.privatePem, kid: KID, iss: ISSUER, aud: AUDIENCE, prefix, from, to } })
        w.once('message', (m: string[]) => resolve(m))
        w.once('error', reject)
      })
    }),
  )
  return parts.flat()
}

// ---------------------------------------------------------------------------------------------
// HTTP

export function httpGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc)

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** utime + stime of `pid` (all its threads), in seconds; undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return undefined
  }
}

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat, idle and iowait excluded). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
  return (total - (v[3] ?? 0) - (v[4] ?? 0)) / CLK_TCK
}

export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
}

/** CPU model name from /proc/cpuinfo. */
export function cpuModel(): string {
  try {
    return /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

// ---------------------------------------------------------------------------------------------
// Portcullis' own view (its Prometheus endpoint)

/** What Portcullis measured itself over its lifetime (warm-up included). */
export interface ServerView {
  /** Allowed Checks, and the bucket bound (ms) under which 50 / 99 / 99.9 % of them were answered. */
  readonly checks: number
  readonly checkP50Ms: number | null
  readonly checkP99Ms: number | null
  readonly checkP999Ms: number | null
  /** GC pauses by kind: count and total seconds. */
  readonly gc: Record<string, { count: number; seconds: number }>
  readonly eventLoopLagMaxMs: number | null
  readonly heapUsedBytes: number | null
}

/** Scrapes and summarises Portcullis' metrics (Prometheus text format, `portcullis_` names). */
export async function serverView(url: string): Promise<ServerView> {
  const text = (await httpGet(url)).body
  const buckets: [number, number][] = []
  const gc: Record<string, { count: number; seconds: number }> = {}
  let lagMax: number | null = null
  let heap: number | null = null
  for (const line of text.split('\n')) {
    let m = /^portcullis_check_duration_seconds_bucket\{(?=[^}]*decision="allow")[^}]*le="([^"]+)"[^}]*\} (\S+)$/.exec(line)
    if (m) {
      buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])])
      continue
    }
    m = /^portcullis_nodejs_gc_duration_seconds_(sum|count)\{[^}]*kind="([^"]+)"[^}]*\} (\S+)$/.exec(line)
    if (m) {
      const g = (gc[m[2]!] ??= { count: 0, seconds: 0 })
      if (m[1] === 'sum') g.seconds = Number(m[3])
      else g.count = Number(m[3])
      continue
    }
    m = /^portcullis_nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/.exec(line)
    if (m) lagMax = Number(m[1]) * 1000
    m = /^portcullis_nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)$/.exec(line)
    if (m) heap = Number(m[1])
  }
  buckets.sort((a, b) => a[0] - b[0])
  const total = buckets.at(-1)?.[1] ?? 0
  const q = (p: number): number | null => {
    if (total === 0) return null
    const b = buckets.find(([, c]) => c >= p * total)
    return b === undefined || b[0] === Infinity ? null : b[0] * 1000
  }
  return { checks: total, checkP50Ms: q(0.5), checkP99Ms: q(0.99), checkP999Ms: q(0.999), gc, eventLoopLagMaxMs: lagMax, heapUsedBytes: heap }
}
