import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '../../..')

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? listFiles(p) : [p]
  })
}

describe('generated proto code', () => {
  const out = mkdtempSync(join(tmpdir(), 'portcullis-gen-'))
  afterAll(() => rmSync(out, { recursive: true, force: true }))

  it('src/gen is exactly what `npm run proto` generates from @grpc/grpc-js-xds deps/', () => {
    execFileSync(process.execPath, [join(root, 'scripts/gen-proto.mjs'), out], { stdio: 'pipe' })
    const fresh = listFiles(out).map((f) => relative(out, f)).sort()
    const committed = listFiles(join(root, 'src/gen')).map((f) => relative(join(root, 'src/gen'), f)).sort()
    expect(committed).toEqual(fresh)
    expect(fresh).toContain('envoy/service/auth/v3/external_auth.ts')
    for (const f of fresh) {
      expect(readFileSync(join(root, 'src/gen', f), 'utf8'), `src/gen/${f} is stale`).toBe(readFileSync(join(out, f), 'utf8'))
    }
  }, 120_000)
})
