/**
 * canonicalizeTarget: the hostile-path table of security.md §3.2 and list A (A3–A11, A17), the
 * decisions documented in src/request/canonical.ts, and a seeded property test over a hostile
 * alphabet (never throws; accepted output is canonical, idempotent and agrees with an upstream
 * that decodes every escape and resolves dot segments).
 */
import { describe, expect, it } from 'vitest'
import {
  canonicalizeTarget,
  MAX_TARGET_LENGTH,
  TARGET_REJECTION_MESSAGES,
  type TargetRejection,
} from '../../../src/request/canonical.js'

interface Accepted {
  name: string
  input: string
  path: string
  query?: string
}
interface Rejected {
  name: string
  input: string
  reason: TargetRejection
}

const accepted: Accepted[] = [
  { name: 'root', input: '/', path: '/' },
  { name: 'plain path', input: '/a/b', path: '/a/b' },
  { name: 'removes a "." segment', input: '/a/./b', path: '/a/b' },
  { name: 'resolves a ".." segment', input: '/a/b/../c', path: '/a/c' },
  { name: 'resolves mixed dot segments and the trailing slash', input: '/a/b/./../c/', path: '/a/c' },
  { name: 'trailing "." segment', input: '/a/.', path: '/a' },
  { name: 'trailing ".." segment', input: '/a/b/..', path: '/a' },
  { name: '".." back to the root', input: '/a/..', path: '/' },
  { name: 'lone "."', input: '/.', path: '/' },
  { name: 'A3: traversal out of a public prefix', input: '/public/../admin/users', path: '/admin/users' },
  { name: 'CVE-2019-9901: ./../', input: '/public/./../admin/users', path: '/admin/users' },
  { name: 'A4: %2e%2e is a dot segment', input: '/public/%2e%2e/admin/users', path: '/admin/users' },
  { name: 'A4: %2E%2e is a dot segment', input: '/public/%2E%2e/admin/users', path: '/admin/users' },
  { name: '§3.2: %2e alone is a dot segment', input: '/%2e/admin', path: '/admin' },
  { name: '§3.2: .%2e is a dot segment', input: '/a/.%2e/admin', path: '/admin' },
  { name: 'decodes escaped unreserved letters', input: '/%61dmin', path: '/admin' },
  { name: 'decodes every unreserved class', input: '/%41%7a%30%2D%5f%7E%2e', path: '/Az0-_~.' },
  { name: 'keeps an escaped space', input: '/a%20b', path: '/a%20b' },
  { name: 'upper-cases kept escapes', input: '/a%2bb%3a', path: '/a%2Bb%3A' },
  { name: 'keeps escaped UTF-8, upper-cased', input: '/caf%c3%a9', path: '/caf%C3%A9' },
  { name: 'keeps a 4-byte UTF-8 sequence', input: '/%F0%9F%98%80', path: '/%F0%9F%98%80' },
  { name: 'strips the trailing slash', input: '/api/', path: '/api' },
  { name: 'strips the trailing slash before the query', input: '/api/?a=1', path: '/api', query: 'a=1' },
  { name: 'A9: keeps case', input: '/ADMIN/users', path: '/ADMIN/users' },
  { name: 'A10: query kept verbatim, never part of the path', input: '/admin/users?x=/static/a.css', path: '/admin/users', query: 'x=/static/a.css' },
  { name: 'splits at the first "?" only', input: '/a?b?c', path: '/a', query: 'b?c' },
  { name: 'empty query', input: '/a?', path: '/a', query: '' },
  { name: 'root with a query', input: '/?q=1', path: '/', query: 'q=1' },
  { name: 'query escapes are not inspected', input: '/a?p=%2F..%2F%25%zz', path: '/a', query: 'p=%2F..%2F%25%zz' },
  { name: 'query may contain "/" and "//"', input: '/a?u=//x/../y', path: '/a', query: 'u=//x/../y' },
  { name: '";" is part of its segment', input: '/admin;x=1', path: '/admin;x=1' },
  { name: '";" inside a path', input: '/a;b/c;d=e', path: '/a;b/c;d=e' },
  { name: '"..." is not a dot segment', input: '/...', path: '/...' },
  { name: 'names starting with dots', input: '/.a/..b/.well-known', path: '/.a/..b/.well-known' },
  { name: 'sub-delims, ":" and "@" are ordinary', input: "/a:b@c!$&'()*+,=", path: "/a:b@c!$&'()*+,=" },
  { name: 'an escape decoded before ".." is resolved', input: '/%61/%2E%2E/b', path: '/b' },
]

