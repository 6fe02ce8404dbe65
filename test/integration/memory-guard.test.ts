/**
 * The memory guard, tripped for real: thresholds set just above this process's heap, then heap
 * allocated past them. Soft → not ready (gRPC health NOT_SERVING) with a log line naming cache
 * sizes and GC; hard → caches cleared and new Checks shed with a denied 503; memory released →
 * back to ready after `recovery_checks` samples. Plus the level logic on injected samples.
 */
import * as grpc from '@grpc/grpc-js'
import { HealthImplementation, service as HealthService } from 'grpc-health-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { credentialKey } from '../../src/cache/key.js'
import { loadConfig } from '../../src/config/load.js'
import { AuthorizationService } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import { createDeps, disposeDeps } from '../../src/main.js'
import {
  levelOf,
  MemoryGuard,
  MemoryGuardConfigSchema,
  resolveThresholds,
  sampleMemory,
  SHED_REASON,
  type GuardLevel,
  type MemorySample,
} from '../../src/observability/memory-guard.js'
import { createLogger } from '../../src/observability/logger.js'
import { defaultRegistry } from '../../src/pipeline/registry.js'
import type { HandlerDeps } from '../../src/pipeline/types.js'
import { loadRuleSet } from '../../src/rules/compile.js'
import { AUTHORIZATION_SERVICE, createCheckHandler } from '../../src/server/grpc.js'
import { wrapCheckHandler } from '../../src/server/lifecycle.js'
import { Readiness } from '../../src/server/readiness.js'
import { checkClient, httpRequest, type CheckClient } from '../helpers/check-client.js'
import { ALL_HANDLERS } from '../helpers/in-process.js'

const MiB = 1024 * 1024
const silent = createLogger('silent')

/** `gc()` without --expose-gc (vitest's forks do not pass it). */
function gc(): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

function cacheOptions(name: string) {
  return { name, ttlMs: 60_000, maxBytes: 8 * MiB, maxEntries: 10_000, cleanupIntervalMs: 60_000, negativeTtlMs: 10_000, negativeMaxBytes: MiB }
}

/** Fills a registry cache with `n` positive entries. */
async function fill(deps: HandlerDeps, name: string, n: number): Promise<void> {
  const cache = deps.caches.create<string>(cacheOptions(name))
  for (let i = 0; i < n; i++) {
    await cache.lookup(credentialKey(name, String(i)), () => Promise.resolve({ kind: 'positive', value: `v${i}`, sizeBytes: 16 }))
  }
}

function entries(deps: HandlerDeps): number {
  return deps.caches.stats().reduce((a, c) => a + c.entries, 0)
}

