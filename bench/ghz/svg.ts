/**
 * Hand-written SVG charts for bench/results/ (no dependencies): line charts (latency vs load, RSS
 * over time) and grouped bar charts (throughput per scenario). Each chart is a `<g>` panel placed
 * by `svgDocument`, so one file can hold several panels.
 * @module
 */

export interface Series {
  readonly label: string
  readonly color: string
  readonly points: readonly (readonly [x: number, y: number])[]
  /** Dashed line. */
  readonly dashed?: boolean
}

export interface Panel {
  readonly width: number
  readonly height: number
  /** SVG markup of the panel, drawn at (0,0). */
  readonly body: string
}

const FONT = 'font-family="Helvetica,Arial,sans-serif"'

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Round tick values covering [min, max]. */
export function ticks(min: number, max: number, target = 5): number[] {
  if (!(max > min)) return [min]
  const raw = (max - min) / target
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

export function fmt(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3).replace(/\.?0+$/, '')}M`
  if (a >= 1e3) return `${(v / 1e3).toPrecision(3).replace(/\.?0+$/, '')}k`
  if (a >= 1) return String(Number(v.toPrecision(3)))
  return String(Number(v.toPrecision(2)))
}

/** A line chart; `logY` uses a log10 y axis (values ≤ 0 are dropped). */
export function lineChart(o: {
  title: string
  xLabel: string
  yLabel: string
  series: readonly Series[]
  width?: number
  height?: number
  logY?: boolean
  yMin?: number
  /** Horizontal reference lines (e.g. an SLO). */
  hLines?: readonly { y: number; label: string; color: string }[]
}): Panel {
  const width = o.width ?? 640
  const height = o.height ?? 360
  const m = { l: 64, r: 16, t: 36, b: 72 }
  const pw = width - m.l - m.r
  const ph = height - m.t - m.b
  const tf = (y: number): number => (o.logY ? Math.log10(y) : y)
  const pts = o.series.flatMap((s) => s.points.filter(([, y]) => !o.logY || y > 0))
  const extraY = (o.hLines ?? []).map((h) => h.y)
  const xs = pts.map(([x]) => x)
  const ys = [...pts.map(([, y]) => y), ...extraY].filter((y) => !o.logY || y > 0)
  let x0 = Math.min(...xs, Infinity)
  let x1 = Math.max(...xs, -Infinity)
  if (!Number.isFinite(x0)) [x0, x1] = [0, 1]
  if (x0 === x1) x1 = x0 + 1
  let y0: number
  let y1: number
  let yt: number[]
  if (o.logY) {
    const lo = Math.floor(Math.log10(Math.min(...ys, 1)))
    const hi = Math.ceil(Math.log10(Math.max(...ys, 1.0001)))
    y0 = lo
    y1 = hi === lo ? lo + 1 : hi
    yt = []
    for (let e = y0; e <= y1; e++) yt.push(e)
  } else {
    y0 = o.yMin ?? 0
    y1 = Math.max(...ys, y0 + 1e-9) * 1.08
    yt = ticks(y0, y1)
  }
  const px = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * pw
  const py = (y: number): number => m.t + ph - ((tf(y) - y0) / (y1 - y0)) * ph
  const parts: string[] = []
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`)
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold" ${FONT}>${esc(o.title)}</text>`)
  // Grid and axes.
  for (const t of yt) {
    const y = o.logY ? m.t + ph - ((t - y0) / (y1 - y0)) * ph : py(t)
    const label = o.logY ? fmt(10 ** t) : fmt(t)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e4e4e4"/>`)
    parts.push(`<text x="${m.l - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="11" ${FONT}>${label}</text>`)
  }
  for (const t of ticks(x0, x1, 6)) {
    const x = px(t)
    parts.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${m.t}" y2="${m.t + ph}" stroke="#f0f0f0"/>`)
    parts.push(`<text x="${x.toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11" ${FONT}>${fmt(t)}</text>`)
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`)
  parts.push(`<text x="${m.l + pw / 2}" y="${m.t + ph + 34}" text-anchor="middle" font-size="12" ${FONT}>${esc(o.xLabel)}</text>`)
  parts.push(
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT}>${esc(o.yLabel)}</text>`,
  )
  for (const h of o.hLines ?? []) {
    if (o.logY && h.y <= 0) continue
    const y = py(h.y)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${h.color}" stroke-dasharray="6 4"/>`)
    parts.push(`<text x="${m.l + pw - 4}" y="${(y - 4).toFixed(1)}" text-anchor="end" font-size="11" fill="${h.color}" ${FONT}>${esc(h.label)}</text>`)
  }
  for (const s of o.series) {
    const p = s.points.filter(([, y]) => !o.logY || y > 0)
    if (p.length === 0) continue
    const d = p.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`)
    if (p.length <= 40) for (const [x, y] of p) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`)
  }
  legend(parts, o.series, m.l, height - 18, pw)
  return { width, height, body: parts.join('\n') }
}

