/**
 * CI smoke run of the open-loop latency benchmark through the real Envoy (bench/envoy/run.ts
 * `--quick`: 500 requests/s for 2 s per variant, with and without ext_authz). It proves the
 * harness end to end — Envoy, Portcullis with the JWT rule, the upstream and the open-loop
 * generator start, every scheduled request is answered 200 (the JWT rule allowed it), and the
 * report and plot are written — and asserts no timing: figures from a CI machine mean nothing.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/envoy.js'

const SCRIPT = join(REPO_ROOT, 'dist', 'bench', 'envoy', 'run.js')

interface Rec {
  readonly variant: string
  readonly scheduled: number
  readonly ok: number
  readonly statuses: Record<string, number>
  readonly errors: Record<string, number>
  readonly misses: number
  readonly latency: { readonly p50Ms: number }
}

describe.skipIf(!existsSync(SCRIPT))('Envoy latency bench smoke (seconds, no timing assertions)', () => {
  it('runs both variants through the real Envoy; every scheduled request is answered 200', () => {
    const r = spawnSync(process.execPath, [SCRIPT, '--quick'], { encoding: 'utf8', timeout: 180_000 })
    const out = `${r.stdout}\n${r.stderr}`
    expect(r.status, out).toBe(0)
    const wrote = /wrote (bench\/out\/envoy-latency-[^{]+)\{json,md\} and (\S+)/.exec(out)
    expect(wrote, out).not.toBeNull()
    const report = JSON.parse(readFileSync(join(REPO_ROOT, `${wrote![1]!}json`), 'utf8')) as { records: Rec[] }
    expect(existsSync(wrote![2]!)).toBe(true)
    const variants = new Set(report.records.map((x) => x.variant))
    expect([...variants].sort()).toEqual(['baseline', 'ext_authz'])
    for (const rec of report.records) {
      expect(rec.scheduled, rec.variant).toBeGreaterThan(500)
      expect(rec.ok, `${rec.variant} ${JSON.stringify(rec.statuses)}`).toBe(rec.scheduled)
      // `statuses` and `errors` count what was not a 200 (other statuses, resets, shed requests).
      expect(rec.statuses, rec.variant).toEqual({})
      expect(rec.errors, rec.variant).toEqual({})
      expect(rec.latency.p50Ms).toBeGreaterThan(0)
    }
    // The ext_authz run sent never-seen tokens (cache misses), as the full run does.
    expect(report.records.find((x) => x.variant === 'ext_authz')!.misses).toBeGreaterThan(0)
  }, 200_000)
})
