import { describe, it, expect } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  compileIndexedPattern,
  compilePattern,
  MAX_PATTERN_GROUPS,
  MAX_PATTERN_LENGTH,
  MAX_UNBOUNDED_REPETITIONS,
  NO_GROUPS,
  PatternError,
  type MatchingStrategy,
} from '../../../src/rules/pattern.js'
import { REGEXP_ENGINE, type RegexpEngine } from '../../../src/rules/matcher-engine.js'

/** Every table runs on both engines: the one this process uses, and `l`-only (its safe fallback). */
const ENGINES: readonly RegexpEngine[] = ['backtracking-with-linear-fallback', 'linear']

interface MatchCase {
  readonly name: string
  readonly pattern: string
  readonly url: string
  /** Capture groups, or `undefined` for "does not match". */
  readonly groups: readonly string[] | undefined
}

const regexpCases: readonly MatchCase[] = [
  { name: 'matches a pattern without groups exactly', pattern: 'https://api.example.com/users', url: 'https://api.example.com/users', groups: [] },
  { name: 'is anchored at the start', pattern: 'https://api.example.com/users', url: 'xhttps://api.example.com/users', groups: undefined },
  { name: 'is anchored at the end', pattern: 'https://api.example.com/users', url: 'https://api.example.com/users/1', groups: undefined },
  { name: 'does not match a query that was left on the URL', pattern: 'https://h/a', url: 'https://h/a?x=1', groups: undefined },
  { name: 'lets <.*> match any rest of the path', pattern: 'https://h/<.*>', url: 'https://h/a/b.c/d', groups: ['a/b.c/d'] },
  { name: 'lets <.*> match the empty string', pattern: 'https://h/<.*>', url: 'https://h/', groups: [''] },
  { name: 'returns capture groups in order', pattern: 'https://h/<[a-z]+>/<[0-9]+>', url: 'https://h/users/42', groups: ['users', '42'] },
  { name: 'includes nested capture groups in opening-parenthesis order', pattern: 'https://h/<(\\w+)-(\\d+)>/<x>', url: 'https://h/ab-12/x', groups: ['ab-12', 'ab', '12', 'x'] },
  { name: 'returns an empty string for a group that did not take part', pattern: 'https://h/<a|(b)>', url: 'https://h/a', groups: ['a', ''] },
  { name: 'treats a dot in the host as a literal', pattern: 'https://api.example.com/<.*>', url: 'https://apixexample.com/x', groups: undefined },
  { name: 'treats a dot in the path as a literal', pattern: 'https://h/v1.0/<.*>', url: 'https://h/v1x0/a', groups: undefined },
  { name: 'still matches the dot itself', pattern: 'https://h/v1.0/<.*>', url: 'https://h/v1.0/a', groups: ['a'] },
  { name: 'treats + ? ( ) [ ] { } | ^ $ in literal text as literals', pattern: 'https://h/a+b?c(d)[e]{f}|g^h$i', url: 'https://h/a+b?c(d)[e]{f}|g^h$i', groups: [] },
  { name: 'does not let a literal + repeat', pattern: 'https://h/a+b', url: 'https://h/aab', groups: undefined },
  { name: 'lower-cases the literal scheme and host of the pattern', pattern: 'HTTPS://API.Example.COM/Users', url: 'https://api.example.com/Users', groups: [] },
  { name: 'keeps the path case-sensitive', pattern: 'HTTPS://API.Example.COM/Users', url: 'https://api.example.com/users', groups: undefined },
  { name: 'lower-cases a literal host that follows a scheme group', pattern: '<https?>://API.Example.com/X', url: 'https://api.example.com/X', groups: ['https'] },
  { name: 'lower-cases a literal host around a group', pattern: 'https://<[a-z]+>.EXAMPLE.com:8443/p', url: 'https://eu.example.com:8443/p', groups: ['eu'] },
  { name: 'reads nested delimiters as one group', pattern: 'https://h/<[<>a]+>', url: 'https://h/<>a', groups: ['<>a'] },
  { name: 'supports JS-style named groups inside a group', pattern: 'https://h/<(?<id>[0-9]+)>', url: 'https://h/42', groups: ['42', '42'] },
  { name: 'supports RE2 (?P<name>...) named groups', pattern: 'https://h/<(?P<id>[0-9]+)>', url: 'https://h/42', groups: ['42', '42'] },
  { name: 'supports non-capturing groups', pattern: 'https://h/<(?:ab)+>', url: 'https://h/abab', groups: ['abab'] },
  { name: 'supports counted repetitions above 16 copies', pattern: 'https://h/<[0-9a-f]{32}>', url: `https://h/${'a'.repeat(32)}`, groups: ['a'.repeat(32)] },
  { name: 'enforces the upper bound of a large counted repetition', pattern: 'https://h/<[0-9a-f]{32}>', url: `https://h/${'a'.repeat(33)}`, groups: undefined },
  { name: 'enforces the lower bound of a large counted repetition', pattern: 'https://h/<[0-9a-f]{20,40}>', url: `https://h/${'a'.repeat(19)}`, groups: undefined },
  { name: 'supports open-ended counted repetitions', pattern: 'https://h/<a{20,}>', url: `https://h/${'a'.repeat(50)}`, groups: ['a'.repeat(50)] },
  { name: 'supports lazy quantifiers', pattern: 'https://h/<a+?><a*>', url: 'https://h/aaa', groups: ['a', 'aa'] },
  { name: 'supports a lazy optional', pattern: 'https://h/<a??><a*>', url: 'https://h/aa', groups: ['', 'aa'] },
  { name: 'keeps lazy counted repetitions lazy', pattern: 'https://h/<a{2,30}?><a*>', url: `https://h/${'a'.repeat(10)}`, groups: ['aa', 'a'.repeat(8)] },
  { name: 'treats a { that starts no repetition as a literal (RE2)', pattern: 'https://h/<a{x}>', url: 'https://h/a{x}', groups: ['a{x}'] },
  { name: 'supports POSIX classes', pattern: 'https://h/<[[:digit:]]+>', url: 'https://h/123', groups: ['123'] },
  { name: 'supports RE2 hex and octal escapes', pattern: 'https://h/<\\x41\\x{42}\\103>', url: 'https://h/ABC', groups: ['ABC'] },
  { name: 'supports \\Q...\\E literals', pattern: 'https://h/<\\Q.*\\E>', url: 'https://h/.*', groups: ['.*'] },
  { name: 'does not match \\Q...\\E text as a regexp', pattern: 'https://h/<\\Q.*\\E>', url: 'https://h/ab', groups: undefined },
  { name: 'treats a leading ] in a class as a literal (RE2)', pattern: 'https://h/<[]a]+>', url: 'https://h/]a', groups: [']a'] },
  { name: 'gives \\s the RE2 meaning (no vertical tab)', pattern: 'https://h/<\\s>', url: 'https://h/\v', groups: undefined },
  { name: 'lets . match a carriage return as RE2 does', pattern: 'https://h/<.>', url: 'https://h/\r', groups: ['\r'] },
  { name: 'does not let . match a newline', pattern: 'https://h/<.>', url: 'https://h/\n', groups: undefined },
  { name: 'supports an empty group', pattern: 'https://h/<>x', url: 'https://h/x', groups: [''] },
  { name: 'matches with a pattern that starts with a group', pattern: '<.*>/healthz', url: 'https://any.example.com/healthz', groups: ['https://any.example.com'] },
]

