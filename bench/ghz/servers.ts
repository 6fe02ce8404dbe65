/**
 * Starts the servers under test, pinned to the server core, and checks before any load that each
 * answers the benchmark request the way the scenario expects (a misconfigured rule answering fast
 * denials would make a fast, meaningless benchmark): the baselines answer OK, Portcullis answers
 * OK with the rule's `x-user` header.
 * @module
 */
import * as grpc from '@grpc/grpc-js'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { AuthorizationService, CheckRequest, type CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { isBaseline, type PreparedScenario, type PortcullisPorts } from '../fixtures/scenarios.js'
import { freePort, spawnPinned, waitFor, type Spawned } from './proc.js'

/** Repository root (this file runs from dist/bench/ghz/ or, under vitest, bench/ghz/). */
export const REPO_ROOT = (() => {
  const here = new URL('.', import.meta.url).pathname
  const up = here.includes('/dist/bench/') ? '../../..' : '../..'
  return resolve(here, up)
})()
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js')
export const BASELINE = join(REPO_ROOT, 'dist', 'bench', 'baseline-server.js')
export const STUB = join(REPO_ROOT, 'dist', 'bench', 'fixtures', 'introspection-stub.js')

export interface Target {
  readonly scenario: PreparedScenario
  readonly port: number
  readonly pid: number
  /** Portcullis' metrics endpoint (`serve.prometheus`), undefined for the baselines. */
  readonly metricsUrl: string | undefined
  stop(): Promise<void>
}

export async function freePorts(): Promise<PortcullisPorts> {
  return { grpc: await freePort(), prometheus: await freePort(), api: await freePort() }
}

/** Reads the first JSON line of a child's stdout that has a `port`. */
function portFromStdout(s: Spawned, what: string, timeoutMs = 15_000): Promise<number> {
  return new Promise((res, rej) => {
    const lines: string[] = []
    const t = setTimeout(() => rej(new Error(`${what} did not report its port:\n${lines.join('\n')}`)), timeoutMs)
    const rl = createInterface({ input: s.child.stdout! })
    rl.on('line', (l) => {
      lines.push(l)
      try {
        const port = (JSON.parse(l) as { port?: unknown }).port
        if (typeof port === 'number') {
          clearTimeout(t)
          rl.close()
          s.child.stdout?.resume()
          res(port)
        }
      } catch {
        // not JSON
      }
    })
    s.child.stderr?.on('data', (d: Buffer) => lines.push(d.toString()))
    void s.exited.then((code) => {
      clearTimeout(t)
      rej(new Error(`${what} exited (${String(code)}) before listening:\n${lines.join('\n')}`))
    })
  })
}

export async function startIntrospectionStub(cpu: number | undefined): Promise<{ origin: string; pid: number; stop(): Promise<void> }> {
  const s = spawnPinned(cpu, process.execPath, [STUB, '--port', '0'])
  const port = await portFromStdout(s, 'introspection stub')
  return { origin: `http://127.0.0.1:${port}`, pid: s.pid, stop: () => s.stop() }
}

/**
 * Starts the scenario's server pinned to `cpu`. Portcullis' stdout (its logs, including the
 * decision log) goes to `<dir>/portcullis.log`, as a container runtime would collect it.
 */
export async function startTarget(
  scenario: PreparedScenario,
  ports: PortcullisPorts | undefined,
  cpu: number | undefined,
  nodeArgs: readonly string[] = [],
  cli: string = CLI,
): Promise<Target> {
  if (isBaseline(scenario.id)) {
    const mode = scenario.id === 'baseline-raw' ? 'raw' : 'decode'
    const s = spawnPinned(cpu, process.execPath, [...nodeArgs, BASELINE, '--port', '0', '--mode', mode], { cwd: scenario.dir })
    const port = await portFromStdout(s, 'baseline server')
    await verify(port, scenario, false)
    return { scenario, port, pid: s.pid, metricsUrl: undefined, stop: () => s.stop() }
  }
  if (ports === undefined || scenario.configPath === undefined) throw new Error(`${scenario.id}: no config`)
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTCULLIS_')) env[k] = v
  const logFile = join(scenario.dir, 'portcullis.log')
  let fatal: FatalSetupError | undefined
  const s = spawnPinned(cpu, process.execPath, [...nodeArgs, cli, 'serve', '--config', scenario.configPath], { env, cwd: scenario.dir, stdoutFile: logFile })
  try {
    await waitFor(`Portcullis (${scenario.id})`, 60_000, async () => {
      if (s.child.exitCode !== null) throw new Error(`exited with ${s.child.exitCode}: ${tail(logFile)}`)
      try {
        return (await verify(ports.grpc, scenario, true)) ? true : undefined
      } catch (err) {
        if (err instanceof FatalSetupError) fatal = err
        throw err
      }
    }, () => fatal !== undefined)
  } catch (err) {
    await s.stop()
    throw err
  }
  return { scenario, port: ports.grpc, pid: s.pid, metricsUrl: `http://127.0.0.1:${ports.prometheus}/metrics`, stop: () => s.stop(10_000) }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

const Client = grpc.makeGenericClientConstructor(
  { check: { ...AuthorizationService.check, requestSerialize: (b: Buffer) => b } },
  'AuthorizationBench',
)

/** A denial that retrying will not fix (wrong rule, wrong credential). */
export class FatalSetupError extends Error {}

/** Sends the scenario's first request; true when the answer is what the scenario must answer. */
export async function verify(port: number, scenario: PreparedScenario, portcullis: boolean): Promise<boolean> {
  const bytes = firstMessage(scenario)
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  try {
    const res = await new Promise<CheckResponse>((resolveRes, reject) => {
      ;(client as unknown as { check: (r: Buffer, m: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<CheckResponse>) => void }).check(
        bytes,
        new grpc.Metadata(),
        { deadline: Date.now() + 2000 },
        (err, r) => (err || r === undefined ? reject(err ?? new Error('no response')) : resolveRes(r)),
      )
    })
    if (res.status?.code !== 0) {
      // UNAVAILABLE while starting (key set not read yet) is retried; any other denial is a setup bug.
      if (res.status?.code === 14) return false
      throw new FatalSetupError(`${scenario.id}: the benchmark request was denied: ${JSON.stringify(res.status)} ${res.deniedResponse?.body ?? ''}`)
    }
    if (!portcullis) return true
    const user = res.okResponse?.headers.find((h) => h.header?.key === 'x-user')?.header?.value
    if (user === undefined || user === '') throw new FatalSetupError(`${scenario.id}: allowed without the x-user header`)
    return true
  } finally {
    client.close()
  }
}

/** The first length-delimited message of the ghz data file. */
export function firstMessage(scenario: PreparedScenario): Buffer {
  const buf = readFileSync(scenario.h2loadBody)
  return buf.subarray(5)
}

/** Decodes the request (sanity check for tests). */
export function firstRequest(scenario: PreparedScenario): CheckRequest {
  return CheckRequest.decode(firstMessage(scenario))
}

/** Scrapes Prometheus text and sums every series by metric name (labels dropped). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line)
    if (m === null) continue
    const v = Number(m[2])
    if (Number.isFinite(v)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + v)
  }
  return out
}
