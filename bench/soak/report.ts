/**
 * The soak's outputs: one row per second (CSV), the headline figures, and a hand-written SVG plot
 * (RSS, heap used and cache bytes over time, with the heap cap; throughput below). No
 * dependencies: the SVG is a few polylines and labels.
 * @module
 */
import { MB, slope } from './analysis.js'

/** One second of the soak. */
export interface SoakRow {
  /** Seconds since the load started. */
  readonly t: number
  /** Checks answered during this second. */
  readonly rate: number
  readonly rssMb: number
  /** From the server's latest summary line (NaN before the first one). */
  readonly heapUsedMb: number
  readonly heapTotalMb: number
  readonly cacheBytes: number
  readonly cacheEntries: number
  /** gRPC errors + invalid credentials allowed, this second (must stay 0). */
  readonly errors: number
  readonly allowed: number
  readonly denied: number
  /** Valid credentials denied this second (503 under overload, …). */
  readonly validDenied: number
  readonly p99Ms: number
  readonly eventLoopP99Ms: number
  readonly gcPauseMsTotal: number
}

export const CSV_COLUMNS = [
  't',
  'rate',
  'rss_mb',
  'heap_used_mb',
  'cache_bytes',
  'errors',
  'heap_total_mb',
  'cache_entries',
  'allowed',
  'denied',
  'valid_denied',
  'p99_ms',
  'event_loop_p99_ms',
  'gc_pause_ms_total',
] as const

export function toCsv(rows: readonly SoakRow[]): string {
  const lines = [CSV_COLUMNS.join(',')]
  for (const r of rows) {
    lines.push(
      [
        r.t,
        r.rate,
        r.rssMb.toFixed(2),
        Number.isNaN(r.heapUsedMb) ? '' : r.heapUsedMb.toFixed(2),
        r.cacheBytes,
        r.errors,
        Number.isNaN(r.heapTotalMb) ? '' : r.heapTotalMb.toFixed(2),
        r.cacheEntries,
        r.allowed,
        r.denied,
        r.validDenied,
        r.p99Ms,
        r.eventLoopP99Ms,
        r.gcPauseMsTotal,
      ].join(','),
    )
  }
  return `${lines.join('\n')}\n`
}

export interface SoakFigures {
  readonly durationS: number
  readonly checks: number
  /** Checks per second over the whole run. */
  readonly rate: number
  readonly rssStartMb: number
  /** RSS at 25 % of the run (after warm-up: the reference for growth). */
  readonly rssAt25Mb: number
  /** Median RSS over the second half. */
  readonly rssPlateauMb: number
  readonly rssEndMb: number
  readonly rssMaxMb: number
  /** Least-squares slope of RSS from 25 % of the run to the end, MiB per minute. */
  readonly rssSlopeMbPerMin: number
  readonly heapStartMb: number
  readonly heapPlateauMb: number
  readonly heapEndMb: number
  readonly heapMaxMb: number
  /** Slope of heap used after 25 % (raw samples: between-GC sawtooth included), MiB/min. */
  readonly heapSlopeMbPerMin: number
  /**
   * Lowest heap used of each 10 s window (≈ what survives GC: the sawtooth's floor), median over
   * the second half, and its least-squares slope after 25 % in MiB/min: the soak's retained-heap
   * trend, less noisy than the raw samples.
   */
  readonly heapFloorMb: number
  readonly heapFloorSlopeMbPerMin: number
  readonly cacheMaxBytes: number
  readonly errors: number
  readonly p99MaxMs: number
  readonly eventLoopP99MaxMs: number
}

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

