/**
 * The arithmetic the memory verdicts rest on (bench/soak/analysis.ts) and the soak's outputs
 * (bench/soak/report.ts): if these were wrong, the proofs would prove nothing.
 */
import { describe, expect, it } from 'vitest'
import { filledAt, plateau, slope, tail } from '../../bench/soak/analysis.js'
import { CSV_COLUMNS, figures, toCsv, toSvg, type SoakRow } from '../../bench/soak/report.js'
import { parseMix, prng, TokenStream } from '../../bench/soak/tokens.js'

describe('slope', () => {
  it('is the least-squares slope', () => {
    expect(slope([[0, 1], [1, 3], [2, 5]])).toBeCloseTo(2)
    expect(slope([[0, 0], [1, 1], [2, 0], [3, 1]])).toBeCloseTo(0.2)
    expect(slope([[5, 7]])).toBe(0)
    expect(slope([[1, 1], [1, 5]])).toBe(0)
  })

  it('recovers a known slope through noise', () => {
    const rnd = prng(3)
    const pts: [number, number][] = Array.from({ length: 50 }, (_, i) => [i * 1000, 40e6 + 3 * i * 1000 + (rnd() - 0.5) * 1000])
    expect(slope(pts)).toBeCloseTo(3, 1)
  })
})

describe('plateau', () => {
  const R = 10_000_000 // reserved bytes → threshold 100 000 bytes per 100k credentials
  const flat = Array.from({ length: 20 }, (_, i): [number, number] => [i * 10_000, 50e6 + (i % 2) * 20_000])

  it('passes a flat series and fails a leaking one', () => {
    expect(plateau(flat, R).ok).toBe(true)
    const leaking = flat.map(([x, y]): [number, number] => [x, y + 2 * x]) // 2 bytes per credential
    const v = plateau(leaking, R)
    expect(v.ok).toBe(false)
    expect(v.bytesPer100k).toBeGreaterThan(190_000)
    expect(v.bytesPer100k).toBeLessThan(210_000)
    expect(v.thresholdPer100k).toBe(100_000)
  })

  it('measures over the second half, and only once the caches are full', () => {
    // Growth while filling (first half), flat afterwards.
    const filling = flat.map(([x, y]): [number, number] => [x, y + Math.min(x, 90_000) * 100])
    expect(plateau(filling, R).ok).toBe(true)
    expect(plateau(filling, R).points).toBe(10)
    expect(tail([1, 2, 3, 4, 5], 0.5)).toEqual([3, 4, 5])
    // A cache that fills late: the window starts where it is full.
    const late = flat.map(([x, y]): [number, number] => [x, y + Math.min(x, 140_000) * 100])
    expect(plateau(late, R).ok).toBe(false)
    expect(plateau(late, R, 140_000).ok).toBe(true)
    expect(plateau(late, R, 1e9).ok).toBe(false) // never full: no verdict
  })

  it('filledAt finds the first sample at 95 % of capacity', () => {
    const s = [0, 50, 94, 96, 100].map((c, i) => ({ tokens: i * 10, cacheBytes: c }))
    expect(filledAt(s, 100)).toBe(30)
    expect(filledAt(s, 1000)).toBe(Number.POSITIVE_INFINITY)
  })
})

describe('soak report', () => {
  const row = (t: number, rss: number, heap: number): SoakRow => ({
    t,
    rate: 1000,
    rssMb: rss,
    heapUsedMb: heap,
    heapTotalMb: heap + 10,
    cacheBytes: 1024 * t,
    cacheEntries: t,
    errors: t === 3 ? 1 : 0,
    allowed: 500,
    denied: 500,
    validDenied: 0,
    p99Ms: 5,
    eventLoopP99Ms: 2,
    gcPauseMsTotal: t,
  })
  const rows = Array.from({ length: 40 }, (_, i) => row(i + 1, 100 + Math.min(i, 10), 40 + (i % 3)))

  it('computes the headline figures', () => {
    const f = figures(rows)
    expect(f.durationS).toBe(40)
    expect(f.checks).toBe(40_000)
    expect(f.rate).toBe(1000)
    expect(f.rssStartMb).toBe(100)
    expect(f.rssAt25Mb).toBe(109)
    expect(f.rssEndMb).toBe(110)
    expect(f.rssPlateauMb).toBe(110)
    expect(f.rssSlopeMbPerMin).toBeGreaterThan(0)
    expect(f.rssSlopeMbPerMin).toBeLessThan(1.5)
    expect(f.heapMaxMb).toBe(42)
    expect(f.errors).toBe(1)
  })

  it('writes one CSV line per second with the documented columns', () => {
    const lines = toCsv(rows).trimEnd().split('\n')
    expect(lines[0]).toBe(CSV_COLUMNS.join(','))
    expect(lines[0]!.startsWith('t,rate,rss_mb,heap_used_mb,cache_bytes,errors')).toBe(true)
    expect(lines).toHaveLength(41)
    expect(lines[1]!.split(',')).toHaveLength(CSV_COLUMNS.length)
  })

  it('draws a self-contained SVG with both panels and escaped text', () => {
    const svg = toSvg(rows, { title: 'a < b & c', subtitle: ['x'], heapCapMb: 128 })
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
    expect(svg).toContain('a &lt; b &amp; c')
    expect(svg.match(/<polyline /g)).toHaveLength(5)
    expect(svg).toContain('heap cap 128 MiB')
    expect(svg).not.toMatch(/NaN|undefined|Infinity/)
  })
})

describe('token streams', () => {
  it('are unique, within the size range, and about the asked share valid', () => {
    const s = new TokenStream(parseMix('32-4096', '0.3'), 9)
    const seen = new Set<string>()
    let valid = 0
    for (let i = 0; i < 20_000; i++) {
      const { token, valid: v } = s.next()
      expect(token.length).toBeGreaterThanOrEqual(32)
      expect(token.length).toBeLessThanOrEqual(4096)
      expect(token.startsWith(v ? 'v.' : 'x.')).toBe(true)
      seen.add(token)
      if (v) valid++
    }
    expect(seen.size).toBe(20_000)
    expect(valid / 20_000).toBeCloseTo(0.3, 1)
  })

  it('rejects bad mixes', () => {
    expect(() => parseMix('4096-32', undefined)).toThrow()
    expect(() => parseMix('8-64', undefined)).toThrow()
    expect(() => parseMix('32-64', '1.5')).toThrow()
    expect(() => parseMix('abc', undefined)).toThrow()
  })
})