const globCases: readonly MatchCase[] = [
  { name: 'lets * match inside one segment', pattern: 'https://h/<*>', url: 'https://h/abc', groups: [] },
  { name: 'does not let * cross a /', pattern: 'https://h/<*>', url: 'https://h/a/b', groups: undefined },
  { name: 'does not let * cross a . (so <*> does not match file.json)', pattern: 'https://h/<*>', url: 'https://h/file.json', groups: undefined },
  { name: 'matches file.json with <*>.json', pattern: 'https://h/<*>.json', url: 'https://h/file.json', groups: [] },
  { name: 'lets ** cross separators', pattern: 'https://h/<**>', url: 'https://h/a/b.c/d', groups: [] },
  { name: 'lets ** match the empty string', pattern: 'https://h/<**>', url: 'https://h/', groups: [] },
  { name: 'lets ? match one character', pattern: 'https://h/a<?>c', url: 'https://h/abc', groups: [] },
  { name: 'does not let ? match a /', pattern: 'https://h/a<?>c', url: 'https://h/a/c', groups: undefined },
  { name: 'does not let ? match a .', pattern: 'https://h/a<?>c', url: 'https://h/a.c', groups: undefined },
  { name: 'does not let ? match nothing', pattern: 'https://h/a<?>c', url: 'https://h/ac', groups: undefined },
  { name: 'matches a listed character of [abc]', pattern: 'https://h/<[abc]>', url: 'https://h/b', groups: [] },
  { name: 'does not match an unlisted character of [abc]', pattern: 'https://h/<[abc]>', url: 'https://h/d', groups: undefined },
  { name: 'matches a range [a-z]', pattern: 'https://h/<[a-z]>', url: 'https://h/q', groups: [] },
  { name: 'excludes the listed character with [!a]', pattern: 'https://h/<[!a]>', url: 'https://h/a', groups: undefined },
  { name: 'matches other characters with [!a]', pattern: 'https://h/<[!a]>', url: 'https://h/b', groups: [] },
  { name: 'lets a negated class match a separator (as gobwas/glob)', pattern: 'https://h/<[!a]>', url: 'https://h//', groups: [] },
  { name: 'excludes a range with [!a-c]', pattern: 'https://h/<[!a-c]>', url: 'https://h/b', groups: undefined },
  { name: 'treats a comma in a class as a literal', pattern: 'https://h/<[,;]>', url: 'https://h/,', groups: [] },
  { name: 'reads [ab-c] as the list a, b, -, c (gobwas/glob)', pattern: 'https://h/<[ab-c]>', url: 'https://h/-', groups: [] },
  { name: 'matches the first of {a,b}', pattern: 'https://h/<{a,b}>', url: 'https://h/a', groups: [] },
  { name: 'matches the second of {a,b}', pattern: 'https://h/<{a,b}>', url: 'https://h/b', groups: [] },
  { name: 'does not match outside {a,b}', pattern: 'https://h/<{a,b}>', url: 'https://h/c', groups: undefined },
  { name: 'supports wildcards inside alternatives', pattern: 'https://h/<{a,b*}>', url: 'https://h/bcd', groups: [] },
  { name: 'supports nested alternatives', pattern: 'https://h/<{a,b{c,d}}>', url: 'https://h/bd', groups: [] },
  { name: 'does not let separators match inside alternatives (Oathkeeper #963)', pattern: 'https://h/<{,????*}>', url: 'https://h/123/4', groups: undefined },
  { name: 'still matches alternatives without separators', pattern: 'https://h/<{,????*}>', url: 'https://h/12345', groups: [] },
  { name: 'treats | as a literal', pattern: 'https://h/<a|b>', url: 'https://h/a|b', groups: [] },
  { name: 'does not read | as alternation', pattern: 'https://h/<a|b>', url: 'https://h/a', groups: undefined },
  { name: 'treats , and } outside {} as literals', pattern: 'https://h/<a,b}>', url: 'https://h/a,b}', groups: [] },
  { name: 'treats an escaped * as a literal', pattern: 'https://h/<\\*>', url: 'https://h/*', groups: [] },
  { name: 'treats a dot in the host as a literal', pattern: 'https://api.example.com/<**>', url: 'https://apixexample.com/a', groups: undefined },
  { name: 'treats a dot in the path as a literal', pattern: 'https://h/v1.0/<**>', url: 'https://h/v1x0/a', groups: undefined },
  { name: 'treats regexp metacharacters in literal text as literals', pattern: 'https://h/a+(b)$', url: 'https://h/a+(b)$', groups: [] },
  { name: 'is anchored at both ends', pattern: 'https://h/<*>', url: 'xhttps://h/a', groups: undefined },
  { name: 'lower-cases the literal scheme and host', pattern: 'HTTPS://API.Example.com/<**>', url: 'https://api.example.com/A', groups: [] },
  { name: 'matches a glob in the host', pattern: 'https://<*>.example.com/<**>', url: 'https://eu.example.com/x', groups: [] },
  { name: 'does not let * in the host cross a dot', pattern: 'https://<*>.example.com/<**>', url: 'https://a.b.example.com/x', groups: undefined },
]