function legend(parts: string[], items: readonly { label: string; color: string }[], x0: number, y: number, width: number): void {
  const each = Math.max(90, Math.min(200, width / Math.max(1, items.length)))
  items.forEach((s, i) => {
    const x = x0 + i * each
    parts.push(`<rect x="${x}" y="${y - 9}" width="12" height="10" fill="${s.color}"/>`)
    parts.push(`<text x="${x + 16}" y="${y}" font-size="11" ${FONT}>${esc(s.label)}</text>`)
  })
}

/** Grouped bars: one group per category, one bar per series; values printed on the bars. */
export function barChart(o: {
  title: string
  yLabel: string
  categories: readonly string[]
  series: readonly { label: string; color: string; values: readonly (number | undefined)[] }[]
  width?: number
  height?: number
  /** Horizontal reference lines. */
  hLines?: readonly { y: number; label: string; color: string }[]
}): Panel {
  const width = o.width ?? 760
  const height = o.height ?? 380
  const m = { l: 64, r: 16, t: 36, b: 84 }
  const pw = width - m.l - m.r
  const ph = height - m.t - m.b
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined))
  const y1 = Math.max(...all, ...(o.hLines ?? []).map((h) => h.y), 1) * 1.12
  const py = (v: number): number => m.t + ph - (v / y1) * ph
  const parts: string[] = []
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`)
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold" ${FONT}>${esc(o.title)}</text>`)
  for (const t of ticks(0, y1)) {
    const y = py(t)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e4e4e4"/>`)
    parts.push(`<text x="${m.l - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="11" ${FONT}>${fmt(t)}</text>`)
  }
  parts.push(
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT}>${esc(o.yLabel)}</text>`,
  )
  const gw = pw / Math.max(1, o.categories.length)
  const bw = (gw * 0.8) / Math.max(1, o.series.length)
  o.categories.forEach((c, ci) => {
    const gx = m.l + ci * gw + gw * 0.1
    o.series.forEach((s, si) => {
      const v = s.values[ci]
      if (v === undefined) return
      const x = gx + si * bw
      const y = py(v)
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(m.t + ph - y).toFixed(1)}" fill="${s.color}"/>`)
      parts.push(`<text x="${(x + bw / 2 - 1).toFixed(1)}" y="${(y - 3).toFixed(1)}" text-anchor="middle" font-size="9" ${FONT}>${fmt(v)}</text>`)
    })
    parts.push(`<text x="${(m.l + ci * gw + gw / 2).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11" ${FONT}>${esc(c)}</text>`)
  })
  for (const h of o.hLines ?? []) {
    const y = py(h.y)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${h.color}" stroke-dasharray="6 4"/>`)
    parts.push(`<text x="${m.l + pw - 4}" y="${(y - 4).toFixed(1)}" text-anchor="end" font-size="11" fill="${h.color}" ${FONT}>${esc(h.label)}</text>`)
  }
  parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#888"/>`)
  legend(parts, o.series, m.l, height - 18, pw)
  return { width, height, body: parts.join('\n') }
}

/** Stacks panels vertically into one SVG document, with an optional caption at the bottom. */
export function svgDocument(panels: readonly Panel[], caption?: string): string {
  const width = Math.max(...panels.map((p) => p.width))
  let y = 0
  const groups: string[] = []
  for (const p of panels) {
    groups.push(`<g transform="translate(0 ${y})">\n${p.body}\n</g>`)
    y += p.height
  }
  if (caption !== undefined) {
    groups.push(`<text x="8" y="${y + 16}" font-size="10" fill="#555" ${FONT}>${esc(caption)}</text>`)
    y += 24
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}">\n${groups.join('\n')}\n</svg>\n`
}