export function figures(rows: readonly SoakRow[]): SoakFigures {
  if (rows.length === 0) throw new Error('no samples')
  const last = rows.at(-1)!
  const durationS = last.t
  const checks = rows.reduce((a, r) => a + r.rate, 0)
  const from25 = rows.filter((r) => r.t >= durationS * 0.25)
  const half = rows.filter((r) => r.t >= durationS * 0.5)
  const heapRows = rows.filter((r) => !Number.isNaN(r.heapUsedMb))
  const heap25 = heapRows.filter((r) => r.t >= durationS * 0.25)
  const heapHalf = heapRows.filter((r) => r.t >= durationS * 0.5)
  const floors: [number, number][] = []
  for (let w = 0; w * 10 < durationS; w++) {
    const inWindow = heapRows.filter((r) => r.t >= w * 10 && r.t < (w + 1) * 10)
    if (inWindow.length > 0) floors.push([w * 10 + 5, Math.min(...inWindow.map((r) => r.heapUsedMb))])
  }
  return {
    durationS,
    checks,
    rate: Math.round(checks / Math.max(1, durationS)),
    rssStartMb: rows[0]!.rssMb,
    rssAt25Mb: from25[0]?.rssMb ?? Number.NaN,
    rssPlateauMb: median(half.map((r) => r.rssMb)),
    rssEndMb: last.rssMb,
    rssMaxMb: Math.max(...rows.map((r) => r.rssMb)),
    rssSlopeMbPerMin: slope(from25.map((r) => [r.t, r.rssMb])) * 60,
    heapStartMb: heapRows[0]?.heapUsedMb ?? Number.NaN,
    heapPlateauMb: median(heapHalf.map((r) => r.heapUsedMb)),
    heapEndMb: heapRows.at(-1)?.heapUsedMb ?? Number.NaN,
    heapMaxMb: Math.max(...heapRows.map((r) => r.heapUsedMb)),
    heapSlopeMbPerMin: slope(heap25.map((r) => [r.t, r.heapUsedMb])) * 60,
    heapFloorMb: median(floors.filter(([t]) => t >= durationS * 0.5).map(([, v]) => v)),
    heapFloorSlopeMbPerMin: slope(floors.filter(([t]) => t >= durationS * 0.25)) * 60,
    cacheMaxBytes: Math.max(...rows.map((r) => r.cacheBytes)),
    errors: rows.reduce((a, r) => a + r.errors, 0),
    p99MaxMs: Math.max(...rows.map((r) => r.p99Ms)),
    eventLoopP99MaxMs: Math.max(...rows.map((r) => r.eventLoopP99Ms)),
  }
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** A "nice" axis step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks
  const p = 10 ** Math.floor(Math.log10(raw))
  const m = raw / p
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p
}

export interface PlotOptions {
  readonly title: string
  /** Lines under the title (figures, command, machine). */
  readonly subtitle?: readonly string[]
  /** Heap cap (`--max-old-space-size`), drawn as a dashed line. */
  readonly heapCapMb?: number
  /** Default `time (s)`. */
  readonly xLabel?: string
  /** Default `checks/s` / `checks answered per second`. */
  readonly rateLabel?: readonly [axis: string, caption: string]
}

