/**
 * `serve.workers: 2` (src/cluster.ts) with the built CLI: one primary, two workers sharing the
 * gRPC port; both answer Checks (each decision log line names its worker); the primary serves
 * both workers' metrics with a `worker` label; a killed worker is replaced; SIGTERM to the primary
 * stops both workers gracefully and everything exits 0. Needs `npm run build` first.
 */
import * as grpc from '@grpc/grpc-js'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { AuthorizationService, type CheckRequest, type CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { assertInvariant, httpRequest } from '../helpers/check-client.js'
import { REPO_ROOT } from '../helpers/envoy.js'
import { CLI_PATH } from '../helpers/portcullis.js'

const CACHE_MAX_BYTES = 64 * 1024 * 1024

interface LogLine {
  readonly msg?: string
  readonly worker?: number | string
  readonly role?: string
  readonly pid?: number
  readonly worker_pid?: number
  readonly port?: number
  readonly path?: string
  readonly code?: number | null
  readonly decision?: string
  readonly [k: string]: unknown
}

const Client = grpc.makeGenericClientConstructor(AuthorizationService, 'Authorization')

/** A client on a connection of its own (no shared subchannel), so the cluster hands it to the next worker. */
function check(port: number, req: CheckRequest): Promise<CheckResponse> {
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 })
  return new Promise<CheckResponse>((resolve, reject) => {
    ;(client as unknown as { check: (r: CheckRequest, m: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<CheckResponse>) => void }).check(
      req,
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(assertInvariant(res))),
    )
  }).finally(() => client.close())
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 5_000 }, (res) => {
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('serve.workers: 2 (built CLI)', () => {
  let dir: string
  let child: ChildProcess
  const lines: LogLine[] = []
  const raw: string[] = []
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  const find = (pred: (l: LogLine) => boolean): LogLine[] => lines.filter(pred)
  const readyPid = (slot: number, after = 0): number | undefined =>
    lines.slice(after).find((l) => l.msg === 'worker ready' && l.worker === slot)?.worker_pid

  beforeAll(async () => {
    if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} does not exist: run \`npm run build\` first`)
    dir = mkdtempSync(join(tmpdir(), 'portcullis-workers-'))
    writeFileSync(
      join(dir, 'rules.yaml'),
      stringify([
        {
          id: 'public',
          match: { url: '<http|https>://<[^/]+>/public/<.*>', methods: ['GET'] },
          authenticators: [{ handler: 'anonymous' }],
          authorizer: { handler: 'allow' },
          mutators: [{ handler: 'noop' }],
        },
      ]),
    )
    writeFileSync(
      join(dir, 'portcullis.yaml'),
      stringify({
        serve: {
          workers: 2,
          grpc: { host: '127.0.0.1', port: 0 },
          api: { host: '127.0.0.1', port: 0 },
          prometheus: { host: '127.0.0.1', port: 0 },
          shutdown: { drain: '200ms', grace: '1s' },
        },
        access_rules: { repositories: ['file://./rules.yaml'] },
        authenticators: { anonymous: { enabled: true } },
        authorizers: { allow: { enabled: true } },
        mutators: { noop: { enabled: true } },
        cache: { max_bytes: CACHE_MAX_BYTES },
        log: { level: 'info', summary_interval: '0', decision_sample: { allow: 1, deny: 1 } },
      }),
    )
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PORTCULLIS_')) env[k] = v
    child = spawn(process.execPath, [CLI_PATH, 'serve', '--config', join(dir, 'portcullis.yaml')], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    const onLine = (l: string): void => {
      raw.push(l)
      if (!l.startsWith('{')) return
      try {
        lines.push(JSON.parse(l) as LogLine)
      } catch {
        // a partial line: ignore
      }
    }
    createInterface({ input: child.stdout! }).on('line', onLine)
    createInterface({ input: child.stderr! }).on('line', (l) => raw.push(`stderr: ${l}`))
    try {
      await until('all workers ready', () => (find((l) => l.msg === 'all workers ready').length > 0 ? true : undefined), 30_000)
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${raw.join('\n')}`)
    }
  })

  afterAll(async () => {
    // Whatever happened, leave no process behind.
    const pids = new Set<number>()
    for (const l of lines) if (typeof l.worker_pid === 'number') pids.add(l.worker_pid)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  const grpcPort = (): number => {
    const ports = new Set(find((l) => l.msg === 'grpc server listening').map((l) => l.port))
    expect(ports.size, 'every worker listens on the same gRPC port').toBe(1)
    return [...ports][0]!
  }

  /** Sends Checks on fresh connections until both workers have logged a decision since line `from`. */
  const bothWorkersAnswer = async (from: number): Promise<void> => {
    const port = grpcPort()
    const seen = new Set<unknown>()
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const res = await check(port, httpRequest({ path: `/public/${i}` }))
      expect(res.status?.code).toBe(0)
      await until('the decision log line', () => {
        const d = lines.slice(from).filter((l) => l.msg === 'decision' && l.decision === 'allow')
        for (const l of d) seen.add(l.worker)
        return d.length > i ? true : undefined
      }, 5_000)
    }
    expect([...seen].sort()).toEqual([1, 2])
  }

  it('starts two workers with half the cache budget each, on one gRPC port', () => {
    const start = find((l) => l.msg === 'starting workers')[0]
    expect(start).toMatchObject({ role: 'primary', workers: 2, cache_max_bytes_per_worker: CACHE_MAX_BYTES / 2 })
    expect(find((l) => l.msg === 'worker ready').map((l) => l.worker).sort()).toEqual([1, 2])
    grpcPort()
  })

  it('both workers answer Checks', async () => {
    await bothWorkersAnswer(0)
  })

  it('the primary serves both workers\' metrics, labelled by worker', async () => {
    const m = find((l) => l.msg === 'metrics server listening' && l.role === 'primary')[0]
    expect(m, 'the primary serves the metrics').toBeDefined()
    expect(find((l) => l.msg === 'metrics server listening' && typeof l.worker === 'number')).toEqual([])
    const res = await httpGet(`http://127.0.0.1:${m!.port}${m!.path}`)
    expect(res.status).toBe(200)
    expect(res.body).toMatch(/^portcullis_rules_loaded\{worker="1"\} 1$/m)
    expect(res.body).toMatch(/^portcullis_rules_loaded\{worker="2"\} 1$/m)
    expect(res.body).toMatch(/^portcullis_decisions_total\{rule="public",decision="allow",code="",worker="1"\} \d+$/m)
  })

  it('a killed worker is replaced', async () => {
    const old = readyPid(1)!
    expect(alive(old)).toBe(true)
    const mark = lines.length
    process.kill(old, 'SIGKILL')
    await until('the restart log line', () => lines.slice(mark).find((l) => l.msg === 'worker exited: restarting' && l.worker === 1))
    const replacement = await until('a new worker 1', () => readyPid(1, mark))
    expect(replacement).not.toBe(old)
    expect(alive(replacement)).toBe(true)
    await bothWorkersAnswer(lines.length)
  })

  it('SIGTERM to the primary stops both workers gracefully; exit code 0', async () => {
    const pids = [readyPid(1, lines.map((l) => l.msg === 'worker ready' && l.worker === 1).lastIndexOf(true)), readyPid(2)]
    expect(pids.every((p) => p !== undefined && alive(p))).toBe(true)
    child.kill('SIGTERM')
    const { code, signal } = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 20 s:\n${raw.slice(-20).join('\n')}`)), 20_000)),
    ])
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    const stopped = find((l) => l.msg === 'worker stopped')
    expect(stopped.map((l) => [l.worker, l.code]).sort()).toEqual([
      [1, 0],
      [2, 0],
    ])
    // Each worker ran its own drain/grace sequence.
    expect(find((l) => l.msg === 'shutting down: not ready, draining').map((l) => l.worker).sort()).toEqual([1, 2])
    for (const pid of pids) expect(alive(pid!)).toBe(false)
  })
})

describe('serve.workers: 2, a rule set that does not load (built CLI)', () => {
  it('the first worker reports the problem once and the primary exits 1 without starting the others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-workers-bad-'))
    try {
      // `deny` is not enabled in the config: the rule set fails to compile.
      writeFileSync(
        join(dir, 'rules.yaml'),
        stringify([{ id: 'r', match: { url: '<.*>', methods: ['GET'] }, authenticators: [{ handler: 'anonymous' }], authorizer: { handler: 'deny' }, mutators: [{ handler: 'noop' }] }]),
      )
      writeFileSync(
        join(dir, 'portcullis.yaml'),
        stringify({
          serve: { workers: 2, grpc: { port: 0 }, api: { port: 0 }, prometheus: { port: 0 } },
          access_rules: { repositories: ['file://./rules.yaml'] },
          authenticators: { anonymous: { enabled: true } },
          mutators: { noop: { enabled: true } },
        }),
      )
      const env: Record<string, string> = {}
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PORTCULLIS_')) env[k] = v
      const child = spawn(process.execPath, [CLI_PATH, 'serve', '--config', join(dir, 'portcullis.yaml')], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      const out: string[] = []
      const err: string[] = []
      createInterface({ input: child.stdout }).on('line', (l) => out.push(l))
      createInterface({ input: child.stderr }).on('line', (l) => err.push(l))
      const code = await Promise.race([
        new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c))),
        new Promise<never>((_, reject) =>
          setTimeout(() => {
            child.kill('SIGKILL')
            reject(new Error(`no exit within 20 s:\n${out.join('\n')}\n${err.join('\n')}`))
          }, 20_000),
        ),
      ])
      expect(code).toBe(1)
      const text = err.join('\n')
      expect(text).toMatch(/deny/)
      // Reported by worker 1 only: worker 2 was never forked.
      expect(out.filter((l) => l.includes('"msg":"worker failed to start"'))).toHaveLength(1)
      expect(out.some((l) => l.includes('"worker":2'))).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
