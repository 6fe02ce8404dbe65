/**
 * Hot reload against the real server (security.md §5.5): a gRPC client sends ~1 000 Checks/s while
 * the rule files are rewritten — valid, truncated YAML, invalid JSON, unknown handler, duplicate id,
 * valid again — and every answer must come from exactly one rule-set snapshot, one that was serving
 * while the call was in flight; invalid sets never replace the last good one. Plus: ConfigMap
 * symlink swaps, deleted files, config-file reloads, readiness with zero rules, and release of the
 * caches tied to removed rules.
 */
import * as grpc from '@grpc/grpc-js'
import { service as HealthService } from 'grpc-health-check'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { z } from 'zod'
import { CacheBudget } from '../../src/cache/budget.js'
import { CacheRegistry } from '../../src/cache/registry.js'
import { loadConfig } from '../../src/config/load.js'
import { CheckRequest, CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { HttpClient, OutboundConfigSchema } from '../../src/http/client.js'
import { startPortcullis, type Portcullis } from '../../src/main.js'
import { createLogger, type Logger } from '../../src/observability/logger.js'
import { authenticators } from '../../src/pipeline/authn/index.js'
import { authorizers } from '../../src/pipeline/authz/index.js'
import { errorHandlers } from '../../src/pipeline/errors/index.js'
import { mutators } from '../../src/pipeline/mutate/index.js'
import { defaultRegistry, Registry } from '../../src/pipeline/registry.js'
import { defineHandler, type HandlerDeps, type HandlerFactory } from '../../src/pipeline/types.js'
import { loadRuleSet, type RuleSet } from '../../src/rules/compile.js'
import { RemoteRepositories, type RemoteSource } from '../../src/rules/fetch-remote.js'
import { readRepositories } from '../../src/rules/load.js'
import { Reloader, type ReloadOutcome } from '../../src/rules/reload.js'
import { ReloadConfigSchema, RuleWatcher } from '../../src/rules/watch.js'
import { Readiness } from '../../src/server/readiness.js'
import { Worker } from 'node:worker_threads'
import { assertInvariant, checkClient, headerOf, httpRequest } from '../helpers/check-client.js'
import { ALL_HANDLERS } from '../helpers/in-process.js'
import { startStub } from '../helpers/stub-server.js'

const H = 'https://api.example.com'

/** Version `v` of the rule set: every allow says which version answered, in three places. */
function versionRules(v: number, extra: Record<string, unknown>[] = []): unknown[] {
  const rule = (id: string, url: string, headers: Record<string, string>) => ({
    id,
    match: { url, methods: ['GET'] },
    authenticators: [{ handler: 'anonymous' }],
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers } }],
  })
  return [
    rule(`main-v${v}`, `${H}/main/<.*>`, { 'X-Version': String(v), [`X-Main-${v}`]: 'y' }),
    rule(`side-v${v}`, `${H}/side/<.*>`, { 'X-Version': String(v), [`X-Side-${v}`]: 'y' }),
    ...extra,
  ]
}

/** Managed headers the version-`v` answer for `which` must remove (the other rule's header). */
function expectedRemovals(v: number, which: 'main' | 'side'): string[] {
  return [which === 'main' ? `x-side-${v}` : `x-main-${v}`]
}

interface Env {
  readonly dir: string
  readonly app: Portcullis
  readonly reloader: Reloader
  readonly watcher: RuleWatcher
  readonly readiness: Readiness
  readonly logs: string[]
  readonly outcomes: { readonly at: number; readonly outcome: ReloadOutcome }[]
  /** Resolves with the next reload outcome. */
  nextOutcome(timeoutMs?: number): Promise<ReloadOutcome>
  stop(): Promise<void>
}

let env: Env | undefined
afterEach(async () => {
  await env?.stop()
  env = undefined
})