const rejected: Rejected[] = [
  { name: 'empty target', input: '', reason: 'empty_target' },
  { name: 'A8: absolute-form', input: 'http://evil.example/admin/users', reason: 'absolute_form' },
  { name: 'absolute-form, upper-case scheme', input: 'HTTPS://evil.example/', reason: 'absolute_form' },
  { name: 'authority-form', input: 'api.example.com:443', reason: 'absolute_form' },
  { name: 'A8: no leading slash', input: 'admin/users', reason: 'not_origin_form' },
  { name: 'asterisk-form', input: '*', reason: 'not_origin_form' },
  { name: 'leading dot', input: './admin', reason: 'not_origin_form' },
  { name: 'A6 / CVE-2026-26205: leading "//"', input: '//admin/users', reason: 'double_slash' },
  { name: '"//" inside the path', input: '/a//b', reason: 'double_slash' },
  { name: '"//" at the end', input: '/a/b//', reason: 'double_slash' },
  { name: '"//" after a dot segment', input: '/a/.//b', reason: 'double_slash' },
  { name: 'A7: backslash traversal', input: '/public\\..\\admin/users', reason: 'backslash' },
  { name: '§3.2: backslash authority', input: '/\\evil.com/admin', reason: 'backslash' },
  { name: 'backslash in the query', input: '/a?b\\c', reason: 'backslash' },
  { name: 'A11: raw "#"', input: '/admin/users#/public/x', reason: 'fragment' },
  { name: 'raw "#" in the query', input: '/a?b#c', reason: 'fragment' },
  { name: '§3.2: raw TAB', input: '/ad\tmin', reason: 'control_character' },
  { name: 'raw space', input: '/a b', reason: 'control_character' },
  { name: 'raw NUL', input: '/a\0', reason: 'control_character' },
  { name: 'raw CR LF', input: '/a\r\nx-user: admin', reason: 'control_character' },
  { name: 'raw DEL', input: '/a\x7f', reason: 'control_character' },
  { name: 'raw space in the query', input: '/a?b c', reason: 'control_character' },
  { name: 'raw LF in the query', input: '/a?b\n', reason: 'control_character' },
  { name: 'raw non-ASCII', input: '/café', reason: 'non_ascii' },
  { name: 'replacement character (non-UTF-8 from protobuf)', input: '/a\uFFFD', reason: 'non_ascii' },
  { name: 'raw non-ASCII in the query', input: '/a?q=é', reason: 'non_ascii' },
  { name: 'A5: ..%2f', input: '/public/..%2fadmin/users', reason: 'encoded_slash' },
  { name: 'A5: %2F..%2F', input: '/public%2F..%2Fadmin/users', reason: 'encoded_slash' },
  { name: '§3.2: %2fadmin', input: '/public/%2fadmin', reason: 'encoded_slash' },
  { name: 'A5: ..%5C', input: '/public/..%5Cadmin/users', reason: 'encoded_backslash' },
  { name: 'lower-case %5c', input: '/a%5cb', reason: 'encoded_backslash' },
  { name: 'CVE-2019-9900: %00', input: '/admin%00.css', reason: 'encoded_nul' },
  { name: 'encoded LF', input: '/a%0a', reason: 'encoded_control_character' },
  { name: 'encoded TAB', input: '/ad%09min', reason: 'encoded_control_character' },
  { name: 'encoded DEL', input: '/a%7F', reason: 'encoded_control_character' },
  { name: 'CVE-2026-41059: %23', input: '/admin/users%23/../public/x', reason: 'encoded_fragment' },
  { name: 'encoded "?"', input: '/admin%3F/public', reason: 'encoded_query' },
  { name: 'encoded "?", lower case', input: '/admin%3f', reason: 'encoded_query' },
  { name: 'double encoding %25', input: '/a/%252e%252e/admin', reason: 'encoded_percent' },
  { name: 'lone "%"', input: '/a%', reason: 'malformed_escape' },
  { name: 'one hex digit', input: '/a%2', reason: 'malformed_escape' },
  { name: 'non-hex digits', input: '/a%zz', reason: 'malformed_escape' },
  { name: 'escape cut by "?"', input: '/a%2?x', reason: 'malformed_escape' },
  { name: '"%%"', input: '/a%%32%66', reason: 'malformed_escape' },
  { name: 'escape with non-ASCII digit', input: '/a%2é', reason: 'malformed_escape' },
  { name: '§3.2: decodeURIComponent throws on it', input: '/admin%E0%A4%A', reason: 'malformed_escape' },
  { name: 'truncated UTF-8 at the end', input: '/a%C3', reason: 'invalid_utf8' },
  { name: 'truncated UTF-8 before "/"', input: '/a%C3/b', reason: 'invalid_utf8' },
  { name: 'truncated UTF-8 before a raw char', input: '/a%C3b', reason: 'invalid_utf8' },
  { name: 'truncated UTF-8 before "?"', input: '/a%C3?b', reason: 'invalid_utf8' },
  { name: 'bad continuation byte', input: '/a%C3%28', reason: 'invalid_utf8' },
  { name: 'overlong "/" (2 bytes)', input: '/%C0%AF', reason: 'invalid_utf8' },
  { name: 'overlong "/" (3 bytes)', input: '/%E0%80%AF', reason: 'invalid_utf8' },
  { name: 'overlong 4 bytes', input: '/%F0%80%80%AF', reason: 'invalid_utf8' },
  { name: 'UTF-16 surrogate', input: '/%ED%A0%80', reason: 'invalid_utf8' },
  { name: 'above U+10FFFF', input: '/%F4%90%80%80', reason: 'invalid_utf8' },
  { name: 'lone continuation byte', input: '/%80', reason: 'invalid_utf8' },
  { name: 'byte 0xFF', input: '/%FF', reason: 'invalid_utf8' },
  { name: 'UTF-8 lead followed by an ASCII escape', input: '/%C3%41', reason: 'invalid_utf8' },
  { name: '".." at the root', input: '/..', reason: 'dot_segment_above_root' },
  { name: '".." above the root', input: '/../admin', reason: 'dot_segment_above_root' },
  { name: 'climbs back and above', input: '/a/../../b', reason: 'dot_segment_above_root' },
  { name: 'encoded ".." above the root', input: '/%2e%2e/admin', reason: 'dot_segment_above_root' },
  { name: 'Tomcat "..;"', input: '/public/..;/admin/users', reason: 'dot_segment_parameter' },
  { name: 'Tomcat "..;x=1"', input: '/public/..;x=1/admin', reason: 'dot_segment_parameter' },
  { name: 'Tomcat ".;"', input: '/a/.;/b', reason: 'dot_segment_parameter' },
  { name: 'encoded Tomcat "..;"', input: '/public/%2e%2E;/admin', reason: 'dot_segment_parameter' },
  { name: 'A17: 64 KiB path', input: '/' + 'a'.repeat(64 * 1024), reason: 'too_long' },
  { name: 'A17: 10 000 query parameters', input: '/search?' + 'a=1&'.repeat(10_000), reason: 'too_long' },
  { name: 'one over the cap', input: '/' + 'a'.repeat(MAX_TARGET_LENGTH), reason: 'too_long' },
]

