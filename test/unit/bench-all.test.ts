/** `npm run bench` (bench/all.ts) names scripts by path: each must exist, with the options it passes. */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PARTS } from '../../bench/all.js'

const ROOT = join(import.meta.dirname, '..', '..')

describe('npm run bench (bench/all.ts)', () => {
  it('runs throughput, progressive, envoy and workers, each an existing script that accepts the options given', () => {
    expect(PARTS.map((p) => p.id)).toEqual(['throughput', 'progressive-baseline', 'progressive-jwt-cached', 'envoy', 'workers'])
    for (const p of PARTS) {
      const source = join(ROOT, 'bench', p.script.replace(/\.js$/, '.ts'))
      expect(existsSync(source), source).toBe(true)
      const text = readFileSync(source, 'utf8')
      for (const arg of [...p.args, ...p.writeArgs].filter((a) => a.startsWith('--'))) {
        // parseArgs option names appear quoted or as identifiers in the script's option table.
        const name = arg.slice(2)
        expect(text.includes(`'${name}'`) || text.includes(`${name}: {`), `${p.script} ${arg}`).toBe(true)
      }
      expect(p.timeoutMin).toBeGreaterThan(0)
    }
  })
})