const strategies: readonly { strategy: MatchingStrategy; cases: readonly MatchCase[] }[] = [
  { strategy: 'regexp', cases: regexpCases },
  { strategy: 'glob', cases: globCases },
]

describe.each(strategies)('compilePattern with strategy $strategy', ({ strategy, cases }) => {
  describe.each(ENGINES)('on engine %s', (engine) => {
    it.each(cases)('$name', ({ pattern, url, groups }) => {
      const compiled = compileIndexedPattern(pattern, strategy, engine)
      expect(compiled.test(url)).toEqual(groups)
    })
  })
})

describe('compilePattern results', () => {
  it('returns the shared frozen empty array for a match without groups', () => {
    const compiled = compilePattern('https://h/<**>', 'glob')
    const groups = compiled.test('https://h/a')
    expect(groups).toBe(NO_GROUPS)
    expect(Object.isFrozen(groups)).toBe(true)
  })

  it('keeps the pattern as written in source', () => {
    expect(compilePattern('HTTPS://H/<.*>', 'regexp').source).toBe('HTTPS://H/<.*>')
  })

  it.each([
    { name: 'is the text before the first <', pattern: 'https://h/api/<.*>', prefix: 'https://h/api/' },
    { name: 'is lower-cased in the scheme and host', pattern: 'HTTPS://H.Example/API/<.*>', prefix: 'https://h.example/API/' },
    { name: 'is empty when the pattern starts with <', pattern: '<.*>/x', prefix: '' },
    { name: 'is the whole pattern without groups', pattern: 'https://h/x', prefix: 'https://h/x' },
  ])('literalPrefix $name', ({ pattern, prefix }) => {
    expect(compilePattern(pattern, 'regexp').literalPrefix).toBe(prefix)
  })
})