/** Starts the real server with a config file in a temp dir, plus readiness, reloader and watcher. */
async function start(opts: {
  repositories: string[]
  files: (dir: string) => void
  config?: Record<string, unknown>
  /** 'warn' skips the per-decision log lines (the load test). */
  logLevel?: string
}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'))
  opts.files(dir)
  const cfg = { ...ALL_HANDLERS, ...opts.config, serve: { grpc: { host: '127.0.0.1', port: 0 }, api: { port: 0 }, prometheus: { port: 0 } }, access_rules: { repositories: opts.repositories } }
  writeFileSync(join(dir, 'portcullis.yaml'), stringify(cfg))
  const logs: string[] = []
  const log = createLogger(opts.logLevel ?? 'info', { write: (s: string) => void logs.push(s) })
  let app: Portcullis
  try {
    app = await startPortcullis({ configFile: join(dir, 'portcullis.yaml'), env: {}, log })
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  // Once main.ts builds readiness, reloader and watcher itself, use its reloader and readiness
  // (and replace its watcher by one with test timings); until then, assemble them here the same way.
  const wired = app as unknown as Partial<{ reloader: Reloader; readiness: Readiness; watcher: RuleWatcher }>
  let readiness: Readiness
  let reloader: Reloader
  if (wired.reloader !== undefined && wired.readiness !== undefined && wired.watcher !== undefined) {
    wired.watcher.stop()
    readiness = wired.readiness
    reloader = wired.reloader
  } else {
    readiness = new Readiness()
    readiness.onChange((ready) => app.grpc.setServing(ready))
    reloader = new Reloader({ holder: app.holder, loaded: app.loaded, registry: defaultRegistry(), deps: app.deps, log, readiness, env: {} })
  }
  const outcomes: Env['outcomes'][number][] = []
  let waiters: ((o: ReloadOutcome) => void)[] = []
  reloader.onReload((outcome) => {
    outcomes.push({ at: now(), outcome })
    const ws = waiters
    waiters = []
    for (const w of ws) w(outcome)
  })
  const watcher = new RuleWatcher({ reloader, config: ReloadConfigSchema.parse({ debounce: '30ms', poll_interval: '0' }), log })
  watcher.start()
  return {
    dir,
    app,
    reloader,
    watcher,
    readiness,
    logs,
    outcomes,
    nextOutcome(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reload outcome within ${timeoutMs} ms`)), timeoutMs)
        waiters.push((o) => {
          clearTimeout(t)
          resolve(o)
        })
      })
    },
    async stop() {
      watcher.stop()
      readiness.stop()
      await app.stop(1000)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Atomic replace: write a temporary file, rename it over the target. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

/** A clock both threads share: epoch ms with sub-ms resolution. */
const now = (): number => performance.timeOrigin + performance.now()

interface LoadResult {
  /** Index of the request sent. */
  readonly i: number
  readonly t0: number
  readonly t1: number
  readonly bytes?: Uint8Array
  readonly err?: string
}

/**
 * A paced gRPC load generator in a worker thread: sends the pre-encoded `requests` round-robin at
 * `ratePerSec` (at most `maxOutstanding` in flight, `maxRequests` in all) until `stop()`, which
 * waits (≤ 10 s) for the calls in flight and returns every call's timing and raw response.
 */
function startLoad(
  port: number,
  requests: Uint8Array[],
  o: { ratePerSec: number; maxOutstanding: number; maxRequests: number },
): { started: Promise<void>; stop(): Promise<LoadResult[]> } {
  const code = `
    const grpc = require('@grpc/grpc-js')
    const { parentPort, workerData } = require('node:worker_threads')
    const { port, requests, ratePerSec, maxOutstanding, maxRequests } = workerData
    const id = (b) => Buffer.from(b)
    const Client = grpc.makeGenericClientConstructor({ check: {
      path: '/envoy.service.auth.v3.Authorization/Check', requestStream: false, responseStream: false,
      requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id,
    } }, 'Raw')
    const client = new Client('127.0.0.1:' + port, grpc.credentials.createInsecure())
    const now = () => performance.timeOrigin + performance.now()
    const results = []
    let sent = 0, outstanding = 0, stopping = false, begin
    const bufs = requests.map((r) => Buffer.from(r))
    const tick = () => {
      const due = Math.floor((ratePerSec * (now() - begin)) / 1000)
      while (!stopping && sent < due && sent < maxRequests && outstanding < maxOutstanding) {
        const i = sent % bufs.length
        sent++
        outstanding++
        const t0 = now()
        client.check(bufs[i], new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, res) => {
          outstanding--
          results.push(err ? { i, t0, t1: now(), err: String(err.message) } : { i, t0, t1: now(), bytes: new Uint8Array(res) })
        })
      }
    }
    client.waitForReady(Date.now() + 5000, (err) => {
      if (err) throw err
      begin = now()
      const timer = setInterval(tick, 2)
      parentPort.postMessage({ started: true })
      parentPort.on('message', () => {
        stopping = true
        clearInterval(timer)
        const until = Date.now() + 10000
        const wait = () => (outstanding === 0 || Date.now() > until ? finish() : setTimeout(wait, 5))
        const finish = () => { client.close(); parentPort.postMessage({ results, outstanding }) }
        wait()
      })
    })
  `
  const worker = new Worker(code, { eval: true, workerData: { port, requests, ...o } })
  let startedResolve!: () => void
  let failed: ((e: Error) => void) | undefined
  const started = new Promise<void>((resolve, reject) => {
    startedResolve = resolve
    failed = reject
  })
  let done!: (r: LoadResult[]) => void
  let fail!: (e: Error) => void
  const finished = new Promise<LoadResult[]>((resolve, reject) => {
    done = resolve
    fail = reject
    worker.once('error', reject)
  })
  worker.once('error', (e) => failed?.(e))
  worker.on('message', (m: { started?: true; results?: LoadResult[]; outstanding?: number }) => {
    if (m.started) startedResolve()
    if (m.results) {
      if (m.outstanding !== 0) fail(new Error(`${m.outstanding} calls still outstanding after 10 s`))
      else done(m.results)
      void worker.terminate()
    }
  })
  return {
    started,
    stop() {
      worker.postMessage('stop')
      return finished
    },
  }
}

function healthStatus(port: number): Promise<string> {
  const Client = grpc.makeGenericClientConstructor(HealthService, 'Health')
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  return new Promise((resolve, reject) => {
    ;(c as unknown as { check: (r: unknown, cb: (e: Error | null, r?: { status: string | number }) => void) => void }).check(
      { service: 'envoy.service.auth.v3.Authorization' },
      (err, res) => {
        c.close()
        if (err || !res) reject(err ?? new Error('no response'))
        else resolve(typeof res.status === 'number' ? (['UNKNOWN', 'SERVING', 'NOT_SERVING'][res.status] ?? '?') : res.status)
      },
    )
  })
}

describe('reload under load', () => {
  it('~1 000 Checks/s while the rules are rewritten: zero failed Checks, every answer from one snapshot, invalid sets rejected', async () => {
    env = await start({
      repositories: ['rules'],
      logLevel: 'warn',
      files: (dir) => {
        mkdirSync(join(dir, 'rules'))
        writeFileSync(join(dir, 'rules', 'main.yaml'), stringify(versionRules(1)))
      },
    })
    const e = env
    const main = join(e.dir, 'rules', 'main.yaml')
    /** (time the version became live, version), in order. */
    const timeline: { at: number; v: number }[] = [{ at: 0, v: 1 }]

    // --- load: ~1 000 Checks/s from a worker thread (so the client does not eat the server's CPU) ---
    const requests = (['main', 'side'] as const).map((which) => CheckRequest.encode(httpRequest({ path: `/${which}/x` })).finish())
    const load = startLoad(e.app.grpc.port, requests, { ratePerSec: 1000, maxOutstanding: 200, maxRequests: 30_000 })
    await load.started
    const loadStarted = now()

    // --- the rewrites, each waited for (event-driven), each followed by a short dwell under load ---
    const dwell = (): Promise<void> => new Promise((r) => setTimeout(r, 120))
    type Step = { name: string; apply: () => void; ok: boolean; version?: number }
    const steps: Step[] = []
    for (let cycle = 0; cycle < 2; cycle++) {
      const good = 2 + cycle * 2 // 2, 4
      const next = good + 1 // 3, 5: never becomes live
      steps.push(
        { name: `valid v${good}`, apply: () => replace(main, stringify(versionRules(good))), ok: true, version: good },
        {
          name: 'truncated YAML (written in place)',
          apply: () => {
            const text = stringify(versionRules(next))
            writeFileSync(main, text.slice(0, Math.floor(text.length / 2)) + '\n  - [unclosed')
          },
          ok: false,
        },
        { name: `valid v${good} again`, apply: () => replace(main, stringify(versionRules(good))), ok: true, version: good },
        { name: 'invalid JSON file added', apply: () => writeFileSync(join(e.dir, 'rules', 'broken.json'), '[{"id": "x",'), ok: false },
        { name: 'invalid JSON file removed', apply: () => unlinkSync(join(e.dir, 'rules', 'broken.json')), ok: true, version: good },
        {
          name: 'unknown handler',
          apply: () =>
            replace(main, stringify(versionRules(next, [{ id: 'bad', match: { url: `${H}/bad`, methods: ['GET'] }, authenticators: [{ handler: 'anonymous' }], authorizer: { handler: 'no_such_authorizer' }, mutators: [{ handler: 'noop' }] }]))),
          ok: false,
        },
        {
          name: 'duplicate id',
          apply: () => replace(main, stringify([...versionRules(next), ...versionRules(next).slice(0, 1)])),
          ok: false,
        },
        { name: `disabled handler`, apply: () => replace(main, stringify(versionRules(next, [{ id: 'off', match: { url: `${H}/off`, methods: ['GET'] }, authenticators: [{ handler: 'jwt' }], authorizer: { handler: 'allow' }, mutators: [{ handler: 'noop' }] }]))), ok: false },
      )
    }
    steps.push({ name: 'valid v6', apply: () => replace(main, stringify(versionRules(6))), ok: true, version: 6 })

    let expectedFailures = 0
    let expectedSuccesses = 0
    let raw: LoadResult[] = []
    try {
      await dwell()
      for (const step of steps) {
        const serving = e.app.holder.current
        const outcome = e.nextOutcome()
        step.apply()
        const o = await outcome
        expect(o.ok, `${step.name}: ${o.ok ? '' : o.problems.join('; ')}`).toBe(step.ok)
        if (o.ok) {
          expectedSuccesses++
          timeline.push({ at: e.outcomes.at(-1)!.at, v: step.version! })
        } else {
          expectedFailures++
          expect(e.app.holder.current, `${step.name}: the last good set keeps serving`).toBe(serving)
          expect(e.readiness.ready, `${step.name}: readiness unchanged`).toBe(true)
        }
        await dwell()
      }
    } finally {
      raw = await load.stop()
    }
    const seconds = (now() - loadStarted) / 1000
    const results = raw.map((r) => ({
      ...r,
      which: r.i === 0 ? ('main' as const) : ('side' as const),
      res: r.bytes === undefined ? undefined : assertInvariant(CheckResponse.decode(r.bytes)),
    }))

    // --- verdicts ---
    const errors = results.filter((r) => r.err !== undefined)
    expect(errors.map((r) => r.err).slice(0, 3), 'zero failed Checks').toEqual([])
    const rate = results.length / seconds
    console.log(`[reload under load] ${results.length} Checks in ${seconds.toFixed(1)} s (${rate.toFixed(0)}/s), ${steps.length} rewrites`)
    // The pacing asks for 1 000/s; what a shared 2-core box delivers varies, so only a floor is
    // asserted, plus what matters: calls were in flight across the swaps.
    expect(results.length).toBeGreaterThan(1000)
    const spanningSwaps = results.filter((r) => timeline.some((p) => p.at > r.t0 && p.at < r.t1)).length
    console.log(`[reload under load] ${spanningSwaps} Checks were in flight during a swap`)
    expect(spanningSwaps).toBeGreaterThan(0)

    const liveDuring = (t0: number, t1: number): Set<number> => {
      const out = new Set<number>()
      let atStart = timeline[0]!.v
      for (const p of timeline) {
        if (p.at <= t0) atStart = p.v
        else if (p.at <= t1) out.add(p.v)
      }
      out.add(atStart)
      return out
    }
    const seen = new Set<number>()
    for (const r of results) {
      const res = r.res!
      expect(res.status?.code, `a ${r.which} Check was denied: ${res.status?.message}`).toBe(0)
      const v = Number(headerOf(res, 'x-version'))
      seen.add(v)
      // One snapshot: the rule id, both headers and the removals all name the same version.
      expect(res.dynamicMetadata?.['rule_id']).toBe(`${r.which}-v${v}`)
      expect(headerOf(res, `x-${r.which}-${v}`)).toBe('y')
      expect([...res.okResponse!.headersToRemove].sort()).toEqual(expectedRemovals(v, r.which))
      // Old or new: a version that was serving at some point while this call was in flight.
      expect(liveDuring(r.t0, r.t1).has(v), `version ${v} was not live during [${r.t0}, ${r.t1}]`).toBe(true)
    }
    expect([...seen].sort()).toEqual([1, 2, 4, 6])
    expect([3, 5].some((v) => seen.has(v))).toBe(false)

    const stats = e.reloader.stats()
    expect(stats.failures).toBe(expectedFailures)
    expect(stats.successes).toBe(expectedSuccesses)
    expect(e.logs.filter((l) => l.includes('reload rejected: keeping the last good rule set'))).toHaveLength(expectedFailures)
    const rejected = e.logs.map((l) => JSON.parse(l) as { msg: string; problems?: string[] }).filter((l) => l.msg.startsWith('reload rejected'))
    expect(rejected.some((l) => l.problems?.some((p) => p.includes('cannot parse')))).toBe(true)
    expect(rejected.some((l) => l.problems?.some((p) => p.includes('broken.json')))).toBe(true)
    expect(rejected.some((l) => l.problems?.some((p) => p.includes('unknown authorizer "no_such_authorizer"')))).toBe(true)
    expect(rejected.some((l) => l.problems?.some((p) => p.includes('duplicate rule id')))).toBe(true)
    expect(rejected.some((l) => l.problems?.some((p) => p.includes('is not enabled')))).toBe(true)
  }, 60_000)
})

describe('repositories replaced underneath', () => {
  it('follows a Kubernetes ConfigMap ..data symlink swap', async () => {
    const swap = (mount: string, n: number, first: boolean): void => {
      const ts = `..2024_01_01_00_00_0${n}.000`
      mkdirSync(join(mount, ts))
      writeFileSync(join(mount, ts, 'rules.yaml'), stringify(versionRules(n)))
      symlinkSync(ts, join(mount, '..data_tmp'))
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'))
      if (first) symlinkSync('..data/rules.yaml', join(mount, 'rules.yaml'))
    }
    env = await start({
      repositories: ['cm'],
      files: (dir) => {
        mkdirSync(join(dir, 'cm'))
        swap(join(dir, 'cm'), 1, true)
      },
    })
    const c = checkClient(env.app.grpc.port)
    try {
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('1')
      const outcome = env.nextOutcome()
      swap(join(env.dir, 'cm'), 2, false)
      rmSync(join(env.dir, 'cm', '..2024_01_01_00_00_01.000'), { recursive: true })
      expect((await outcome).ok).toBe(true)
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('2')
    } finally {
      c.close()
    }
  })

  it('a deleted rule file keeps the last good set, logs and counts; re-creating it reloads', async () => {
    env = await start({ repositories: ['rules.yaml'], files: (dir) => writeFileSync(join(dir, 'rules.yaml'), stringify(versionRules(1))) })
    const c = checkClient(env.app.grpc.port)
    try {
      const serving = env.app.holder.current
      let outcome = env.nextOutcome()
      unlinkSync(join(env.dir, 'rules.yaml'))
      const o = await outcome
      expect(o.ok).toBe(false)
      expect(!o.ok && o.problems.join()).toMatch(/ENOENT/)
      expect(env.app.holder.current).toBe(serving)
      expect(env.reloader.stats()).toMatchObject({ failures: 1, rules: 2 })
      expect(env.logs.some((l) => l.includes('reload rejected'))).toBe(true)
      expect((await c.check(httpRequest({ path: '/main/a' }))).status?.code).toBe(0)
      expect(await healthStatus(env.app.grpc.port)).toBe('SERVING')

      outcome = env.nextOutcome()
      writeFileSync(join(env.dir, 'rules.yaml'), stringify(versionRules(2)))
      expect((await outcome).ok).toBe(true)
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('2')
    } finally {
      c.close()
    }
  })
})

describe('readiness follows the serving set', () => {
  it('a valid reload to zero rules makes the process not ready (NOT_SERVING), and rules bring it back', async () => {
    env = await start({ repositories: ['rules.yaml'], files: (dir) => writeFileSync(join(dir, 'rules.yaml'), stringify(versionRules(1))) })
    expect(await healthStatus(env.app.grpc.port)).toBe('SERVING')
    let outcome = env.nextOutcome()
    replace(join(env.dir, 'rules.yaml'), '[]\n')
    expect(await outcome).toMatchObject({ ok: true, rules: 0 })
    expect(env.readiness.check().errors).toEqual({ rules_loaded: 'no access rules are loaded' })
    expect(await healthStatus(env.app.grpc.port)).toBe('NOT_SERVING')
    outcome = env.nextOutcome()
    replace(join(env.dir, 'rules.yaml'), stringify(versionRules(3)))
    expect(await outcome).toMatchObject({ ok: true, rules: 2 })
    expect(await healthStatus(env.app.grpc.port)).toBe('SERVING')
  })
})

describe('configuration file reload', () => {
  it('applies handler config changes, warns about serve.* changes, rejects an invalid file', async () => {
    env = await start({ repositories: ['rules.yaml'], files: (dir) => writeFileSync(join(dir, 'rules.yaml'), stringify(versionRules(1))) })
    const c = checkClient(env.app.grpc.port)
    const cfgPath = join(env.dir, 'portcullis.yaml')
    const base = { ...ALL_HANDLERS, serve: { grpc: { host: '127.0.0.1', port: 0 }, api: { port: 0 }, prometheus: { port: 0 } }, access_rules: { repositories: ['rules.yaml'] } }
    try {
      // 1. A reloadable change: the anonymous authenticator's global subject.
      let outcome = env.nextOutcome()
      replace(cfgPath, stringify({ ...base, authenticators: { ...base.authenticators, anonymous: { enabled: true, config: { subject: 'guest' } } } }))
      expect(await outcome).toMatchObject({ ok: true, kind: 'config', swapped: true, restartNeeded: [] })
      const rs = env.app.holder.current
      expect(env.reloader.loaded.config.authenticators['anonymous']?.config).toEqual({ subject: 'guest' })

      // 2. serve.* only: logged as needing a restart, nothing rebuilt, the running port unchanged.
      outcome = env.nextOutcome()
      replace(cfgPath, stringify({ ...base, authenticators: { ...base.authenticators, anonymous: { enabled: true, config: { subject: 'guest' } } }, serve: { grpc: { host: '127.0.0.1', port: 1 }, api: { port: 0 }, prometheus: { port: 0 } } }))
      expect(await outcome).toMatchObject({ ok: true, kind: 'config', swapped: false, restartNeeded: ['serve.grpc'] })
      expect(env.app.holder.current).toBe(rs)
      expect(env.logs.some((l) => l.includes('need a restart') && l.includes('serve.grpc'))).toBe(true)
      expect(env.reloader.loaded.config.serve.grpc.port).toBe(0)

      // 3. Invalid: unknown key → rejected, counted, last good config and rules kept.
      outcome = env.nextOutcome()
      replace(cfgPath, stringify({ ...base, no_such_section: true }))
      const bad = await outcome
      expect(bad.ok).toBe(false)
      expect(!bad.ok && bad.problems.join()).toMatch(/unknown key\(s\) "no_such_section"/)
      expect(env.app.holder.current).toBe(rs)
      expect(env.reloader.stats().failures).toBe(1)
      expect((await c.check(httpRequest({ path: '/main/a' }))).status?.code).toBe(0)

      // 4. Unparsable YAML → rejected too.
      outcome = env.nextOutcome()
      writeFileSync(cfgPath, 'serve: [unclosed\n')
      expect((await outcome).ok).toBe(false)
      expect(env.reloader.stats().failures).toBe(2)

      // 5. Repositories changed by the config: the new file is read and watched.
      writeFileSync(join(env.dir, 'other.yaml'), stringify(versionRules(7)))
      outcome = env.nextOutcome()
      replace(cfgPath, stringify({ ...base, access_rules: { repositories: ['other.yaml'] } }))
      expect(await outcome).toMatchObject({ ok: true, swapped: true })
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('7')
      outcome = env.nextOutcome()
      replace(join(env.dir, 'other.yaml'), stringify(versionRules(8)))
      expect(await outcome).toMatchObject({ ok: true, kind: 'rules' })
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('8')

      // 6. A config naming a directory that does not exist yet is rejected, and retried when the
      //    directory appears (the rules are what was wrong, not the file).
      outcome = env.nextOutcome()
      replace(cfgPath, stringify({ ...base, access_rules: { repositories: ['later'] } }))
      expect((await outcome).ok).toBe(false)
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('8')
      outcome = env.nextOutcome()
      mkdirSync(join(env.dir, 'later.tmp'))
      writeFileSync(join(env.dir, 'later.tmp', 'rules.yaml'), stringify(versionRules(9)))
      renameSync(join(env.dir, 'later.tmp'), join(env.dir, 'later'))
      expect(await outcome).toMatchObject({ ok: true, kind: 'config', swapped: true })
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('9')
    } finally {
      c.close()
    }
  })
})

describe('caches tied to removed rules are released', () => {
  /** A test authenticator owning one cache per `tag` (as jwt / introspection own theirs). */
  const cached = defineHandler('authn', 'cached', z.strictObject({ tag: z.string() }), (cfg, deps) => {
    deps.caches.create({
      name: `cached:${cfg.tag}`,
      ttlMs: 60_000,
      maxBytes: 1 << 16,
      maxEntries: 64,
      cleanupIntervalMs: 60_000,
      negativeTtlMs: 0,
      negativeMaxBytes: 0,
    })
    return { authenticate: () => undefined }
  })
  const registry = new Registry([...authenticators, ...authorizers, ...mutators, ...errorHandlers, cached] as readonly HandlerFactory[])

  it('keeps caches of unchanged handlers, disposes removed ones, and releases what a failed build created', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-caches-'))
    const log: Logger = createLogger('silent')
    const caches = new CacheRegistry(new CacheBudget(64 * 1024 * 1024))
    const deps: HandlerDeps = { log, caches, http: new HttpClient(OutboundConfigSchema.parse({})), now: Date.now }
    try {
      const ruleWith = (id: string, tag: string) => ({
        id,
        match: { url: `${H}/${id}`, methods: ['GET'] },
        authenticators: [{ handler: 'cached', config: { tag } }],
        authorizer: { handler: 'allow' },
        mutators: [{ handler: 'noop' }],
      })
      const write = (rules: unknown[]): void => writeFileSync(join(dir, 'rules.yaml'), stringify(rules))
      writeFileSync(
        join(dir, 'portcullis.yaml'),
        stringify({ authenticators: { cached: { enabled: true } }, authorizers: { allow: { enabled: true } }, mutators: { noop: { enabled: true } }, access_rules: { repositories: ['rules.yaml'] } }),
      )
      write([ruleWith('a', 'a'), ruleWith('b', 'b')])
      const loaded = loadConfig({ file: join(dir, 'portcullis.yaml'), env: {} })
      const holder = { current: loadRuleSet(loaded, registry, deps) }
      const reloader = new Reloader({ holder, loaded, registry, deps, log })
      const cacheA = caches.get('cached:a')
      expect(caches.names()).toEqual(['cached:a', 'cached:b'])

      // Rule b removed, rule c added: a's cache is the same object, b's is disposed.
      write([ruleWith('a', 'a'), ruleWith('c', 'c')])
      const ok = reloader.reloadRules('test')
      expect(ok).toMatchObject({ ok: true, cachesReleased: ['cached:b'] })
      expect(caches.names()).toEqual(['cached:a', 'cached:c'])
      expect(caches.get('cached:a')).toBe(cacheA)
      expect(cacheA?.disposed).toBe(false)

      // A failed build that created cache d (rule e is invalid) releases d and keeps a and c.
      write([ruleWith('a', 'a'), ruleWith('d', 'd'), { id: 'e', match: { url: `${H}/e`, methods: ['GET'] }, authenticators: [{ handler: 'anonymous' }], authorizer: { handler: 'nope' }, mutators: [{ handler: 'noop' }] }])
      expect(reloader.reloadRules('test').ok).toBe(false)
      expect(caches.names()).toEqual(['cached:a', 'cached:c'])

      // Every rule removed: every cache released.
      write([])
      expect(reloader.reloadRules('test')).toMatchObject({ ok: true, rules: 0 })
      expect(caches.names()).toEqual([])
    } finally {
      caches.dispose()
      void deps.http.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('1 000 reloads with changing rule ids leave one cache per live rule', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-caches-'))
    const log: Logger = createLogger('silent')
    const caches = new CacheRegistry(new CacheBudget(64 * 1024 * 1024))
    const deps: HandlerDeps = { log, caches, http: new HttpClient(OutboundConfigSchema.parse({})), now: Date.now }
    try {
      writeFileSync(
        join(dir, 'portcullis.yaml'),
        stringify({ authenticators: { cached: { enabled: true } }, authorizers: { allow: { enabled: true } }, mutators: { noop: { enabled: true } }, access_rules: { repositories: ['rules.yaml'] } }),
      )
      const rules = (i: number) =>
        [0, 1, 2].map((k) => ({
          id: `r${i}-${k}`,
          match: { url: `${H}/r${i}/${k}`, methods: ['GET'] },
          authenticators: [{ handler: 'cached', config: { tag: `${i}-${k}` } }],
          authorizer: { handler: 'allow' },
          mutators: [{ handler: 'noop' }],
        }))
      writeFileSync(join(dir, 'rules.yaml'), stringify(rules(0)))
      const loaded = loadConfig({ file: join(dir, 'portcullis.yaml'), env: {} })
      const holder = { current: loadRuleSet(loaded, registry, deps) }
      const reloader = new Reloader({ holder, loaded, registry, deps, log })
      for (let i = 1; i <= 1000; i++) {
        writeFileSync(join(dir, 'rules.yaml'), stringify(rules(i)))
        expect(reloader.reloadRules('loop').ok).toBe(true)
      }
      expect(caches.names()).toEqual(['cached:1000-0', 'cached:1000-1', 'cached:1000-2'])
      expect(reloader.stats()).toMatchObject({ successes: 1000, failures: 0, rules: 3 })
    } finally {
      caches.dispose()
      void deps.http.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** load.ts reads http(s) repositories once it takes a `RemoteSource` (see the wiring notes). */
const remoteWired = readRepositories.length >= 3
describe('http(s) repositories', () => {
  it.skipIf(!remoteWired)('polled with conditional GETs: a changed body reloads; a failed fetch or an invalid body keeps the last good set', async () => {
    let body = JSON.stringify(versionRules(2))
    let etag = '"2"'
    let status = 200
    const stub = await startStub({
      kind: 'custom',
      handle: (req, res) => {
        if (status !== 200) return void res.writeHead(status).end()
        if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end()
        res.writeHead(200, { 'content-type': 'application/json', etag }).end(body)
      },
    })
    env = await start({ repositories: ['rules.yaml'], files: (dir) => writeFileSync(join(dir, 'rules.yaml'), stringify(versionRules(1))) })
    const e = env
    const c = checkClient(e.app.grpc.port)
    const log = createLogger('silent')
    const remote = new RemoteRepositories(e.app.deps.http, { timeoutMs: 2000, maxBytes: 1 << 20 })
    const url = stub.url('/rules.json')
    type Loaded = Parameters<typeof loadRuleSet>[0]
    const read = loadRuleSet as unknown as (l: Loaded, r: Registry, d: HandlerDeps, o: { remote: RemoteSource }) => RuleSet
    const config = e.app.loaded.config
    const loaded = { ...e.app.loaded, config: { ...config, access_rules: { ...config.access_rules, repositories: [url] } } }
    const reloader = new Reloader({ holder: e.app.holder, loaded, registry: defaultRegistry(), deps: e.app.deps, log, compile: (l, r, d) => read(l, r, d, { remote }) })
    const watcher = new RuleWatcher({ reloader, config: ReloadConfigSchema.parse({ remote_interval: '1h', poll_interval: '0' }), log, remote })
    const version = async (): Promise<string | undefined> => headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')
    try {
      expect((await remote.refresh([url])).changed).toBe(true)
      expect(reloader.reloadRules('start')).toMatchObject({ ok: true, rules: 2 })
      expect(await version()).toBe('2')
      watcher.start()

      body = JSON.stringify(versionRules(3))
      etag = '"3"'
      await watcher.pollRemote()
      expect(await version()).toBe('3')

      await watcher.pollRemote() // 304
      expect(reloader.stats()).toMatchObject({ successes: 2, failures: 0 })
      expect(watcher.stats()).toMatchObject({ remoteNotModified: 1 })

      status = 500
      await watcher.pollRemote()
      expect(watcher.stats().remoteFailures).toBe(1)
      expect(await version()).toBe('3')

      status = 200
      body = '[{"id": "x",'
      etag = '"4"'
      await watcher.pollRemote()
      expect(reloader.stats()).toMatchObject({ successes: 2, failures: 1 })
      expect(reloader.stats().lastProblems.join()).toContain(`${url}: cannot parse`)
      expect(await version()).toBe('3')
    } finally {
      watcher.stop()
      c.close()
      await stub.close()
    }
  })

  it.skipIf(!remoteWired)('start-up fetches http(s) repositories; one that cannot be fetched stops start-up with the URL (no query) named', async () => {
    const stub = await startStub({ kind: 'json', body: versionRules(5) })
    try {
      env = await start({ repositories: [stub.url('/rules.json')], files: () => {} })
      const c = checkClient(env.app.grpc.port)
      expect(headerOf(await c.check(httpRequest({ path: '/main/a' })), 'x-version')).toBe('5')
      c.close()
      const failing = start({ repositories: [`${stub.url('/gone.json')}?token=secret`], files: () => stub.setMode('/gone.json', '5xx') })
      await expect(failing).rejects.toThrow(`access_rules.repositories: ${stub.url('/gone.json')}: cannot fetch: HTTP 503`)
      await failing.catch((err: Error) => expect(err.message).not.toContain('secret'))
    } finally {
      await stub.close()
    }
  })
})
