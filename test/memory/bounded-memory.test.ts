/**
 * The in-process memory proof (security.md §7.3, method 1): memory is bounded by configuration
 * whatever the number of distinct credentials. Oathkeeper's grows without bound at ~6 000 req/s of
 * unique tokens (#1186); this drives unique credentials, valid and invalid, 32 B – 4 KiB, through
 * the real pipeline (`decide()` on a rule set compiled from a config file, the real handlers with
 * their caches on and sized 4 MiB + 1 MiB each, the pooled HTTP client) against a loopback IdP stub,
 * 64 requests in flight, and samples the post-GC heap every 15 000 credentials (driver:
 * bench/soak/in-process.ts).
 *
 * Assertions:
 * (a) plateau: least-squares slope of post-GC `heapUsed` over the second half of the samples
 *     < 1 % of the caches' reserved bytes per 100 000 credentials (bench/soak/analysis.ts);
 * (b) post-GC `heapUsed` ≤ baseline + 1.5 × the caches' reserved bytes, at every sample;
 * (c) every cache's positive and negative bytes ≤ its limits, at every sample, and every cache
 *     was filled and evicted (so the bound was exercised, not just never reached);
 * (d) the criterion can fail: the same loop, keeping every credential in a test-local Map (the
 *     unbounded token cache of Oathkeeper's history), fails (a) by a wide margin.
 *
 * CI profile: `PORTCULLIS_MEMORY_TOKENS` credentials (default 300 000, ≈ 1–2 min on 2 cores; the
 * caches are full after ≈ 60 000). The 2 000 000-credential run is `npm run soak -- --in-process`
 * (bench/RESULTS.md "Memory").
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { beforeAll, describe, expect, it } from 'vitest'
import { filledAt, mb, plateau } from '../../bench/soak/analysis.js'
import { runInProcess, type InProcessResult } from '../../bench/soak/in-process.js'
import { HANDLER_OF } from '../../bench/soak/scenarios.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const TOKENS = Number(process.env['PORTCULLIS_MEMORY_TOKENS'] ?? 300_000)
const SAMPLE_EVERY = 15_000

describe('memory stays bounded by configuration with unique credentials (in-process)', () => {
  let r: InProcessResult

  beforeAll(async () => {
    r = await runInProcess({ tokens: TOKENS, sampleEvery: SAMPLE_EVERY, gc, timeLimitMs: 420_000 })
    const v = verdict(r)
    const peak = Math.max(...r.samples.map((s) => s.heapUsed))
    console.log(
      [
        `memory proof: ${r.tokens} unique credentials (${r.scenarios.join(', ')}) in ${(r.durationMs / 1000).toFixed(1)} s ` +
          `(${Math.round(r.tokens / (r.durationMs / 1000))}/s), ${r.samples.length} samples`,
        `  heapUsed: baseline ${mb(r.baseline.heapUsed)} MiB, peak ${mb(peak)} MiB, last ${mb(r.samples.at(-1)!.heapUsed)} MiB; ` +
          `caches reserve ${mb(r.reservedBytes)} MiB, hold ${mb(r.samples.at(-1)!.cacheBytes)} MiB`,
        `  caches full at ${filledAt(r.samples, r.capacityBytes)} credentials; slope over ${v.points} samples: ` +
          `${(v.bytesPer100k / 1024).toFixed(1)} KiB per 100k credentials (threshold ${(v.thresholdPer100k / 1024).toFixed(1)} KiB)`,
        `  samples (credentials: heapUsed MiB): ${r.samples.map((s) => `${s.tokens / 1000}k: ${mb(s.heapUsed, 2)}`).join(', ')}`,
      ].join('\n'),
    )
  }, 480_000)

  it('decides every credential as expected (valid → allow, invalid → deny 401)', () => {
    expect(r.stoppedEarly, 'the run hit its time limit').toBe(false)
    expect(r.tokens).toBe(TOKENS)
    expect(r.scenarios).toEqual(['introspection', 'jwt', 'bearer', 'cookie'])
    expect(r.mismatches, JSON.stringify(r.outcomes, null, 2)).toBe(0)
    for (const id of r.scenarios) {
      expect(Object.keys(r.outcomes).filter((k) => k.startsWith(`${id} `)), id).toHaveLength(2)
    }
  })

  it('(a) post-GC heap plateaus: slope over the second half < 1 % of the cache budget per 100k credentials', () => {
    expect(filledAt(r.samples, r.capacityBytes), 'the caches never filled').toBeLessThanOrEqual(r.tokens / 2)
    const v = verdict(r)
    expect(v.points).toBeGreaterThanOrEqual(5)
    expect(v.bytesPer100k).toBeLessThan(v.thresholdPer100k)
  })

  it('(b) post-GC heap ≤ baseline + 1.5 × the caches’ reserved bytes, at every sample', () => {
    const bound = r.baseline.heapUsed + 1.5 * r.reservedBytes
    for (const s of r.samples) expect(s.heapUsed, `at ${s.tokens} credentials`).toBeLessThanOrEqual(bound)
    expect(r.reservedBytes).toBeLessThanOrEqual(r.cacheBudgetBytes)
  })

  it('(c) every cache stays within its byte limits, and each credential cache was filled to them', () => {
    expect(r.cacheViolations).toEqual([])
    for (const { name, stats: s } of r.caches) {
      expect(s.bytes, name).toBeLessThanOrEqual(s.maxBytes)
      expect(s.negativeBytes, name).toBeLessThanOrEqual(s.negativeMaxBytes)
      expect(s.inflight, name).toBe(0)
    }
    // The scenarios' credential caches (others, e.g. the JWKS provider's, hold no credentials).
    const credentialCaches = r.caches.filter((c) => r.scenarios.some((id) => c.name.startsWith(`${HANDLER_OF[id]}:`)))
    expect(credentialCaches).toHaveLength(r.scenarios.length)
    for (const { name, stats: s } of credentialCaches) {
      // Filled: within one large entry of the limit, and entries were evicted to stay there.
      expect(s.bytes, name).toBeGreaterThan(s.maxBytes * 0.9)
      expect(s.negativeBytes, name).toBeGreaterThan(s.negativeMaxBytes * 0.9)
      expect(s.evictions, name).toBeGreaterThan(0)
      expect(s.negativeEvictions, name).toBeGreaterThan(0)
    }
    for (const o of r.http) expect(o.connections, o.origin).toBeLessThanOrEqual(32)
  })
})

describe('(d) counter-check: the plateau criterion fails on a leak', () => {
  it('the same loop, keeping every credential in an unbounded Map, fails it', async () => {
    // Introspection only, to be short: its cache is full after ≈ 13 000 credentials, so the
    // measured window (the second half, 20 000 – 40 000, past the fill) sees only the leak.
    const leaky = await runInProcess({ tokens: 40_000, warmup: 5_000, sampleEvery: 4_000, scenarios: ['introspection'], gc, leak: true, timeLimitMs: 120_000 })
    const bad = verdict(leaky)
    console.log(`counter-check: slope with the leak ${(bad.bytesPer100k / 1024).toFixed(1)} KiB/100k (threshold ${(bad.thresholdPer100k / 1024).toFixed(1)} KiB)`)
    expect(leaky.mismatches).toBe(0)
    expect(leaky.leaked).toBe(40_000)
    expect(filledAt(leaky.samples, leaky.capacityBytes)).toBeLessThanOrEqual(20_000)
    expect(bad.points).toBeGreaterThanOrEqual(5)
    expect(bad.ok).toBe(false)
    expect(bad.bytesPer100k).toBeGreaterThan(10 * bad.thresholdPer100k)
  }, 180_000)
})

function heapPoints(r: InProcessResult): [number, number][] {
  return r.samples.map((s) => [s.tokens, s.heapUsed])
}

/** The plateau verdict over the second half, from the first sample with the caches full. */
function verdict(r: InProcessResult): ReturnType<typeof plateau> {
  return plateau(heapPoints(r), r.reservedBytes, filledAt(r.samples, r.capacityBytes))
}