describe('levels, on injected samples', () => {
  const GB = 1024 * MiB
  const sample = (heapUsed: number, rss = 0, rssLimit?: number): MemorySample => ({ heapUsed, heapLimit: 4 * GB, rss, rssLimit })

  it('resolves ratios against the limits; bytes win; 0 turns a ratio off; no cgroup limit, no RSS ratio', () => {
    const cfg = MemoryGuardConfigSchema.parse({})
    expect(resolveThresholds(cfg, sample(0))).toEqual({ softHeap: Math.floor(0.85 * 4 * GB), hardHeap: Math.floor(0.95 * 4 * GB), softRss: undefined, hardRss: undefined })
    expect(resolveThresholds(cfg, sample(0, 0, 1 * GB))).toMatchObject({ softRss: Math.floor(0.85 * GB), hardRss: Math.floor(0.95 * GB) })
    const bytes = MemoryGuardConfigSchema.parse({ soft_heap_bytes: 100, hard_heap_bytes: 200, soft_rss_ratio: 0, hard_rss_bytes: 300 })
    expect(resolveThresholds(bytes, sample(0, 0, GB))).toEqual({ softHeap: 100, hardHeap: 200, softRss: undefined, hardRss: 300 })
    expect(levelOf(sample(99), resolveThresholds(bytes, sample(0)))).toBe('ok')
    expect(levelOf(sample(100), resolveThresholds(bytes, sample(0)))).toBe('soft')
    expect(levelOf(sample(0, 300), resolveThresholds(bytes, sample(0)))).toBe('hard')
  })

  it('rejects soft ≥ hard and out-of-range values, with the key path', () => {
    const r = MemoryGuardConfigSchema.safeParse({ soft_heap_bytes: 200, hard_heap_bytes: 100 })
    expect(r.success).toBe(false)
    expect(r.error?.issues[0]?.path).toEqual(['soft_heap_bytes'])
    expect(MemoryGuardConfigSchema.safeParse({ soft_heap_ratio: 0.99 }).success).toBe(false)
    expect(MemoryGuardConfigSchema.safeParse({ shed_status: 200 }).success).toBe(false)
    expect(MemoryGuardConfigSchema.parse({ check_interval: '250ms' }).check_interval).toBe(250)
    expect(MemoryGuardConfigSchema.safeParse({ check_interval: '1ms' }).success).toBe(false)
  })

  it('rises at once, falls after recovery_checks samples below, to the highest level seen meanwhile', () => {
    let heap = 0
    const readiness = new Readiness()
    readiness.set('rules_loaded', true)
    const deps = createDeps(loadConfig({ env: {} }), silent)
    const guard = new MemoryGuard(MemoryGuardConfigSchema.parse({ soft_heap_bytes: 100, hard_heap_bytes: 200, recovery_checks: 3 }), {
      caches: deps.caches,
      log: silent,
      readiness,
      sample: () => sample(heap),
    })
    const changes: [GuardLevel, GuardLevel][] = []
    guard.onChange((l, p) => changes.push([l, p]))
    const run = (...heaps: number[]): GuardLevel[] => heaps.map((h) => ((heap = h), guard.check()))

    expect(run(50, 150)).toEqual(['ok', 'soft'])
    expect(readiness.ready).toBe(false)
    expect(guard.shedding()).toBe(false)
    expect(run(250)).toEqual(['hard'])
    expect(guard.shedding()).toBe(true)
    // Three samples below hard: one of them soft → back to soft, not ok.
    expect(run(50, 150, 50)).toEqual(['hard', 'hard', 'soft'])
    expect(guard.shedding()).toBe(false)
    // A sample back at the level resets the count.
    expect(run(50, 50, 150, 50, 50, 50)).toEqual(['soft', 'soft', 'soft', 'soft', 'soft', 'ok'])
    expect(readiness.ready).toBe(true)
    expect(changes).toEqual([
      ['soft', 'ok'],
      ['hard', 'soft'],
      ['soft', 'hard'],
      ['ok', 'soft'],
    ])
    expect(guard.stats()).toMatchObject({ level: 'ok', softTrips: 1, hardTrips: 1 })
    void disposeDeps(deps)
  })

  it('the shed response: denied, 503 (or shed_status), UNAVAILABLE, reason memory_guard_shed, Retry-After; counted', () => {
    const deps = createDeps(loadConfig({ env: {} }), silent)
    const guard = new MemoryGuard(MemoryGuardConfigSchema.parse({ shed_status: 429 }), { caches: deps.caches, log: silent, sample: () => sample(0) })
    const r = guard.shed()
    expect(r.status?.code).toBe(grpc.status.UNAVAILABLE)
    expect(r.okResponse).toBeUndefined()
    expect(r.deniedResponse?.status?.code).toBe(429)
    expect(r.deniedResponse?.headers.map((h) => [h.header?.key, h.header?.value])).toContainEqual(['retry-after', '1'])
    expect(r.dynamicMetadata).toMatchObject({ decision: 'deny', reason: SHED_REASON })
    expect(guard.shed()).toBe(r) // built once
    expect(guard.stats().shed).toBe(2)
    void disposeDeps(deps)
  })

  it('thresholds forced low (1 byte): hard at the first check, caches cleared; reconfigure re-arms', async () => {
    const deps = createDeps(loadConfig({ env: {} }), silent)
    await fill(deps, 'c1', 100)
    const guard = new MemoryGuard(MemoryGuardConfigSchema.parse({ soft_heap_bytes: 1, hard_heap_bytes: 2, recovery_checks: 1 }), { caches: deps.caches, log: silent })
    guard.start()
    expect(guard.level).toBe('hard')
    expect(guard.shedding()).toBe(true)
    expect(entries(deps)).toBe(0)
    guard.reconfigure(MemoryGuardConfigSchema.parse({ soft_heap_ratio: 0.98, hard_heap_ratio: 0.99, recovery_checks: 1 }))
    expect(guard.check()).toBe('ok')
    guard.stop()
    void disposeDeps(deps)
  })

  it('enabled: false never samples and never sheds', () => {
    const deps = createDeps(loadConfig({ env: {} }), silent)
    let sampled = 0
    const guard = new MemoryGuard(MemoryGuardConfigSchema.parse({ enabled: false, soft_heap_bytes: 1, hard_heap_bytes: 2 }), {
      caches: deps.caches,
      log: silent,
      sample: () => (sampled++, sample(1e9)),
    })
    guard.start()
    expect(sampled).toBe(0)
    expect(guard.shedding()).toBe(false)
    guard.stop()
    void disposeDeps(deps)
  })
})

