import { describe, it, expect } from 'vitest'
import {
  buildMatcher,
  MatcherBuildError,
  type MatcherEntry,
  type MatchResult,
} from '../../../src/rules/matcher.js'
import { NO_GROUPS, PatternError, type MatchingStrategy } from '../../../src/rules/pattern.js'

/** The rule fixture of security.md §2, as matcher entries whose value is the rule id. */
const fixture: readonly MatcherEntry<string>[] = [
  { methods: ['GET', 'HEAD'], url: 'https://api.example.com/public/<.*>', value: 'R-public' },
  { methods: ['GET', 'POST', 'DELETE'], url: 'https://api.example.com/admin/<.*>', value: 'R-admin' },
  { methods: ['GET'], url: 'https://api.example.com/api/v1/users/<[0-9]+>', value: 'R-users' },
  { methods: ['GET', 'POST'], url: 'https://api.example.com/billing/<.*>', value: 'R-billing' },
  { methods: ['GET', 'POST'], url: 'https://app.example.com/<.*>', value: 'R-app' },
]

const globFixture: readonly MatcherEntry<string>[] = [
  { methods: ['GET', 'HEAD'], url: 'https://api.example.com/public/<**>', value: 'R-public' },
  { methods: ['GET'], url: 'https://api.example.com/static/<**>.css', value: 'R-static' },
  { methods: ['GET'], url: 'https://api.example.com/files/<*>', value: 'R-files' },
  { methods: ['GET'], url: 'https://api.example.com/v1.0/<**>', value: 'R-v1' },
]

interface Case {
  readonly name: string
  readonly strategy: MatchingStrategy
  readonly entries: readonly MatcherEntry<string>[]
  readonly method: string
  readonly url: string
  readonly expected: MatchResult<string>
}

const one = (value: string, groups: readonly string[] = []): MatchResult<string> => ({ kind: 'one', value, groups })
const none: MatchResult<string> = { kind: 'none' }
const many = (...values: string[]): MatchResult<string> => ({ kind: 'many', values })
const rule = (url: string, value: string, methods: readonly string[] = ['GET']): MatcherEntry<string> => ({ methods, url, value })