describe('index prefixes', () => {
  it.each([
    { name: 'are the literal prefix for an ordinary pattern', strategy: 'regexp', pattern: 'https://h/api/<.*>', prefixes: ['https://h/api/'] },
    { name: 'expand a leading alternation of literals', strategy: 'regexp', pattern: '<http|https>://h/<.*>', prefixes: ['http://h/', 'https://h/'] },
    { name: 'expand a leading optional character', strategy: 'regexp', pattern: '<https?>://h/<.*>', prefixes: ['http://h/', 'https://h/'] },
    { name: 'expand a wrapped alternation', strategy: 'regexp', pattern: 'https://<(?:api|www)>.h/<.*>', prefixes: ['https://api.h/', 'https://www.h/'] },
    { name: 'expand glob alternatives of literals', strategy: 'glob', pattern: '<{http,https}>://h/<**>', prefixes: ['http://h/', 'https://h/'] },
    { name: 'continue through a glob group that is a literal', strategy: 'glob', pattern: 'https://h/<v1>/<*>', prefixes: ['https://h/v1/'] },
    { name: 'stop at the first group that is not a literal set', strategy: 'regexp', pattern: 'https://h/<[a-z]+>/x/<.*>', prefixes: ['https://h/'] },
    { name: 'are the empty string when nothing is known', strategy: 'regexp', pattern: '<.*>/x', prefixes: [''] },
    { name: 'drop prefixes that extend another one', strategy: 'regexp', pattern: 'https://h/<a|ab>', prefixes: ['https://h/a'] },
  ] as const)('$name', ({ strategy, pattern, prefixes }) => {
    expect(compileIndexedPattern(pattern, strategy).prefixes).toEqual(prefixes)
  })
})

interface RejectCase {
  readonly name: string
  readonly pattern: string
  readonly strategy: MatchingStrategy
  readonly message: RegExp
}

