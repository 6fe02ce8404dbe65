/**
 * The README's error-code and handler tables are documentation users rely on; these tests keep
 * them in step with the code (Fastify's errors.md check).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultRegistry } from '../../src/pipeline/registry.js'
import { STATUS } from '../../src/server/status.js'

const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8')

function tableAfter(heading: string): string[][] {
  const start = readme.indexOf(`## ${heading}`)
  expect(start, `README has a "## ${heading}" section`).toBeGreaterThanOrEqual(0)
  const lines = readme.slice(start).split('\n')
  const first = lines.findIndex((l) => l.startsWith('|'))
  const rows: string[][] = []
  for (const l of lines.slice(first + 2)) {
    if (!l.startsWith('|')) break
    rows.push(l.split('|').slice(1, -1).map((c) => c.trim()))
  }
  return rows
}

describe('README', () => {
  it('documents every error code with its gRPC and HTTP status and when-name', () => {
    const rows = tableAfter('Error codes')
    const documented = Object.fromEntries(rows.map((r) => [r[0]!.replaceAll('`', ''), r]))
    expect(Object.keys(documented).sort()).toEqual(Object.keys(STATUS).sort())
    for (const [code, s] of Object.entries(STATUS)) {
      const r = documented[code]!
      expect(r[1], code).toContain(`(${s.grpc})`)
      expect(r[2], code).toBe(String(s.http))
      expect(r[3], code).toBe(`\`${s.when}\``)
    }
  })

  it('documents exactly the registered handlers', () => {
    const rows = tableAfter('Handlers')
    const stageOf = { authenticator: 'authn', authorizer: 'authz', mutator: 'mutate', 'error handler': 'error' } as const
    const documented = rows.map((r) => `${stageOf[r[0] as keyof typeof stageOf]}:${r[1]!.replaceAll('`', '')}`).sort()
    const reg = defaultRegistry()
    const registered = (['authn', 'authz', 'mutate', 'error'] as const).flatMap((s) => reg.ids(s).map((id) => `${s}:${id}`)).sort()
    expect(documented).toEqual(registered)
  })
})
