/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and prints the functions with the most self
 * time, and the most inclusive time for functions under `--filter` (a path fragment, e.g.
 * `/src/`), so hot-path work shows up without a GUI.
 *
 * Usage: `node dist/bench/ghz/cpuprofile.js FILE.cpuprofile [--top 40] [--filter /src/]`
 * @module
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface Profile {
  nodes: Node[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface Row {
  readonly name: string
  readonly selfMs: number
  readonly selfShare: number
  readonly totalMs: number
  readonly totalShare: number
}

function label(n: Node): string {
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/')
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`
}

export function analyse(p: Profile): { rows: Row[]; totalMs: number } {
  const byId = new Map<number, Node>()
  for (const n of p.nodes) byId.set(n.id, n)
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfUs = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0))
  }
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  let all = 0
  for (const [id, us] of selfUs) {
    all += us
    const n = byId.get(id)!
    const l = label(n)
    self.set(l, (self.get(l) ?? 0) + us)
    // Inclusive: once per distinct label on the stack.
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const ln = label(byId.get(cur)!)
      if (seen.has(ln)) continue
      seen.add(ln)
      total.set(ln, (total.get(ln) ?? 0) + us)
    }
  }
  const rows = [...total.keys()].map((name) => ({
    name,
    selfMs: (self.get(name) ?? 0) / 1000,
    selfShare: (self.get(name) ?? 0) / all,
    totalMs: (total.get(name) ?? 0) / 1000,
    totalShare: (total.get(name) ?? 0) / all,
  }))
  return { rows, totalMs: all / 1000 }
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '40' }, filter: { type: 'string' } },
  })
  const file = positionals[0]
  if (file === undefined) throw new Error('usage: cpuprofile.js FILE.cpuprofile [--top N] [--filter /src/]')
  const { rows, totalMs } = analyse(JSON.parse(readFileSync(file, 'utf8')) as Profile)
  const top = Number(values.top)
  console.log(`total sampled: ${(totalMs / 1000).toFixed(1)} s\n\nself time:`)
  for (const r of [...rows].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) {
    console.log(`${(r.selfShare * 100).toFixed(1).padStart(5)} %  ${r.name}`)
  }
  const f = values.filter
  if (f !== undefined) {
    console.log(`\ninclusive time, ${f}:`)
    for (const r of rows.filter((x) => x.name.includes(f)).sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) {
      console.log(`${(r.totalShare * 100).toFixed(1).padStart(5)} %  ${r.name}`)
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) main()
