/**
 * The Prometheus text exposition format (0.0.4), parsed just enough to check what a scraper sees:
 * families with their TYPE and HELP, samples with labels (escapes undone) and values.
 */

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}
export interface Family {
  type: string
  help: string
  readonly samples: Sample[]
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) families.set(name, (f = { type: 'untyped', help: '', samples: [] }))
    return f
  }
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta !== null) {
      if (meta[1] === 'TYPE') family(meta[2]!).type = meta[3]!
      else family(meta[2]!).help = meta[3]!
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    const raw = m[3]!
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : /^nan$/i.test(raw) ? NaN : Number(raw)
    const name = m[1]!
    const base = name.replace(/_(bucket|sum|count)$/, '')
    const owner = base !== name && ['histogram', 'summary'].includes(families.get(base)?.type ?? '') ? base : name
    family(owner).samples.push({ name, labels, value })
  }
  return families
}

/** Sample lines (not comments) in the exposition: the number of series a scraper stores. */
export const seriesCount = (text: string): number => text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length

export const sample = (fams: Map<string, Family>, family: string, labels: Record<string, string>, name = family): number | undefined =>
  fams.get(family)?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
