/**
 * The short gRPC soak (CI profile of `npm run soak`, bench/soak/soak.ts): the built server as a
 * child process under a 96 MiB heap cap, the load generator as another child sending Checks with
 * unique credentials (introspection and jwt, 32 B – 4 KiB, half valid) as fast as they are
 * answered for `PORTCULLIS_SOAK_SECONDS` (default 45) over loopback, RSS sampled every second.
 * The caches are small (1 MiB + 128 KiB each) so they are full well before a quarter of the run,
 * which is where growth is measured from.
 *
 * Asserts: the server never crashed (a leak under the cap would be an OOM crash), no gRPC error,
 * no invalid credential allowed, RSS end − RSS at 25 % ≤ 32 MiB, the caches filled and stayed
 * within their limits, and every child process is gone afterwards.
 *
 * Needs `npm run build` (dist/bench/soak/); `npm test` builds first.
 */
import { describe, expect, it } from 'vitest'
import { runSoak, type SoakResult } from '../../bench/soak/soak.js'

const SECONDS = Number(process.env['PORTCULLIS_SOAK_SECONDS'] ?? 45)
const MiB = 1024 * 1024
const CACHE = { maxCost: 1 * MiB, negativeMaxCost: 128 * 1024 }
/** Allowed RSS growth after the first quarter (allocator and V8 heap settling; a leak is more). */
const RSS_GROWTH_BOUND_MB = 32

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('short soak over gRPC (unique credentials, real server process under a heap cap)', () => {
  it(`runs ${SECONDS} s without errors, invalid allows or RSS growth past the bound`, async () => {
    const r: SoakResult = await runSoak({
      durationS: SECONDS,
      scenarios: ['introspection', 'jwt'],
      sizing: CACHE,
      heapCapMb: 96,
      channels: 4,
      inflight: 16,
    })
    const f = r.figures
    const t = r.totals
    const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0)
    console.log(
      `soak ${f.durationS.toFixed(0)} s: ${f.checks} Checks (${f.rate}/s); RSS ${f.rssStartMb.toFixed(1)} → ${f.rssAt25Mb.toFixed(1)} (25 %) → ` +
        `${f.rssEndMb.toFixed(1)} MiB (slope ${f.rssSlopeMbPerMin.toFixed(2)} MiB/min); heap used plateau ${f.heapPlateauMb.toFixed(1)} MiB, ` +
        `max ${f.heapMaxMb.toFixed(1)} MiB; caches ${(f.cacheMaxBytes / MiB).toFixed(2)} MiB; valid denied ${JSON.stringify(t.validDenied)}`,
    )

    expect(r.server.crashed, r.server.stderrTail.join('\n')).toBe(false)
    expect(r.server.oom).toBe(false)
    expect(t.grpcErrors).toEqual({})
    expect(t.invalidAllowed).toBe(0)
    // The load really ran, and was mostly answered as expected (a saturated box may 503 a few).
    expect(r.rows.length).toBeGreaterThanOrEqual(SECONDS - 2)
    expect(t.completed).toBeGreaterThan(SECONDS * 50)
    expect(t.allowed + t.denied401).toBeGreaterThan(0.95 * t.completed)
    expect(sum(t.validDenied) + sum(t.invalidOther)).toBeLessThan(0.05 * t.completed)

    // Memory: flat after the first quarter, caches full and within their limits.
    expect(f.rssEndMb - f.rssAt25Mb).toBeLessThanOrEqual(RSS_GROWTH_BOUND_MB)
    expect(f.heapMaxMb).toBeLessThan(r.heapCapMb)
    const capacity = r.scenarios.length * (CACHE.maxCost + CACHE.negativeMaxCost)
    expect(f.cacheMaxBytes).toBeLessThanOrEqual(capacity)
    const quarter = r.rows.filter((row) => row.t >= f.durationS * 0.25)
    expect(quarter[0]!.cacheBytes, 'the caches were not full at 25 % of the run').toBeGreaterThan(0.9 * capacity)

    // Clean up: nothing left running.
    expect(alive(r.server.pid)).toBe(false)
  }, (SECONDS + 90) * 1000)
})