describe('canonicalizeTarget', () => {
  it.each(accepted)('accepts: $name', ({ input, path, query = '' }) => {
    expect(canonicalizeTarget(input)).toEqual({ ok: true, path, query })
  })

  it.each(rejected)('rejects: $name', ({ input, reason }) => {
    expect(canonicalizeTarget(input)).toEqual({ ok: false, reason })
  })

  it('accepts a target of exactly MAX_TARGET_LENGTH', () => {
    const input = '/' + 'a'.repeat(MAX_TARGET_LENGTH - 1)
    expect(canonicalizeTarget(input)).toEqual({ ok: true, path: input, query: '' })
  })

  it('returns the input itself when nothing changes (no copy)', () => {
    const input = '/api/v1/users/42'
    const r = canonicalizeTarget(input)
    expect(r.ok && r.path).toBe(input)
  })

  it('rejects a 64 KiB target without scanning it', () => {
    const input = '/' + 'a/'.repeat(32 * 1024)
    const t = performance.now()
    for (let i = 0; i < 1000; i++) canonicalizeTarget(input)
    expect((performance.now() - t) / 1000).toBeLessThan(1) // ms per call, generous for CI
  })

  it('has a message for every rejection, none quoting input', () => {
    for (const { reason } of rejected) expect(TARGET_REJECTION_MESSAGES[reason]).toBeTypeOf('string')
    expect(Object.isFrozen(TARGET_REJECTION_MESSAGES)).toBe(true)
  })

  it('returns frozen, shared rejection objects', () => {
    const a = canonicalizeTarget('/a%2F')
    expect(a).toBe(canonicalizeTarget('/b%2f'))
    expect(Object.isFrozen(a)).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------
// Property test: seeded so that a failure is reproducible; the failing input is in the message.

const ALPHABET = [
  '/', '/', '/', '.', '..', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', 'C', '\\', '?', '#', ';', 'a',
  'b', 'A', '~', ' ', '\t', 'é', '%2e', '%2E', '%2f', '%2F', '%5c', '%25', '%23', '%3f', '%41',
  '%61', '%7e', '%20', '%3B', '%C3', '%A9', '%c3%a9', '%E2%82%AC', '%FF', '%00', '/./', '/../',
  '/.', '/..', '//', 'admin', 'public', ';x=1', '..;',
]

/** mulberry32: a tiny deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomTarget(rand: () => number): string {
  const tokens = Math.floor(rand() * 24)
  let s = rand() < 0.9 ? '/' : ''
  for (let i = 0; i < tokens; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)]!
  return s
}

/**
 * A lenient upstream: decodes every escape to bytes, then resolves dot segments (clamping at the
 * root, as most servers do) and ignores a trailing slash. For an accepted target it must land on
 * the same resource as the canonical path does.
 */
function upstreamView(path: string): string {
  const decoded = Buffer.from(
    path.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  ).toString('latin1')
  const out: string[] = []
  for (const seg of decoded.split('/').slice(1)) {
    if (seg === '.' || seg === '') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  return '/' + out.join('/')
}

describe('canonicalizeTarget properties', () => {
  it('never throws; accepted output is canonical, idempotent and agrees with a decoding upstream', () => {
    const rand = prng(0x5eed)
    let accepted = 0
    for (let i = 0; i < 10_000; i++) {
      const input = randomTarget(rand)
      let r: ReturnType<typeof canonicalizeTarget>
      try {
        r = canonicalizeTarget(input)
      } catch (err) {
        throw new Error(`threw on ${JSON.stringify(input)}: ${String(err)}`)
      }
      if (!r.ok) continue
      accepted++
      const { path, query } = r
      const context = `input ${JSON.stringify(input)} → ${JSON.stringify(path)}`
      expect(path.startsWith('/'), context).toBe(true)
      expect(path.includes('//'), context).toBe(false)
      expect(path.includes('\\'), context).toBe(false)
      expect(/[?#\s]/.test(path), context).toBe(false)
      expect(/%2f|%5c|%25|%00/i.test(path), context).toBe(false)
      expect(/%[0-9A-F]?[a-f]/.test(path), context).toBe(false) // kept escapes are upper-case
      expect(path === '/' || !path.endsWith('/'), context).toBe(true)
      for (const seg of path.split('/').slice(1)) {
        expect(seg === '.' || seg === '..', context).toBe(false)
      }
      expect(canonicalizeTarget(path), context).toEqual({ ok: true, path, query: '' })
      const withQuery = query === '' && !input.includes('?') ? path : `${path}?${query}`
      expect(canonicalizeTarget(withQuery), context).toEqual({ ok: true, path, query })
      const rawPath = input.includes('?') ? input.slice(0, input.indexOf('?')) : input
      expect(upstreamView(path), context).toBe(upstreamView(rawPath))
    }
    // Keep the property meaningful: a fair share of the random inputs must be accepted.
    expect(accepted).toBeGreaterThan(1000)
  })
})