const rejectCases: readonly RejectCase[] = [
  { name: 'an unclosed <', pattern: 'https://h/<.*', strategy: 'regexp', message: /^unbalanced pattern: "<" at offset 10 is never closed$/ },
  { name: 'a > without <', pattern: 'https://h/.*>', strategy: 'regexp', message: /^unbalanced pattern: ">" at offset 12 has no matching "<"$/ },
  { name: 'an unbalanced glob pattern', pattern: 'https://h/<**', strategy: 'glob', message: /^unbalanced pattern/ },
  { name: 'a lookahead, naming the problem and the group', pattern: 'https://h/<(?!admin).*>', strategy: 'regexp', message: /^group 1 <\(\?!admin\)\.\*>: lookahead assertions such as "\(\?!" are not supported: they need a backtracking regexp engine/ },
  { name: 'a positive lookahead', pattern: 'https://h/<a(?=b)>b', strategy: 'regexp', message: /lookahead/ },
  // `(?<` and `(?>` count as delimiters (as in Oathkeeper), so these need an extra `>` or `<`.
  { name: 'a lookbehind', pattern: 'https://h/<(?<=a)b>>', strategy: 'regexp', message: /lookbehind/ },
  { name: 'a numbered backreference', pattern: 'https://h/<(a)\\1>', strategy: 'regexp', message: /backreferences such as "\\1" are not supported/ },
  { name: 'a named backreference', pattern: 'https://h/<(?P<x>a)(?P=x)>', strategy: 'regexp', message: /backreferences/ },
  { name: 'a JS named backreference', pattern: 'https://h/<(?<x>a)\\k<x>>', strategy: 'regexp', message: /backreferences/ },
  { name: 'inline flags', pattern: 'https://h/<(?i)abc>', strategy: 'regexp', message: /inline flags such as "\(\?i\)" are not supported/ },
  { name: 'inline flags on a group', pattern: 'https://h/<(?i:abc)>', strategy: 'regexp', message: /inline flags/ },
  { name: 'Unicode classes', pattern: 'https://h/<\\pL+>', strategy: 'regexp', message: /Unicode character classes/ },
  { name: 'atomic groups', pattern: 'https://h/<<(?>a)>', strategy: 'regexp', message: /atomic groups/ },
  { name: 'a nested repetition', pattern: 'https://h/<a**>', strategy: 'regexp', message: /^group 1 <a\*\*>: invalid nested repetition operator "\*"/ },
  { name: 'a repetition of a counted repetition (RE2; JS would read aa+)', pattern: 'https://h/<a{2}+>', strategy: 'regexp', message: /invalid nested repetition operator "\+"/ },
  { name: 'a counted repetition of a repetition', pattern: 'https://h/<a*{2}>', strategy: 'regexp', message: /invalid nested repetition operator "\{2\}"/ },
  { name: 'a repetition with nothing to repeat', pattern: 'https://h/<*a>', strategy: 'regexp', message: /repetition operator "\*" has nothing to repeat/ },
  { name: 'a repetition of an assertion', pattern: 'https://h/<^+a>', strategy: 'regexp', message: /has nothing to repeat/ },
  { name: 'a duplicate group name', pattern: 'https://h/<(?P<a>x)(?P<a>y)>', strategy: 'regexp', message: /invalid regular expression: duplicate capture group name/ },
  { name: 'an unclosed parenthesis', pattern: 'https://h/<(abc>', strategy: 'regexp', message: /missing "\)"/ },
  { name: 'a stray closing parenthesis', pattern: 'https://h/<abc)>', strategy: 'regexp', message: /unbalanced parenthesis/ },
  { name: 'an unclosed class', pattern: 'https://h/<[abc>', strategy: 'regexp', message: /missing closing "\]"/ },
  { name: 'a repetition count above 1000', pattern: 'https://h/<a{1001}>', strategy: 'regexp', message: /above 1000/ },
  { name: 'a repetition with maximum below minimum', pattern: 'https://h/<a{5,2}>', strategy: 'regexp', message: /maximum below minimum/ },
  { name: 'a capturing group repeated more than 16 times', pattern: 'https://h/<(ab){20}>', strategy: 'regexp', message: /cannot be matched in linear time/ },
  { name: 'an unknown escape', pattern: 'https://h/<\\y>', strategy: 'regexp', message: /invalid escape "\\y"/ },
  { name: 'a trailing backslash', pattern: 'https://h/<a\\>', strategy: 'regexp', message: /trailing backslash/ },
  { name: 'a glob with an unclosed {', pattern: 'https://h/<{a,b>', strategy: 'glob', message: /missing "}"/ },
  { name: 'a glob with an unclosed [', pattern: 'https://h/<[ab>', strategy: 'glob', message: /missing closing "\]"/ },
  { name: 'a glob class mixing a range and a list', pattern: 'https://h/<[a-z0-9]>', strategy: 'glob', message: /one range like \[a-z\] or a list like \[abc\]/ },
  { name: 'a glob range out of order', pattern: 'https://h/<[z-a]>', strategy: 'glob', message: /invalid character range/ },
  { name: 'an empty glob class', pattern: 'https://h/<[]>', strategy: 'glob', message: /empty character class/ },
  { name: 'a glob with a trailing backslash', pattern: 'https://h/<a\\>', strategy: 'glob', message: /trailing backslash/ },
  { name: 'an empty pattern', pattern: '', strategy: 'regexp', message: /^pattern is empty$/ },
  { name: `a pattern longer than ${MAX_PATTERN_LENGTH} characters`, pattern: `https://h/${'a'.repeat(MAX_PATTERN_LENGTH)}`, strategy: 'regexp', message: /more than the limit of 4096/ },
  { name: `more than ${MAX_PATTERN_GROUPS} groups`, pattern: `https://h/${'<a>'.repeat(MAX_PATTERN_GROUPS + 1)}`, strategy: 'glob', message: /33 <\.\.\.> groups, more than the limit of 32/ },
  { name: 'more than 32 unbounded repetitions in one group', pattern: `https://h/<${'(?:a|/)*'.repeat(33)}>`, strategy: 'regexp', message: /33 unbounded repetitions \(\*, \+, \{n,\}\), more than the limit of 32/ },
  { name: 'more than 32 glob wildcards', pattern: `https://h/<${'*-'.repeat(20)}>/<${'**-'.repeat(13)}>`, strategy: 'glob', message: /33 unbounded repetitions/ },
  { name: 'a counted repetition that unrolls to a huge regexp', pattern: 'https://h/<(?:[a-z]{1000}){1000}>', strategy: 'regexp', message: /repetition "\{1000\}" expands to more than 16384 characters/ },
  { name: 'nested counted repetitions, without building them first', pattern: 'https://h/<(?:(?:a{1000}){1000}){1000}>', strategy: 'regexp', message: /expands to more than 16384 characters/ },
  { name: 'many groups that together unroll to a huge regexp', pattern: `https://h/${'<[a-z]{900}>'.repeat(20)}`, strategy: 'regexp', message: /compiles to a \d+-character regexp, more than the limit of 16384/ },
]