const cases: readonly Case[] = [
  { name: 'finds the only matching rule with its capture group', strategy: 'regexp', entries: fixture, method: 'GET', url: 'https://api.example.com/api/v1/users/42', expected: one('R-users', ['42']) },
  { name: 'finds a rule whose group matches a deep path', strategy: 'regexp', entries: fixture, method: 'DELETE', url: 'https://api.example.com/admin/users/7', expected: one('R-admin', ['users/7']) },
  { name: 'returns none when no rule matches the URL', strategy: 'regexp', entries: fixture, method: 'GET', url: 'https://api.example.com/unknown', expected: none },
  { name: 'returns none when the group does not match', strategy: 'regexp', entries: fixture, method: 'GET', url: 'https://api.example.com/api/v1/users/abc', expected: none },
  { name: 'returns none for a method the rule does not list', strategy: 'regexp', entries: fixture, method: 'POST', url: 'https://api.example.com/public/x', expected: none },
  { name: 'returns none for a method no rule lists', strategy: 'regexp', entries: fixture, method: 'PATCH', url: 'https://api.example.com/admin/x', expected: none },
  { name: 'compares request methods case-insensitively', strategy: 'regexp', entries: fixture, method: 'get', url: 'https://api.example.com/public/x', expected: one('R-public', ['x']) },
  { name: 'compares rule methods case-insensitively', strategy: 'regexp', entries: [rule('https://h/<.*>', 'a', ['get'])], method: 'GET', url: 'https://h/x', expected: one('a', ['x']) },
  { name: 'matches rules written with an upper-case host', strategy: 'regexp', entries: [rule('HTTPS://API.Example.com/<.*>', 'a')], method: 'GET', url: 'https://api.example.com/x', expected: one('a', ['x']) },
  { name: 'does not let a dot in a rule host match any character', strategy: 'regexp', entries: fixture, method: 'GET', url: 'https://apixexample.com/public/x', expected: none },
  { name: 'does not match a host that merely starts like the rule host', strategy: 'regexp', entries: fixture, method: 'GET', url: 'https://api.example.com.evil.com/public/x', expected: none },
  { name: 'returns many for two identical rules', strategy: 'regexp', entries: [rule('https://h/<.*>', 'a'), rule('https://h/<.*>', 'b')], method: 'GET', url: 'https://h/x', expected: many('a', 'b') },
  { name: 'returns many when one literal prefix extends the other', strategy: 'regexp', entries: [rule('https://h/<.*>', 'short'), rule('https://h/a/<.*>', 'long')], method: 'GET', url: 'https://h/a/b', expected: many('short', 'long') },
  { name: 'returns one when the shorter-prefix rule alone matches', strategy: 'regexp', entries: [rule('https://h/<.*>', 'short'), rule('https://h/a/<.*>', 'long')], method: 'GET', url: 'https://h/b', expected: one('short', ['b']) },
  { name: 'returns one when only the longer-prefix rule matches', strategy: 'regexp', entries: [rule('https://h/<[0-9]+>', 'short'), rule('https://h/a/<.*>', 'long')], method: 'GET', url: 'https://h/a/b', expected: one('long', ['b']) },
  { name: 'returns many with a rule that starts with a group', strategy: 'regexp', entries: [rule('https://h/x', 'literal'), rule('<.*>/x', 'wild')], method: 'GET', url: 'https://h/x', expected: many('literal', 'wild') },
  { name: 'returns many with a scheme group and a literal scheme', strategy: 'regexp', entries: [rule('<http|https>://h/<.*>', 'any'), rule('https://h/a', 'tls')], method: 'GET', url: 'https://h/a', expected: many('any', 'tls') },
  { name: 'returns one for a scheme group on the other scheme', strategy: 'regexp', entries: [rule('<http|https>://h/<.*>', 'any'), rule('https://h/a', 'tls')], method: 'GET', url: 'http://h/a', expected: one('any', ['http', 'a']) },
  { name: 'returns many with a host group and a literal host', strategy: 'regexp', entries: [rule('https://<[a-z]+>.example.com/<.*>', 'sub'), rule('https://api.example.com/v1', 'api')], method: 'GET', url: 'https://api.example.com/v1', expected: many('sub', 'api') },
  { name: 'lists many values in entry order', strategy: 'regexp', entries: [rule('https://h/a/b/<.*>', '0'), rule('https://h/<.*>', '1'), rule('<.*>', '2'), rule('https://h/a/<.*>', '3')], method: 'GET', url: 'https://h/a/b/c', expected: many('0', '1', '2', '3') },
  { name: 'tells apart rules that differ only by method', strategy: 'regexp', entries: [rule('https://h/<.*>', 'read', ['GET']), rule('https://h/<.*>', 'write', ['POST'])], method: 'POST', url: 'https://h/x', expected: one('write', ['x']) },
  { name: 'matches nothing for a rule without methods', strategy: 'regexp', entries: [rule('https://h/<.*>', 'a', [])], method: 'GET', url: 'https://h/x', expected: none },
  { name: 'counts a rule listing a method twice once', strategy: 'regexp', entries: [rule('https://h/<.*>', 'a', ['GET', 'get'])], method: 'GET', url: 'https://h/x', expected: one('a', ['x']) },
  { name: 'counts a rule whose expanded prefixes overlap once', strategy: 'regexp', entries: [rule('https://h/<a|ab|abc>', 'a')], method: 'GET', url: 'https://h/abc', expected: one('a', ['abc']) },
  { name: 'matches a URL shorter than every prefix as none', strategy: 'regexp', entries: fixture, method: 'GET', url: 'https://api', expected: none },
  { name: 'matches the empty URL as none', strategy: 'regexp', entries: fixture, method: 'GET', url: '', expected: none },
  { name: 'finds a glob rule', strategy: 'glob', entries: globFixture, method: 'GET', url: 'https://api.example.com/static/a/b.css', expected: one('R-static') },
  { name: 'does not let a glob * cross a dot', strategy: 'glob', entries: globFixture, method: 'GET', url: 'https://api.example.com/files/a.json', expected: none },
  { name: 'lets a glob * match one segment', strategy: 'glob', entries: globFixture, method: 'GET', url: 'https://api.example.com/files/a', expected: one('R-files') },
  { name: 'does not let a dot in a glob path match any character', strategy: 'glob', entries: globFixture, method: 'GET', url: 'https://api.example.com/v1x0/a', expected: none },
  { name: 'returns many for overlapping glob rules', strategy: 'glob', entries: [rule('https://h/<**>', 'all'), rule('https://h/<*>.css', 'css')], method: 'GET', url: 'https://h/a.css', expected: many('all', 'css') },
  { name: 'returns many for glob rules with alternatives in the scheme', strategy: 'glob', entries: [rule('<{http,https}>://h/<**>', 'any'), rule('https://h/<**>', 'tls')], method: 'GET', url: 'https://h/a', expected: many('any', 'tls') },
]

describe('buildMatcher().match', () => {
  it.each(cases)('$name', ({ strategy, entries, method, url, expected }) => {
    expect(buildMatcher(entries, strategy).match(method, url)).toEqual(expected)
  })

  it('reports the number of entries as size', () => {
    expect(buildMatcher(fixture, 'regexp').size).toBe(5)
    expect(buildMatcher([], 'glob').size).toBe(0)
  })

  it('returns none from an empty rule set', () => {
    expect(buildMatcher([], 'regexp').match('GET', 'https://h/')).toEqual(none)
  })

  it('returns the shared frozen empty groups array for a rule without groups', () => {
    const result = buildMatcher(globFixture, 'glob').match('GET', 'https://api.example.com/public/a')
    expect(result.kind === 'one' && result.groups).toBe(NO_GROUPS)
    expect(Object.isFrozen(NO_GROUPS)).toBe(true)
  })

  it('returns the same prebuilt result on every hit of a rule without groups', () => {
    const matcher = buildMatcher(globFixture, 'glob')
    const first = matcher.match('GET', 'https://api.example.com/public/a')
    expect(matcher.match('GET', 'https://api.example.com/public/b')).toBe(first)
    expect(Object.isFrozen(first)).toBe(true)
  })
})