/** The plot: memory (MiB) over time on top, throughput below. */
export function toSvg(rows: readonly SoakRow[], o: PlotOptions): string {
  const W = 960
  const left = 70
  const right = 30
  const subtitle = o.subtitle ?? []
  const top = 40 + 16 * subtitle.length
  const memH = 300
  const gap = 50
  const rateH = 120
  const H = top + memH + gap + rateH + 50
  const plotW = W - left - right
  const tMax = Math.max(1, rows.at(-1)?.t ?? 1)
  const memMaxData = Math.max(1, ...rows.map((r) => r.rssMb), ...rows.map((r) => (Number.isNaN(r.heapTotalMb) ? 0 : r.heapTotalMb)), o.heapCapMb ?? 0)
  const memStep = niceStep(memMaxData * 1.05, 6)
  const memMax = Math.ceil((memMaxData * 1.05) / memStep) * memStep
  const rateMaxData = Math.max(1, ...rows.map((r) => r.rate))
  const rateStep = niceStep(rateMaxData * 1.1, 3)
  const rateMax = Math.ceil((rateMaxData * 1.1) / rateStep) * rateStep
  const tStep = niceStep(tMax, 10)

  const x = (t: number): number => left + (t / tMax) * plotW
  const yMem = (v: number): number => top + memH - (v / memMax) * memH
  const rateTop = top + memH + gap
  const yRate = (v: number): number => rateTop + rateH - (v / rateMax) * rateH
  const f = (n: number): string => n.toFixed(1)
  const line = (pts: readonly (readonly [number, number])[], color: string, extra = ''): string =>
    pts.length === 0 ? '' : `<polyline fill="none" stroke="${color}" stroke-width="1.6" ${extra} points="${pts.map(([a, b]) => `${f(a)},${f(b)}`).join(' ')}"/>`

  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(o.title)}</text>`)
  subtitle.forEach((s, i) => out.push(`<text x="${left}" y="${40 + 16 * i}" fill="#444">${esc(s)}</text>`))

  // Grids and axes.
  for (let v = 0; v <= memMax + 1e-9; v += memStep) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${f(yMem(v))}" y2="${f(yMem(v))}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${left - 6}" y="${f(yMem(v) + 4)}" text-anchor="end">${Math.round(v)}</text>`)
  }
  for (let v = 0; v <= rateMax + 1e-9; v += rateStep) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${f(yRate(v))}" y2="${f(yRate(v))}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${left - 6}" y="${f(yRate(v) + 4)}" text-anchor="end">${Math.round(v)}</text>`)
  }
  for (let t = 0; t <= tMax + 1e-9; t += tStep) {
    for (const [y0, y1] of [[top, top + memH], [rateTop, rateTop + rateH]] as const) {
      out.push(`<line x1="${f(x(t))}" x2="${f(x(t))}" y1="${y0}" y2="${y1}" stroke="#f0f0f0"/>`)
    }
    out.push(`<text x="${f(x(t))}" y="${rateTop + rateH + 16}" text-anchor="middle">${Math.round(t)}</text>`)
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${memH}" fill="none" stroke="#888"/>`)
  out.push(`<rect x="${left}" y="${rateTop}" width="${plotW}" height="${rateH}" fill="none" stroke="#888"/>`)
  const [rateAxis, rateCaption] = o.rateLabel ?? ['checks/s', 'checks answered per second']
  out.push(`<text x="${left + plotW / 2}" y="${rateTop + rateH + 34}" text-anchor="middle">${esc(o.xLabel ?? 'time (s)')}</text>`)
  out.push(`<text transform="translate(18 ${top + memH / 2}) rotate(-90)" text-anchor="middle">memory (MiB)</text>`)
  out.push(`<text transform="translate(18 ${rateTop + rateH / 2}) rotate(-90)" text-anchor="middle">${esc(rateAxis)}</text>`)

  // Series.
  if (o.heapCapMb !== undefined) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${f(yMem(o.heapCapMb))}" y2="${f(yMem(o.heapCapMb))}" stroke="#999" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${W - right - 4}" y="${f(yMem(o.heapCapMb) - 5)}" text-anchor="end" fill="#666">heap cap ${o.heapCapMb} MiB (--max-old-space-size)</text>`)
  }
  const heap = rows.filter((r) => !Number.isNaN(r.heapUsedMb))
  out.push(line(rows.map((r) => [x(r.t), yMem(r.rssMb)]), '#d62728'))
  out.push(line(heap.map((r) => [x(r.t), yMem(r.heapTotalMb)]), '#9ecae1', 'stroke-dasharray="3 3"'))
  out.push(line(heap.map((r) => [x(r.t), yMem(r.heapUsedMb)]), '#1f77b4'))
  out.push(line(rows.map((r) => [x(r.t), yMem(r.cacheBytes / MB)]), '#2ca02c', 'stroke-dasharray="6 3"'))
  out.push(line(rows.map((r) => [x(r.t), yRate(r.rate)]), '#333'))
  const errs = rows.filter((r) => r.errors > 0)
  for (const r of errs) out.push(`<circle cx="${f(x(r.t))}" cy="${f(yRate(r.rate))}" r="3" fill="#d62728"/>`)

  // Legend.
  const legend: [string, string, string][] = [
    ['#d62728', '', 'RSS (/proc VmRSS)'],
    ['#1f77b4', '', 'V8 heap used'],
    ['#9ecae1', '3 3', 'V8 heap total'],
    ['#2ca02c', '6 3', 'cache bytes (all caches)'],
  ]
  legend.forEach(([color, dash, label], i) => {
    const lx = left + 12 + i * 200
    const ly = top + 16
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2" ${dash === '' ? '' : `stroke-dasharray="${dash}"`}/>`)
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(label)}</text>`)
  })
  out.push(`<text x="${left + 12}" y="${rateTop + 16}">${esc(rateCaption)}${errs.length > 0 ? ' (red: seconds with errors)' : ''}</text>`)
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