describe('compilePattern rejects at load', () => {
  it.each(rejectCases)('$name', ({ pattern, strategy, message }) => {
    const compile = (): unknown => compilePattern(pattern, strategy)
    expect(compile).toThrow(PatternError)
    expect(compile).toThrow(message)
  })

  it('rejects an unknown strategy', () => {
    expect(() => compilePattern('https://h/', 'regex' as MatchingStrategy)).toThrow(/unknown matching strategy "regex"/)
  })

  it(`accepts exactly ${MAX_PATTERN_GROUPS} groups, ${MAX_UNBOUNDED_REPETITIONS} unbounded repetitions and ${MAX_PATTERN_LENGTH} characters`, () => {
    expect(() => compilePattern(`https://h/${'<a>'.repeat(MAX_PATTERN_GROUPS)}`, 'regexp')).not.toThrow()
    expect(() => compilePattern(`https://h/<${'a+b*'.repeat(MAX_UNBOUNDED_REPETITIONS / 2)}>`, 'regexp')).not.toThrow()
    expect(() => compilePattern(`https://h/<${'a?b{2,5}'.repeat(100)}>`, 'regexp')).not.toThrow()
    expect(() => compilePattern(`https://h/${'a'.repeat(MAX_PATTERN_LENGTH - 10)}`, 'regexp')).not.toThrow()
  })
})

