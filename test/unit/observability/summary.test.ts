/**
 * The periodic summary line (src/observability/summary.ts): its fields, its period, that it
 * reads every cache of the registry, and that `stop()` releases everything it started.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { CacheBudget } from '../../../src/cache/budget.js'
import { credentialKey } from '../../../src/cache/key.js'
import { CacheRegistry } from '../../../src/cache/registry.js'
import { createLogger } from '../../../src/observability/logger.js'
import { startSummary, SUMMARY_MSG, takeSummary, type SummaryHandle } from '../../../src/observability/summary.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const MiB = 1024 * 1024

const handles: SummaryHandle[] = []
const registries: CacheRegistry[] = []
afterEach(() => {
  for (const h of handles.splice(0)) h.stop()
  for (const r of registries.splice(0)) r.dispose()
})

/** A real pino logger writing JSON lines into an array, like the process logger. */
function memoryLog(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const raw: string[] = []
  const log = createLogger('info', { write: (s: string) => void raw.push(s) })
  return { log, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === SUMMARY_MSG) }
}

function registryWithTwoCaches(): CacheRegistry {
  const reg = new CacheRegistry(new CacheBudget(64 * MiB))
  registries.push(reg)
  const base = { ttlMs: 60_000, maxBytes: 1 * MiB, maxEntries: 1000, cleanupIntervalMs: 10_000, negativeTtlMs: 5_000, negativeMaxBytes: 64 * 1024 }
  reg.create({ name: 'oauth2_introspection:aaaaaaaaaaaa', ...base })
  reg.create({ name: 'jwt:bbbbbbbbbbbb', ...base })
  return reg
}