describe('buildMatcher errors', () => {
  it('names the entry index of an invalid pattern', () => {
    const build = (): unknown => buildMatcher([...fixture, rule('https://h/<.*', 'bad')], 'regexp')
    expect(build).toThrow(MatcherBuildError)
    expect(build).toThrow(PatternError)
    expect(build).toThrow(/^entry 5: unbalanced pattern: "<" at offset 10 is never closed$/)
    try {
      build()
    } catch (err) {
      expect(err).toMatchObject({ index: 5, field: 'url', name: 'MatcherBuildError' })
      expect((err as Error).cause).toBeInstanceOf(PatternError)
    }
  })

  it('rejects a lookahead at load, naming the problem', () => {
    expect(() => buildMatcher([rule('https://h/<(?!admin).*>', 'a')], 'regexp')).toThrow(
      /^entry 0: group 1 <\(\?!admin\)\.\*>: lookahead assertions .* are not supported/,
    )
  })

  it.each([
    { name: 'an empty method', methods: [''] },
    { name: 'a method with a space', methods: ['GE T'] },
    { name: 'a method that is not a string', methods: [7 as unknown as string] },
  ])('rejects $name', ({ methods }) => {
    const build = (): unknown => buildMatcher([rule('https://h/', 'a', methods)], 'regexp')
    expect(build).toThrow(/^entry 0: invalid HTTP method/)
    expect(build).toThrow(expect.objectContaining({ field: 'methods', index: 0 }))
  })
})

describe('a matcher with 10 000 rules', () => {
  const count = 10_000
  const regexpEntries: MatcherEntry<number>[] = []
  const globEntries: MatcherEntry<number>[] = []
  for (let i = 0; i < count; i++) {
    // svc1 and svc10 share a prefix up to the digit; the index must still keep them apart.
    regexpEntries.push({ methods: ['GET', 'POST'], url: `https://svc${i}.example.com/api/<[a-z]+>/<[0-9]+>`, value: i })
    globEntries.push({ methods: ['GET'], url: `https://api.example.com/svc${i}/<**>`, value: i })
  }
  const regexpMatcher = buildMatcher(regexpEntries, 'regexp')
  const globMatcher = buildMatcher(globEntries, 'glob')

  it('finds every regexp rule by its own URL, with groups', () => {
    const misses: number[] = []
    for (let i = 0; i < count; i++) {
      const result = regexpMatcher.match('GET', `https://svc${i}.example.com/api/users/${i}`)
      if (result.kind !== 'one' || result.value !== i || result.groups[1] !== String(i)) misses.push(i)
    }
    expect(misses).toEqual([])
  })

  it('finds every glob rule by its own URL', () => {
    const misses: number[] = []
    for (let i = 0; i < count; i++) {
      const result = globMatcher.match('GET', `https://api.example.com/svc${i}/a/b.c`)
      if (result.kind !== 'one' || result.value !== i) misses.push(i)
    }
    expect(misses).toEqual([])
  })

  it.each([
    { name: 'an unknown host', url: 'https://svc10000.example.com/api/users/1' },
    { name: 'a known host with a path no rule has', url: 'https://svc5.example.com/other/users/1' },
    { name: 'a known host with a failing group', url: 'https://svc5.example.com/api/users/x' },
    { name: 'a prefix of a known URL', url: 'https://svc5.example.com/api/' },
  ])('returns none for $name', ({ url }) => {
    expect(regexpMatcher.match('GET', url)).toEqual(none)
  })

  it('returns none for a method no rule lists', () => {
    expect(regexpMatcher.match('DELETE', 'https://svc5.example.com/api/users/1')).toEqual(none)
  })

  it('still finds many when a catch-all rule overlaps one of them', () => {
    const matcher = buildMatcher([...regexpEntries, { methods: ['GET'], url: '<.*>/api/users/<[0-9]+>', value: -1 }], 'regexp')
    expect(matcher.match('GET', 'https://svc42.example.com/api/users/1')).toEqual({ kind: 'many', values: [42, -1] })
    expect(matcher.match('GET', 'https://other.example.com/api/users/1')).toEqual({
      kind: 'one',
      value: -1,
      groups: ['https://other.example.com', '1'],
    })
  })
})

describe('matching never stalls', () => {
  // A safety bound, not a performance target (security.md §3.4: 11 s on a backtracking engine).
  it.each([
    { name: 'three <.*> against 3 000 slashes', url: 'https://h/<.*>/<.*>/<.*>/end', input: `https://h/${'/'.repeat(3000)}x` },
    { name: '<(\\w+\\s?)+> against 30 × a + !', url: 'https://h/<(\\w+\\s?)+>', input: `https://h/${'a'.repeat(30)}!` },
  ])('on $name', ({ url, input }) => {
    const matcher = buildMatcher([rule(url, 'evil'), rule('https://h/<.*>', 'other', ['POST'])], 'regexp')
    const start = performance.now()
    expect(matcher.match('GET', input)).toEqual(none)
    expect(performance.now() - start).toBeLessThan(500)
  })
})