interface StallCase {
  readonly name: string
  readonly pattern: string
  readonly strategy: MatchingStrategy
  readonly url: string
}

/** Inputs that take seconds to hours on a plain backtracking engine (security.md §3.4). */
const stallCases: readonly StallCase[] = [
  { name: 'three <.*> against 3 000 slashes', pattern: 'https://h/<.*>/<.*>/<.*>/end', strategy: 'regexp', url: `https://h/${'/'.repeat(3000)}x` },
  { name: '<(\\w+\\s?)+> against 30 × a + !', pattern: 'https://h/<(\\w+\\s?)+>', strategy: 'regexp', url: `https://h/${'a'.repeat(30)}!` },
  { name: '<(a|aa)+> against 40 × a + b', pattern: 'https://h/<(a|aa)+>', strategy: 'regexp', url: `https://h/${'a'.repeat(40)}b` },
  { name: 'two <.*> against 8 000 slashes (quadratic)', pattern: 'https://h/<.*>/<.*>/end', strategy: 'regexp', url: `https://h/${'/'.repeat(8000)}x` },
  { name: 'an unrolled counted repetition followed by <.*>s', pattern: 'https://h/<[0-9a-f]{1,64}>/<.*>/<.*>/end', strategy: 'regexp', url: `https://h/abc/${'/'.repeat(8000)}x` },
  { name: 'three <.*> against a two-byte (non-Latin-1) URL', pattern: 'https://h/<.*>/<.*>/<.*>/end', strategy: 'regexp', url: `https://h/€${'/'.repeat(3000)}x` },
  { name: 'three glob <**> against 3 000 slashes', pattern: 'https://h/<**>/<**>/<**>/end', strategy: 'glob', url: `https://h/${'/'.repeat(3000)}x` },
  { name: 'three glob <*> against 8 000 dashes', pattern: 'https://h/<*>-<*>-<*>-end', strategy: 'glob', url: `https://h/${'-'.repeat(8000)}x` },
  { name: `${MAX_PATTERN_GROUPS} <.*> groups against 4 000 slashes`, pattern: `https://h/${'<.*>/'.repeat(MAX_PATTERN_GROUPS)}end`, strategy: 'regexp', url: `https://h/${'/'.repeat(4000)}x` },
]

/**
 * Runs the real engine module in a fresh Node process (via vite-node, which compiles TS) where
 * `v8.setFlagsFromString` ignores flags containing `ignore`, simulating a Node that lacks them.
 */
async function probeEngineInChild(ignore: string): Promise<{ engine: string; compile: string; evilMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-engine-'))
  const script = join(dir, 'probe.ts')
  writeFileSync(
    script,
    `
import { createRequire, syncBuiltinESMExports } from 'node:module'
const v8 = createRequire(import.meta.url)('v8')
const original = v8.setFlagsFromString
v8.setFlagsFromString = (flag) => { if (${JSON.stringify(ignore)} === '' || !flag.includes(${JSON.stringify(ignore)})) original(flag) }
syncBuiltinESMExports()
const { REGEXP_ENGINE } = await import(process.env.ENGINE_MODULE)
const { compilePattern } = await import(process.env.PATTERN_MODULE)
let compile = 'ok', evilMs = -1
try {
  const p = compilePattern('https://h/<.*>/<.*>/<.*>/end', 'regexp')
  const start = performance.now()
  p.test('https://h/' + '/'.repeat(3000) + 'x')
  evilMs = performance.now() - start
} catch (err) { compile = err.message }
console.log(JSON.stringify({ engine: REGEXP_ENGINE, compile, evilMs }))
`,
  )
  const source = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
  const run = promisify(execFile)(
    process.execPath,
    [source('../../../node_modules/vite-node/vite-node.mjs'), script],
    {
      env: {
        ...process.env,
        ENGINE_MODULE: source('../../../src/rules/matcher-engine.ts'),
        PATTERN_MODULE: source('../../../src/rules/pattern.ts'),
      },
      timeout: 20_000,
    },
  )
  const { stdout } = await run.finally(() => rmSync(dir, { recursive: true, force: true }))
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { engine: string; compile: string; evilMs: number }
}

