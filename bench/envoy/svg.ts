/**
 * A hand-written SVG line chart (no dependency): latency percentiles against offered load, one
 * colour per percentile, solid lines through Envoy + ext_authz, dashed lines through Envoy alone,
 * logarithmic latency axis, and optional horizontal target lines.
 * @module
 */

export interface Series {
  readonly label: string
  readonly color: string
  readonly dashed: boolean
  /** [offered requests/s, latency ms] */
  readonly points: readonly (readonly [number, number])[]
}

export interface Chart {
  readonly title: string
  readonly subtitle: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: readonly Series[]
  readonly notes?: readonly string[]
}

const W = 860
const H = 520
const M = { left: 70, right: 220, top: 60, bottom: 96 }

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function lineChart(c: Chart): string {
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0)
  const xMax = niceCeil(Math.max(...xs, 1))
  const yMin = 10 ** Math.floor(Math.log10(Math.max(Math.min(...ys, 1), 0.01)))
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys, 1)))
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const X = (x: number): number => M.left + (x / xMax) * pw
  const Y = (y: number): number => M.top + ph - ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${M.left}" y="24" font-size="16" font-weight="bold">${esc(c.title)}</text>`)
  out.push(`<text x="${M.left}" y="44" fill="#555">${esc(c.subtitle)}</text>`)
  // Grid: x every xMax/6, y every decade (with 2 and 5).
  for (let i = 0; i <= 6; i++) {
    const x = (xMax / 6) * i
    out.push(`<line x1="${X(x)}" y1="${M.top}" x2="${X(x)}" y2="${M.top + ph}" stroke="#eee"/>`)
    out.push(`<text x="${X(x)}" y="${M.top + ph + 18}" text-anchor="middle">${fmt(x)}</text>`)
  }
  for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const y = d * m
      if (y > yMax * 1.0001) break
      out.push(`<line x1="${M.left}" y1="${Y(y)}" x2="${M.left + pw}" y2="${Y(y)}" stroke="${m === 1 ? '#ddd' : '#f3f3f3'}"/>`)
      out.push(`<text x="${M.left - 6}" y="${Y(y) + 4}" text-anchor="end">${fmt(y)}</text>`)
    }
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`)
  out.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 38}" text-anchor="middle">${esc(c.xLabel)}</text>`)
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`)
  c.series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] > 0)
    if (pts.length === 0) return
    const d = pts.map((p, j) => `${j === 0 ? 'M' : 'L'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ')
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`)
    for (const p of pts) out.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.label}: ${fmt(p[1])} ms at ${fmt(p[0])}/s`)}</title></circle>`)
    const ly = M.top + 10 + i * 20
    const lx = M.left + pw + 16
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`)
    out.push(`<text x="${lx + 34}" y="${ly + 4}">${esc(s.label)}</text>`)
  })
  const notes = c.notes ?? []
  notes.forEach((n, i) => out.push(`<text x="${M.left}" y="${H - 12 - (notes.length - 1 - i) * 15}" fill="#555" font-size="11">${esc(n)}</text>`))
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function niceCeil(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x))
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p
  return 10 * p
}

function fmt(x: number): string {
  if (x >= 1000) return `${+(x / 1000).toFixed(1)}k`
  if (x >= 1) return `${+x.toFixed(2)}`
  return `${+x.toFixed(3)}`
}
