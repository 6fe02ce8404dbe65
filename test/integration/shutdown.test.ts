/**
 * Graceful shutdown (security.md §5.6): SIGTERM → NOT_SERVING at once, answers kept coming for the
 * drain period, in-flight Checks completed (or denied at the grace deadline, never cut off into a
 * gRPC error that `failure_mode_allow` would turn into an allow), pools and caches closed, exit 0;
 * a second signal exits at once with 1.
 *
 * The server here is assembled the way main.ts will assemble it (Check handler wrapped by
 * `wrapCheckHandler`, health driven by `Readiness`); signals are emitted on an EventEmitter and
 * `exit` is a callback. The last test runs the built CLI with a real SIGTERM once main.ts/cli.ts
 * use `startLifecycle` (it is skipped until then).
 */
import * as grpc from '@grpc/grpc-js'
import { HealthImplementation, service as HealthService } from 'grpc-health-check'
import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { z } from 'zod'
import { loadConfig } from '../../src/config/load.js'
import { AuthorizationService, type CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { createDeps, disposeDeps } from '../../src/main.js'
import { createLogger } from '../../src/observability/logger.js'
import { authenticators } from '../../src/pipeline/authn/index.js'
import { authorizers } from '../../src/pipeline/authz/index.js'
import { PipelineError } from '../../src/pipeline/errors.js'
import { errorHandlers } from '../../src/pipeline/errors/index.js'
import { mutators } from '../../src/pipeline/mutate/index.js'
import { Registry } from '../../src/pipeline/registry.js'
import { defineHandler, type HandlerDeps, type HandlerFactory } from '../../src/pipeline/types.js'
import { loadRuleSet } from '../../src/rules/compile.js'
import { AUTHORIZATION_SERVICE, createCheckHandler, type RuleSetHolder } from '../../src/server/grpc.js'
import { InFlight, ShutdownConfigSchema, SHUTDOWN_REASON, startLifecycle, wrapCheckHandler, type Lifecycle } from '../../src/server/lifecycle.js'
import { Readiness } from '../../src/server/readiness.js'
import { checkClient, httpRequest, type CheckClient } from '../helpers/check-client.js'
import { ALL_HANDLERS } from '../helpers/in-process.js'
import { CLI_PATH } from '../helpers/portcullis.js'

const H = 'https://api.example.com'

/** An authenticator that takes `ms` to say yes (an IdP round trip), and stops when aborted. */
const slow = defineHandler('authn', 'slow', z.strictObject({ ms: z.number() }), (cfg) => ({
  authenticate: (_req, s, signal) =>
    new Promise<undefined>((resolve, reject) => {
      const t = setTimeout(() => {
        s.subject = 'slow'
        resolve(undefined)
      }, cfg.ms)
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(t)
          reject(new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'aborted', 'aborted'))
        },
        { once: true },
      )
    }),
}))
const registry = new Registry([...authenticators, ...authorizers, ...mutators, ...errorHandlers, slow] as readonly HandlerFactory[])

const rule = (id: string, path: string, authn: unknown, authorizer = 'allow') => ({
  id,
  match: { url: `${H}${path}`, methods: ['GET'] },
  authenticators: [authn],
  authorizer: { handler: authorizer },
  mutators: [{ handler: 'noop' }],
})
const RULES = [
  rule('fast', '/fast/<.*>', { handler: 'anonymous' }),
  rule('denied', '/denied/<.*>', { handler: 'anonymous' }, 'deny'),
  rule('slow', '/slow/<.*>', { handler: 'slow', config: { ms: 250 } }),
  rule('slower', '/slower/<.*>', { handler: 'slow', config: { ms: 700 } }),
  rule('very-slow', '/very-slow/<.*>', { handler: 'slow', config: { ms: 5000 } }),
]