describe('tripped for real, with a gRPC server', () => {
  let cleanup: (() => Promise<void>) | undefined
  afterEach(async () => {
    await cleanup?.()
    cleanup = undefined
  })

  it('soft → not ready + log line; hard → caches cleared and Checks shed with 503; released → ready again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-guard-'))
    writeFileSync(
      join(dir, 'rules.yaml'),
      stringify([
        {
          id: 'open',
          match: { url: 'https://api.example.com/<.*>', methods: ['GET'] },
          authenticators: [{ handler: 'anonymous' }],
          authorizer: { handler: 'allow' },
          mutators: [{ handler: 'noop' }],
        },
      ]),
    )
    writeFileSync(join(dir, 'portcullis.yaml'), stringify({ ...ALL_HANDLERS, access_rules: { repositories: ['rules.yaml'] } }))
    const loaded = loadConfig({ file: join(dir, 'portcullis.yaml'), env: {} })
    const logs: string[] = []
    const log = createLogger('info', { write: (s: string) => void logs.push(s) })
    const deps = createDeps(loaded, log)
    const holder = { current: loadRuleSet(loaded, defaultRegistry(), deps) }
    await fill(deps, 'idp-a', 2000)
    await fill(deps, 'idp-b', 500)

    gc()
    const baseline = sampleMemory().heapUsed
    const readiness = new Readiness()
    const guard = new MemoryGuard(
      MemoryGuardConfigSchema.parse({
        soft_heap_bytes: baseline + 80 * MiB,
        hard_heap_bytes: baseline + 240 * MiB,
        check_interval: '20ms',
        recovery_checks: 3,
      }),
      { caches: deps.caches, log, readiness },
    )

    // --- the server, wired as main.ts will wire it ---
    const g = new grpc.Server()
    g.addService(AuthorizationService, { check: wrapCheckHandler(createCheckHandler(holder, log, { maxCheckDurationMs: 1000 }), { guard }) })
    const health = new HealthImplementation({ '': 'NOT_SERVING', [AUTHORIZATION_SERVICE]: 'NOT_SERVING' })
    health.addToServer(g)
    const port = await new Promise<number>((resolve, reject) =>
      g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    )
    readiness.onChange((ready) => health.setStatus(AUTHORIZATION_SERVICE, ready ? 'SERVING' : 'NOT_SERVING'))
    readiness.set('rules_loaded', true)
    const c: CheckClient = checkClient(port)
    let ballast: unknown[][] = []
    cleanup = async () => {
      ballast = []
      guard.stop()
      c.close()
      g.forceShutdown()
      await disposeDeps(deps)
      rmSync(dir, { recursive: true, force: true })
    }
    const level = (want: GuardLevel, timeoutMs = 10_000): Promise<void> =>
      guard.level === want
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`guard did not reach ${want} (at ${guard.level}, ${JSON.stringify(guard.stats().lastSample)})`)), timeoutMs)
            const off = guard.onChange((l) => {
              if (l !== want) return
              clearTimeout(t)
              off()
              resolve()
            })
          })
    /** ~`mib` MiB of live V8 heap (small objects, not Buffers: those live outside the heap). */
    const allocate = (mib: number): void => {
      // 21 845 small objects ≈ 1 MiB (48 B each, measured with --expose-gc on Node 20).
      for (let k = 0; k < mib; k++) ballast.push(Array.from({ length: 21_845 }, (_, i) => ({ i, k })))
    }

    guard.start()
    expect(guard.level).toBe('ok')
    expect(await healthOf(port)).toBe('SERVING')
    expect((await c.check(httpRequest({ path: '/a' }))).status?.code).toBe(0)

    // Soft: not ready, still answering, one warning line with cache sizes and GC.
    allocate(140)
    await level('soft')
    expect(readiness.check().errors).toHaveProperty('memory_guard')
    expect(await healthOf(port)).toBe('NOT_SERVING')
    expect((await c.check(httpRequest({ path: '/a' }))).status?.code).toBe(0)
    const softLine = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l['msg']).includes('above soft threshold'))
    expect(softLine).toMatchObject({ level: 'warn', memory_guard: 'soft', cache_totals: { caches: 2, entries: 2500 } })
    expect(softLine?.['caches']).toEqual([
      expect.objectContaining({ name: 'idp-a', entries: 2000 }),
      expect.objectContaining({ name: 'idp-b', entries: 500 }),
    ])
    expect(softLine?.['gc']).toEqual({ count: expect.any(Number), major: expect.any(Number), pause_ms: expect.any(Number) })
    expect(softLine?.['heap_used_bytes']).toBeGreaterThan(baseline + 80 * MiB)

    // Hard: caches cleared, new Checks shed with a denied 503.
    allocate(200)
    await level('hard')
    expect(guard.shedding()).toBe(true)
    expect(entries(deps)).toBe(0)
    const shed = await c.check(httpRequest({ path: '/a' }))
    expect(shed.status?.code).toBe(grpc.status.UNAVAILABLE)
    expect(shed.deniedResponse?.status?.code).toBe(503)
    expect(shed.dynamicMetadata).toMatchObject({ reason: SHED_REASON })
    expect(logs.some((l) => l.includes('above hard threshold') && l.includes('"caches_cleared":{"caches":2,"entries":2500'))).toBe(true)
    expect(guard.stats().shed).toBeGreaterThanOrEqual(1)

    // Released: after recovery_checks samples below soft, ready and answering again.
    ballast = []
    gc()
    await level('ok')
    expect(guard.shedding()).toBe(false)
    expect(await healthOf(port)).toBe('SERVING')
    expect((await c.check(httpRequest({ path: '/a' }))).status?.code).toBe(0)
    expect(logs.some((l) => l.includes('memory back to normal'))).toBe(true)
    expect(guard.stats()).toMatchObject({ softTrips: 1, hardTrips: 1 })
  }, 60_000)
})

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
