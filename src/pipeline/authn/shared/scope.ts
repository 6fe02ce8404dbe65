/**
 * Scope strategies (Oathkeeper's `scope_strategy`, from ory/fosite): does a granted scope list
 * satisfy every required scope? `none` means the authenticator does not check scopes itself.
 * @module
 */
import { z } from 'zod'

export const ScopeStrategySchema = z.enum(['exact', 'hierarchic', 'wildcard', 'none'])
export type ScopeStrategy = z.infer<typeof ScopeStrategySchema>

export type ScopeMatcher = (granted: readonly string[], needle: string) => boolean

/** fosite ExactScopeStrategy: string equality. */
function exact(granted: readonly string[], needle: string): boolean {
  return granted.includes(needle)
}

/** fosite HierarchicScopeStrategy: `foo` grants `foo`, `foo.bar`, `foo.bar.baz`; not the reverse. */
function hierarchic(granted: readonly string[], needle: string): boolean {
  for (const g of granted) {
    if (g === needle) return true
    if (needle.startsWith(`${g}.`)) return true
  }
  return false
}

/**
 * fosite WildcardScopeStrategy: `foo.*` grants `foo.bar` and `foo.bar.baz` but not `foo`;
 * a `*` segment matches exactly one non-empty segment unless it is the last one.
 */
function wildcard(granted: readonly string[], needle: string): boolean {
  const n = needle.split('.')
  for (const g of granted) {
    if (g === needle) return true
    const h = g.split('.')
    if (h.length > n.length) continue
    let ok = true
    for (let i = 0; i < h.length; i++) {
      const seg = h[i]!
      const want = n[i]!
      if (seg === '*') {
        if (want === '') {
          ok = false
          break
        }
        if (i === h.length - 1) break // trailing * covers the rest
        continue
      }
      if (seg !== want) {
        ok = false
        break
      }
    }
    if (ok && (h.length === n.length || h[h.length - 1] === '*')) return true
  }
  return false
}

export const SCOPE_MATCHERS: Readonly<Record<Exclude<ScopeStrategy, 'none'>, ScopeMatcher>> = { exact, hierarchic, wildcard }

/** Reads the token's scopes: first present of `scp`, `scope`, `scopes`; an array or a space-separated string. */
export function grantedScopes(claims: Readonly<Record<string, unknown>>): readonly string[] {
  for (const key of ['scp', 'scope', 'scopes']) {
    const v = claims[key]
    if (v === undefined || v === null) continue
    if (typeof v === 'string') return v.split(' ').filter((s) => s !== '')
    if (Array.isArray(v)) return v.filter((s): s is string => typeof s === 'string')
    return []
  }
  return []
}