interface Server {
  readonly port: number
  readonly readiness: Readiness
  readonly inflight: InFlight
  readonly deps: HandlerDeps
  readonly logs: string[]
  readonly exits: number[]
  readonly signals: EventEmitter
  readonly lifecycle: Lifecycle
  /** Resolves with the exit code passed to `exit`. */
  readonly exited: Promise<number>
  readonly closed: string[]
  cleanup(): Promise<void>
}

let server: Server | undefined
const clients: CheckClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.cleanup()
  server = undefined
})

async function startServer(shutdown: { drain: string; grace: string }): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-shutdown-'))
  writeFileSync(join(dir, 'rules.yaml'), stringify(RULES))
  writeFileSync(
    join(dir, 'portcullis.yaml'),
    stringify({ ...ALL_HANDLERS, authenticators: { ...ALL_HANDLERS.authenticators, slow: { enabled: true } }, access_rules: { repositories: ['rules.yaml'] } }),
  )
  const loaded = loadConfig({ file: join(dir, 'portcullis.yaml'), env: {} })
  const logs: string[] = []
  const log = createLogger('info', { write: (s: string) => void logs.push(s) })
  const deps = createDeps(loaded, log)
  const holder: RuleSetHolder = { current: loadRuleSet(loaded, registry, deps) }

  // --- what main.ts does (see the wiring notes) ---
  const readiness = new Readiness()
  const inflight = new InFlight()
  const g = new grpc.Server()
  g.addService(AuthorizationService, {
    check: wrapCheckHandler(createCheckHandler(holder, log, { maxCheckDurationMs: 10_000 }), { inflight, log }),
  })
  const health = new HealthImplementation({ '': 'NOT_SERVING', [AUTHORIZATION_SERVICE]: 'NOT_SERVING' })
  health.addToServer(g)
  const port = await new Promise<number>((resolve, reject) =>
    g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  )
  readiness.onChange((ready) => {
    const s = ready ? 'SERVING' : 'NOT_SERVING'
    health.setStatus('', s)
    health.setStatus(AUTHORIZATION_SERVICE, s)
  })
  readiness.set('rules_loaded', true)
  const grpcStop = (graceMs: number): Promise<void> =>
    new Promise((resolve) => {
      const force = setTimeout(() => {
        g.forceShutdown()
        resolve()
      }, graceMs)
      g.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    })
  const cfg = ShutdownConfigSchema.parse(shutdown)
  const signals = new EventEmitter()
  const exits: number[] = []
  const closed: string[] = []
  let exitResolve!: (code: number) => void
  const exited = new Promise<number>((r) => (exitResolve = r))
  const lifecycle = startLifecycle({
    drainMs: cfg.drain,
    graceMs: cfg.grace,
    readiness,
    inflight,
    servers: [{ name: 'grpc', stop: grpcStop }],
    closers: [
      { name: 'watcher', close: () => void closed.push('watcher') },
      {
        name: 'deps',
        close: async () => {
          await disposeDeps(deps)
          closed.push('deps')
        },
      },
    ],
    log,
    process: signals,
    exit: (code) => {
      exits.push(code)
      exitResolve(code)
    },
  })
  return {
    port,
    readiness,
    inflight,
    deps,
    logs,
    exits,
    signals,
    lifecycle,
    exited,
    closed,
    async cleanup() {
      lifecycle.dispose()
      g.forceShutdown()
      await disposeDeps(deps)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function client(port: number): CheckClient {
  const c = checkClient(port)
  clients.push(c)
  return c
}

function healthOf(port: number): Promise<string> {
  const Client = grpc.makeGenericClientConstructor(HealthService, 'Health')
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  return new Promise((resolve, reject) => {
    ;(c as unknown as { check: (r: unknown, o: grpc.CallOptions, cb: (e: Error | null, r?: { status: string | number }) => void) => void }).check(
      { service: AUTHORIZATION_SERVICE },
      { deadline: Date.now() + 2000 },
      (err, res) => {
        c.close()
        if (err || !res) reject(err ?? new Error('no response'))
        else resolve(typeof res.status === 'number' ? (['UNKNOWN', 'SERVING', 'NOT_SERVING'][res.status] ?? '?') : res.status)
      },
    )
  })
}

const allowed = (r: CheckResponse): boolean => r.status?.code === 0

describe('SIGTERM', () => {
  it('under load: NOT_SERVING at once, answers during the drain, in-flight Checks complete, pools closed, exit 0 within the grace', async () => {
    server = await startServer({ drain: '400ms', grace: '2s' })
    const s = server
    const c = client(s.port)
    expect(await healthOf(s.port)).toBe('SERVING')

    // Load: fast allows, fast denials and slow (250 ms) allows, 5 every 5 ms, until the server is gone.
    const answers: { path: string; res?: CheckResponse; err?: grpc.ServiceError; sentAt: number }[] = []
    let stop = false
    let n = 0
    const pending = new Set<Promise<void>>()
    const loop = setInterval(() => {
      if (stop) return
      for (let i = 0; i < 5 && n < 5000; i++, n++) {
        const path = ['/fast/a', '/denied/a', '/slow/a'][n % 3]!
        const sentAt = performance.now()
        const p = c.check(httpRequest({ path }), { deadlineMs: 5000 }).then(
          (res) => void answers.push({ path, res, sentAt }),
          (err: grpc.ServiceError) => void answers.push({ path, err, sentAt }),
        )
        pending.add(p)
        void p.finally(() => pending.delete(p))
      }
    }, 5)
    await new Promise((r) => setTimeout(r, 300))

    const signalAt = performance.now()
    s.signals.emit('SIGTERM', 'SIGTERM')
    // At once: readiness false, and the health service says so (before the drain ends).
    expect(s.readiness.ready).toBe(false)
    expect(s.readiness.check().errors).toHaveProperty('shutdown')
    expect(s.lifecycle.phase).toBe('draining')
    // A 700 ms Check sent now is still running when the drain (400 ms) ends and the server stops
    // accepting; it completes with its real answer within the grace period.
    const late = c.check(httpRequest({ path: '/slower/late' }), { deadlineMs: 5000 }).then(
      (res) => ({ res, sentAt: signalAt }),
      (err: unknown) => ({ err }),
    )
    expect(await healthOf(s.port)).toBe('NOT_SERVING')

    const code = await s.exited
    const stoppedIn = performance.now() - signalAt
    stop = true
    clearInterval(loop)
    await Promise.all([...pending])

    expect(code).toBe(0)
    expect(s.exits).toEqual([0])
    expect(stoppedIn).toBeLessThan(400 + 2000 + 1000)
    const lateAnswer = await late
    expect(lateAnswer).toHaveProperty('res')
    expect(allowed((lateAnswer as { res: CheckResponse }).res)).toBe(true)
    expect(s.closed).toEqual(['watcher', 'deps'])
    expect(s.lifecycle.phase).toBe('stopped')

    // Every answer is the right one: no allow for the denied path, never an allow by accident.
    const answered = answers.filter((a) => a.res !== undefined)
    expect(answered.length).toBeGreaterThan(50)
    for (const a of answered) expect(allowed(a.res!), `${a.path}`).toBe(a.path !== '/denied/a')
    // Calls sent during the drain were answered normally.
    const duringDrain = answered.filter((a) => a.sentAt > signalAt && a.sentAt < signalAt + 350)
    expect(duringDrain.length).toBeGreaterThan(10)
    // After the drain, new calls fail to connect (UNAVAILABLE): Envoy, fail-closed, denies them.
    for (const a of answers.filter((x) => x.err !== undefined)) {
      expect(a.sentAt).toBeGreaterThan(signalAt + 350)
      expect(a.err!.code).toBe(grpc.status.UNAVAILABLE)
    }
    // Nothing left: no Check in flight, the outbound client refuses new calls.
    expect(s.inflight.size).toBe(0)
    await expect(s.deps.http.request({ url: new URL('http://127.0.0.1:9/'), method: 'GET' })).rejects.toMatchObject({ kind: 'aborted' })
    expect(s.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true)
  })

  it('a Check still running when the grace period ends is denied (503, shutting_down), never cut off', async () => {
    server = await startServer({ drain: '0s', grace: '300ms' })
    const s = server
    const c = client(s.port)
    const call = c.check(httpRequest({ path: '/very-slow/a' }), { deadlineMs: 10_000 })
    await new Promise((r) => setTimeout(r, 50))
    expect(s.inflight.size).toBe(1)
    const started = performance.now()
    s.signals.emit('SIGTERM', 'SIGTERM')
    const res = await call
    expect(performance.now() - started).toBeLessThan(1500)
    expect(res.status?.code).toBe(grpc.status.UNAVAILABLE)
    expect(res.deniedResponse?.status?.code).toBe(503)
    expect(res.dynamicMetadata).toMatchObject({ decision: 'deny', reason: SHUTDOWN_REASON })
    expect(await s.exited).toBe(0)
    expect(s.logs.some((l) => l.includes('grace period over'))).toBe(true)
  })

  it('a second signal exits at once with code 1', async () => {
    server = await startServer({ drain: '10s', grace: '10s' })
    const s = server
    s.signals.emit('SIGTERM', 'SIGTERM')
    expect(s.lifecycle.phase).toBe('draining')
    const t = performance.now()
    s.signals.emit('SIGINT', 'SIGINT')
    expect(await s.exited).toBe(1)
    expect(performance.now() - t).toBeLessThan(50)
    expect(s.logs.some((l) => l.includes('second signal'))).toBe(true)
  })

  it('SIGINT starts the same sequence', async () => {
    server = await startServer({ drain: '0s', grace: '1s' })
    server.signals.emit('SIGINT', 'SIGINT')
    expect(server.readiness.ready).toBe(false)
    expect(await server.exited).toBe(0)
  })
})

describe('the sequence, without a server', () => {
  it('a closer that hangs or a server that fails to stop cannot keep the process alive', async () => {
    const logs: string[] = []
    const log = createLogger('info', { write: (l: string) => void logs.push(l) })
    const signals = new EventEmitter()
    const readiness = new Readiness()
    readiness.set('rules_loaded', true)
    const order: string[] = []
    const code = await new Promise<number>((exit) => {
      startLifecycle({
        drainMs: 0,
        graceMs: 100,
        readiness,
        servers: [
          { name: 'broken', stop: () => Promise.reject(new Error('boom')) },
          { name: 'ok', stop: async () => void order.push('ok stopped') },
        ],
        closers: [
          { name: 'hangs', close: () => new Promise<void>(() => order.push('hangs started')) },
          { name: 'after', close: () => void order.push('after closed') },
        ],
        log,
        process: signals,
        exit,
      })
      signals.emit('SIGTERM', 'SIGTERM')
    })
    expect(code).toBe(0)
    expect(order).toEqual(['ok stopped', 'hangs started', 'after closed'])
    expect(logs.some((l) => l.includes('server stop failed') && l.includes('"server":"broken"'))).toBe(true)
    // The listeners are gone once it is over.
    expect(signals.listenerCount('SIGTERM')).toBe(0)
  }, 10_000)
})

describe('config', () => {
  it('defaults: drain 5s, grace 10s; Go durations', () => {
    expect(ShutdownConfigSchema.parse({})).toEqual({ drain: 5000, grace: 10_000 })
    expect(ShutdownConfigSchema.parse({ drain: '0', grace: '1m' })).toEqual({ drain: 0, grace: 60_000 })
    expect(ShutdownConfigSchema.safeParse({ drain: '5' }).success).toBe(false)
    expect(ShutdownConfigSchema.safeParse({ grace: '11m' }).success).toBe(false)
  })
})

describe('readiness', () => {
  it('is one state: every condition must hold; listeners hear changes only', () => {
    const r = new Readiness()
    const heard: boolean[] = []
    r.onChange((ready) => heard.push(ready))
    expect(r.check()).toEqual({ ready: false, errors: { rules_loaded: 'no access rules are loaded' } })
    r.set('rules_loaded', true)
    r.set('rules_loaded', true)
    let warmed = false
    const remove = r.addCondition('jwks_warmed', () => warmed, 'JWKS not fetched yet')
    expect(r.check()).toEqual({ ready: false, errors: { jwks_warmed: 'JWKS not fetched yet' } })
    warmed = true
    expect(r.refresh()).toBe(true)
    r.set('memory_guard', false, 'memory above the soft threshold')
    r.set('memory_guard', true)
    remove()
    r.addCondition('throws', () => {
      throw new Error('x')
    })
    expect(r.check().errors).toEqual({ throws: 'throws not met' })
    r.stop()
    expect(heard).toEqual([false, true, false, true, false, true, false])
  })
})

/** The built CLI, killed with a real SIGTERM: active once cli.ts uses startLifecycle. */
const cliWired = existsSync(CLI_PATH) && readFileSync(CLI_PATH, 'utf8').includes('startLifecycle')
describe('the real CLI', () => {
  it.skipIf(!cliWired)('SIGTERM: NOT_SERVING during the drain, exit code 0; a second signal: exit code 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'))
    writeFileSync(join(dir, 'rules.yaml'), stringify(RULES.slice(0, 2)))
    writeFileSync(
      join(dir, 'portcullis.yaml'),
      stringify({ ...ALL_HANDLERS, serve: { grpc: { port: 0 }, api: { port: 0 }, prometheus: { port: 0 }, shutdown: { drain: '500ms', grace: '1s' } }, access_rules: { repositories: ['rules.yaml'] } }),
    )
    const run = async (signals: number): Promise<{ code: number | null; ms: number; health: string; during: boolean }> => {
      const child = spawn(process.execPath, [CLI_PATH, 'serve', '--config', join(dir, 'portcullis.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] })
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
      const lines: string[] = []
      const waiters: { re: RegExp; resolve: (l: string) => void }[] = []
      createInterface({ input: child.stdout }).on('line', (l) => {
        lines.push(l)
        for (const w of waiters.splice(0)) {
          if (w.re.test(l)) w.resolve(l)
          else waiters.push(w)
        }
      })
      const line = (re: RegExp): Promise<string> => {
        const seen = lines.find((l) => re.test(l))
        if (seen !== undefined) return Promise.resolve(seen)
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no log line ${re} in:\n${lines.join('\n')}`)), 20_000)
          waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) })
        })
      }
      try {
        const listening = JSON.parse(await line(/"msg":"grpc server listening"/)) as { port: number }
        const c = client(listening.port)
        expect(allowed(await c.check(httpRequest({ path: '/fast/a' })))).toBe(true)
        const t0 = performance.now()
        child.kill('SIGTERM')
        // Signals are not queued: wait until the first one was handled before anything else.
        await line(/"msg":"shutting down/)
        let health = 'gone'
        let during = false
        if (signals === 2) child.kill('SIGTERM')
        else {
          health = await healthOf(listening.port)
          during = allowed(await c.check(httpRequest({ path: '/fast/b' })))
        }
        const code = await exited
        if (signals === 1) await line(/"msg":"stopped"/) // flushed before exit
        return { code, ms: performance.now() - t0, health, during }
      } finally {
        child.kill('SIGKILL')
        await exited
      }
    }
    try {
      const once = await run(1)
      expect(once).toMatchObject({ code: 0, health: 'NOT_SERVING', during: true })
      expect(once.ms).toBeLessThan(500 + 1000 + 2000)
      const twice = await run(2)
      expect(twice.code).toBe(1)
      expect(twice.ms).toBeLessThan(400)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