describe('regexp engine safety', () => {
  it('runs on the backtracking engine with linear fallback in this process (V8 flags took effect)', () => {
    expect(REGEXP_ENGINE).toBe('backtracking-with-linear-fallback')
  })

  it('picks the right engine in a fresh process with and without the V8 flags', async () => {
    const [all, noFallback, noLinear] = await Promise.all([
      probeEngineInChild(''),
      probeEngineInChild('excessive-backtracks'),
      probeEngineInChild('experimental-regexp-engine'),
    ])
    expect(all).toMatchObject({ engine: 'backtracking-with-linear-fallback', compile: 'ok' })
    expect(all.evilMs).toBeLessThan(500)
    // Without the fallback the canary must notice and compile every rule with `l` instead.
    expect(noFallback).toMatchObject({ engine: 'linear', compile: 'ok' })
    expect(noFallback.evilMs).toBeLessThan(500)
    // Without any linear engine rule patterns must fail to load, never run unprotected.
    expect(noLinear).toMatchObject({ engine: 'unavailable', evilMs: -1 })
    expect(noLinear.compile).toMatch(/no linear-time regexp engine/)
  })

  describe.each(ENGINES)('on engine %s', (engine) => {
    // A safety bound, not a performance target: measured 0.1–15 ms; backtracking takes seconds+.
    it.each(stallCases)('does not stall on $name', ({ pattern, strategy, url }) => {
      const compiled = compileIndexedPattern(pattern, strategy, engine)
      for (let run = 0; run < 3; run++) {
        // Repeated so both V8 tiers (bytecode interpreter, then native code) are exercised.
        const start = performance.now()
        expect(compiled.test(url)).toBeUndefined()
        expect(performance.now() - start).toBeLessThan(500)
      }
    })
  })
})

describe('engine equivalence', () => {
  // The fallback swaps engines mid-request, so both must give identical results, captures included.
  const patterns: readonly { pattern: string; strategy: MatchingStrategy; alphabet: string }[] = [
    { pattern: 'https://h/<.*>/<.*>/<.*>/end', strategy: 'regexp', alphabet: 'a/e' },
    { pattern: 'https://h/<[a-c]+>/<(a|ab)(c|bcd)?>', strategy: 'regexp', alphabet: 'abcd/' },
    { pattern: 'https://h/<(\\w+\\s?)+>', strategy: 'regexp', alphabet: 'ab !' },
    { pattern: 'https://h/<a{2,20}?>b<.*>', strategy: 'regexp', alphabet: 'ab' },
    { pattern: 'https://h/<(?:a|b)*?>c<[^/]*>', strategy: 'regexp', alphabet: 'abc/' },
    { pattern: 'https://h/<*>/<**>.<?>', strategy: 'glob', alphabet: 'a/.' },
    { pattern: 'https://h/<{a,ab*}>c<[!b]>', strategy: 'glob', alphabet: 'abc' },
  ]

  /** Deterministic inputs (xorshift32), so a failure is reproducible. */
  function* inputs(alphabet: string, count: number): Generator<string> {
    let state = 2463534242
    const next = (): number => {
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      return state >>> 0
    }
    for (let n = 0; n < count; n++) {
      let s = 'https://h/'
      const length = next() % 12
      for (let i = 0; i < length; i++) s += alphabet.charAt(next() % alphabet.length)
      yield next() % 4 === 0 ? `${s}/end` : s
    }
  }

  it.each(patterns)('gives the same result on both engines for $strategy $pattern', ({ pattern, strategy, alphabet }) => {
    const fast = compileIndexedPattern(pattern, strategy, 'backtracking-with-linear-fallback')
    const linear = compileIndexedPattern(pattern, strategy, 'linear')
    let matches = 0
    for (const url of inputs(alphabet, 3000)) {
      const expected = linear.test(url)
      expect(fast.test(url), url).toEqual(expected)
      if (expected !== undefined) matches++
    }
    expect(matches).toBeGreaterThan(10)
  })
})