const until = async (cond: () => boolean, ms: number): Promise<void> => {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('startSummary', () => {
  it('logs one summary line per interval with memory, event-loop, GC and cache fields', async () => {
    const { log, lines } = memoryLog()
    const reg = registryWithTwoCaches()
    const positive = reg.get<string>('oauth2_introspection:aaaaaaaaaaaa')!
    await positive.lookup(credentialKey('t1', 'u'), async () => ({ kind: 'positive', value: 'v', sizeBytes: 24 }))
    await positive.lookup(credentialKey('t2', 'u'), async () => ({ kind: 'negative', reason: 'token_inactive' }))
    handles.push(startSummary({ log, caches: reg, intervalMs: 20 }))
    gc() // at least one GC entry for the observer
    await until(() => lines().length >= 3, 2_000)

    const line = lines()[2]!
    expect(line['level']).toBe('info')
    for (const k of ['heap_used_bytes', 'heap_total_bytes', 'rss_bytes', 'external_bytes', 'array_buffers_bytes']) {
      expect(line[k], k).toBeGreaterThan(0)
      expect(Number.isInteger(line[k]), k).toBe(true)
    }
    expect(line['heap_used_bytes']).toBeLessThanOrEqual(line['heap_total_bytes'] as number)
    expect(line['event_loop_delay_p99_ms']).toBeGreaterThanOrEqual(0)
    expect(line['event_loop_delay_max_ms']).toBeGreaterThanOrEqual(line['event_loop_delay_p99_ms'] as number)
    expect(line['gc_count']).toBeGreaterThanOrEqual(1)
    expect(line['gc_pause_ms_total']).toBeGreaterThan(0)

    const caches = line['caches'] as Record<string, unknown>[]
    expect(caches.map((c) => c['name'])).toEqual(['oauth2_introspection:aaaaaaaaaaaa', 'jwt:bbbbbbbbbbbb'])
    const s = positive.stats()
    expect(caches[0]).toEqual({
      name: 'oauth2_introspection:aaaaaaaaaaaa',
      entries: 1,
      bytes: s.bytes,
      max_bytes: 1 * MiB,
      negative_entries: 1,
      negative_bytes: s.negativeBytes,
      negative_max_bytes: 64 * 1024,
      inflight: 0,
      hits: 0,
      misses: 2,
      evictions: 0,
    })
    expect(caches[1]).toMatchObject({ entries: 0, bytes: 0, negative_entries: 0 })
    expect(line['cache_entries']).toBe(2)
    expect(line['cache_bytes']).toBe(s.bytes + s.negativeBytes)
  })

  it('counts GC pauses cumulatively and resets the event-loop histogram after every line', async () => {
    const { log, lines } = memoryLog()
    handles.push(startSummary({ log, caches: { stats: () => [] }, intervalMs: 60 }))
    await until(() => lines().length >= 1, 2_000)
    for (let i = 0; i < 3; i++) gc()
    const maxOf = (from: number): number => Math.max(...lines().slice(from).map((l) => l['event_loop_delay_max_ms'] as number))

    // Block the loop for ~120 ms: a line after it reports it. Node's histogram does not record the
    // first delay after a reset (no reference time yet), so block ~25 ms after a fresh line, once
    // it has ticked (10 ms resolution); a loaded machine can still land the block right after a
    // reset, hence up to three tries.
    let observed = 0
    for (let attempt = 0; attempt < 3 && observed < 90; attempt++) {
      const seen = lines().length
      await until(() => lines().length > seen, 2_000)
      await new Promise((r) => setTimeout(r, 25))
      const blockedAt = lines().length
      const t = Date.now()
      while (Date.now() - t < 120) {
        /* busy */
      }
      await until(() => lines().length >= blockedAt + 2, 2_000)
      observed = maxOf(blockedAt)
    }
    expect(observed).toBeGreaterThanOrEqual(90)

    // Reset after every line: the lines that follow no longer carry the block.
    const after = lines().length
    await until(() => lines().length >= after + 3, 2_000)
    expect(Math.min(...lines().slice(after).map((l) => l['event_loop_delay_max_ms'] as number))).toBeLessThan(90)

    const all = lines()
    const gcCounts = all.map((l) => l['gc_count'] as number)
    const pauses = all.map((l) => l['gc_pause_ms_total'] as number)
    for (let i = 1; i < all.length; i++) {
      expect(gcCounts[i]).toBeGreaterThanOrEqual(gcCounts[i - 1]!)
      expect(pauses[i]).toBeGreaterThanOrEqual(pauses[i - 1]!)
    }
    expect(gcCounts.at(-1)).toBeGreaterThanOrEqual(3)
    expect(all.at(-1)!['caches']).toEqual([])
  })

  it('stop() ends the lines and is idempotent; 0 turns the summary off', async () => {
    const { log, lines } = memoryLog()
    const h = startSummary({ log, caches: { stats: () => [] }, intervalMs: 10 })
    await until(() => lines().length >= 1, 2_000)
    h.stop()
    h.stop()
    const n = lines().length
    await new Promise((r) => setTimeout(r, 60))
    expect(lines().length).toBe(n)

    const off = startSummary({ log, caches: { stats: () => [] }, intervalMs: 0 })
    await new Promise((r) => setTimeout(r, 30))
    off.stop()
    expect(lines().length).toBe(n)
  })

  it('does not keep the process alive (the timer is unref’d)', () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const h = startSummary({ log: { info: () => {} }, caches: { stats: () => [] }, intervalMs: 1000 })
    handles.push(h)
    // Unref'd timers are not listed as active resources.
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before)
  })

  it.each([-1, 1, 9, 9.4, 2 ** 31, Number.NaN, Number.POSITIVE_INFINITY])('rejects the interval %s', (intervalMs) => {
    expect(() => startSummary({ log: { info: () => {} }, caches: { stats: () => [] }, intervalMs })).toThrow(RangeError)
  })

  it('accepts a fractional interval (a parsed duration), rounded', () => {
    handles.push(startSummary({ log: { info: () => {} }, caches: { stats: () => [] }, intervalMs: 1500.5 }))
  })

  it('reports 0 event-loop delay for an interval without samples', () => {
    const s = takeSummary({ stats: () => [] }, { percentile: () => 511, max: 0, count: 0 }, { count: 0, pauseMs: 0 })
    expect(s.event_loop_delay_p99_ms).toBe(0)
    expect(s.event_loop_delay_max_ms).toBe(0)
    expect(s.cache_bytes).toBe(0)
  })
})
