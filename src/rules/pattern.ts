/**
 * Compiles a rule's `match.url` pattern (Oathkeeper syntax) into a matcher for request URLs of
 * the form `scheme://host[:port]/path` (no query), once, at rule load.
 *
 * Syntax (Oathkeeper `rule/engine_regexp.go`, `rule/engine_glob.go`, ory/ladon `CompileRegex`):
 * text outside `<...>` is literal; the text inside each `<...>` is a regexp (strategy `regexp`,
 * Go RE2 syntax, see `matcher-regexp-syntax.ts`) or a glob (strategy `glob`, gobwas/glob syntax,
 * see `matcher-glob-syntax.ts`). Delimiters nest (`<(?<id>[0-9]+)>` is one group); unbalanced
 * `<`/`>` is an error. The whole pattern is anchored at both ends. With `regexp`, every `<...>`
 * is a capture group and {@link CompiledPattern.test} returns all capture groups in order of
 * their opening parenthesis, nested ones included (Oathkeeper's `RegexpCaptureGroups`); with
 * `glob` it returns no groups.
 *
 * Differences from Oathkeeper, all on purpose:
 * - Patterns are compiled and validated here, at load; a bad pattern throws {@link PatternError}
 *   (Oathkeeper compiles lazily per request, and one bad rule breaks every request).
 * - Every regexp runs in time linear in the URL (`matcher-engine.ts`); constructs that need
 *   backtracking (lookaround, backreferences) are rejected at load. Oathkeeper's regexp2 has them.
 * - Literal scheme and host text is lower-cased, because request hosts are (see
 *   {@link lowercaseAuthority}); Oathkeeper compares case-sensitively, so `https://API.example.com/`
 *   never matched there and does here.
 * - Size caps: {@link MAX_PATTERN_LENGTH} characters, {@link MAX_PATTERN_GROUPS} groups,
 *   {@link MAX_UNBOUNDED_REPETITIONS} unbounded repetitions, {@link MAX_COMPILED_LENGTH}
 *   characters of generated regexp; together they bound the worst-case time of one match.
 * @module
 */
import { compileRuleRegExp, isNotLinearError, REGEXP_ENGINE, type RegexpEngine } from './matcher-engine.js'
import { PatternError } from './matcher-errors.js'
import { globLiteralAlternatives, translateGlobGroup } from './matcher-glob-syntax.js'
import {
  MAX_TRANSLATED_LENGTH,
  quoteRegExp,
  regexpLiteralAlternatives,
  translateRegexpGroup,
} from './matcher-regexp-syntax.js'

export { PatternError }

/** How the inside of `<...>` is read: a regexp (Oathkeeper's default) or a glob. */
export type MatchingStrategy = 'regexp' | 'glob'

/** A compiled `match.url`. Immutable; safe to share. */
export interface CompiledPattern {
  /** The pattern as written in the rule. */
  readonly source: string
  /** Literal text before the first `<` (scheme and host lower-cased); may be `''`. */
  readonly literalPrefix: string
  /**
   * Matches a whole request URL. Returns the capture groups (`''` for a group that did not take
   * part) or, without groups, a shared frozen empty array; `undefined` when it does not match.
   */
  test(s: string): readonly string[] | undefined
}

/** Longest accepted `match.url`, in UTF-16 code units. */
export const MAX_PATTERN_LENGTH = 4096
/** Most `<...>` groups (top level) in one pattern. */
export const MAX_PATTERN_GROUPS = 32
/**
 * Longest generated JS regexp source, after counted repetitions are unrolled. Linear-engine time
 * grows with program size × URL length; this keeps the worst case in milliseconds.
 */
export const MAX_COMPILED_LENGTH = MAX_TRANSLATED_LENGTH
/**
 * Most unbounded repetitions (`*`, `+`, `{n,}`; glob `*`, `**`) in one pattern. On the linear
 * engine each one can keep a thread alive across the whole URL: 32 × `<.*>` against an 8 KB URL
 * of slashes takes ~90 ms (Node 20, AMD EPYC); 300 × `(?:a|/|b)*` in one group took 330 ms.
 */
export const MAX_UNBOUNDED_REPETITIONS = 32
/** Most index prefixes one pattern may expand to (see {@link IndexedPattern.prefixes}). */
const MAX_INDEX_PREFIXES = 16

/** The capture groups of a match without groups; shared, frozen. */
export const NO_GROUPS: readonly string[] = Object.freeze([])

/** Compiles `url` with `strategy`; throws {@link PatternError} describing what is wrong. */
export function compilePattern(url: string, strategy: MatchingStrategy): CompiledPattern {
  return compileIndexedPattern(url, strategy)
}

/**
 * What the rule matcher needs on top of {@link CompiledPattern}. Internal to `src/rules/`.
 */
export interface IndexedPattern extends CompiledPattern {
  /**
   * Literal strings such that every URL the pattern matches starts with at least one of them,
   * none a prefix of another: the literal prefix, widened through leading groups that match a
   * small finite set of literals (`<http|https>://api.example.com/` yields
   * `http://api.example.com/` and `https://api.example.com/`). `['']` when nothing is known.
   */
  readonly prefixes: readonly string[]
  /** Number of capture groups {@link CompiledPattern.test} returns. */
  readonly groupCount: number
}

/** {@link compilePattern} plus index data; `engine` is overridable for tests only. */
export function compileIndexedPattern(
  url: string,
  strategy: MatchingStrategy,
  engine: RegexpEngine = REGEXP_ENGINE,
): IndexedPattern {
  if (strategy !== 'regexp' && strategy !== 'glob') {
    throw new PatternError(`unknown matching strategy "${String(strategy)}": use "regexp" or "glob"`)
  }
  if (typeof url !== 'string' || url === '') throw new PatternError('pattern is empty')
  if (url.length > MAX_PATTERN_LENGTH) {
    throw new PatternError(`pattern is ${url.length} characters long, more than the limit of ${MAX_PATTERN_LENGTH}`)
  }
  const segments = splitPattern(url)
  const groups = segments.filter((s) => s.kind === 'group').length
  if (groups > MAX_PATTERN_GROUPS) {
    throw new PatternError(`pattern has ${groups} <...> groups, more than the limit of ${MAX_PATTERN_GROUPS}`)
  }
  lowercaseAuthority(segments)

  const { source, groupCount, unbounded } = translate(segments, strategy)
  if (unbounded > MAX_UNBOUNDED_REPETITIONS) {
    throw new PatternError(
      `pattern has ${unbounded} unbounded repetitions (*, +, {n,}), more than the limit of ${MAX_UNBOUNDED_REPETITIONS}`,
    )
  }
  if (source.length > MAX_COMPILED_LENGTH) {
    throw new PatternError(
      `pattern compiles to a ${source.length}-character regexp, more than the limit of ${MAX_COMPILED_LENGTH}; use smaller repetition counts`,
    )
  }
  const regex = compileChecked(source, segments, strategy, engine)
  const literalPrefix = segments[0]?.kind === 'literal' ? segments[0].text : ''
  const prefixes = indexPrefixes(segments, strategy)
  return groupCount === 0
    ? new GrouplessPattern(url, literalPrefix, prefixes, regex)
    : new CapturingPattern(url, literalPrefix, prefixes, regex, groupCount)
}

/** Literal text, or the raw text inside one top-level `<...>` with its 1-based number. */
type Segment =
  | { readonly kind: 'literal'; text: string }
  | { readonly kind: 'group'; readonly text: string; readonly number: number }

/**
 * Splits at top-level `<...>` exactly like ladon's `delimiterIndices`: `<` and `>` nest and must
 * balance; there is no escape for them.
 */
function splitPattern(url: string): Segment[] {
  const segments: Segment[] = []
  let depth = 0
  let start = 0
  let groupStart = 0
  let groups = 0
  for (let i = 0; i < url.length; i++) {
    const c = url.charAt(i)
    if (c === '<') {
      if (depth++ === 0) {
        if (i > start) segments.push({ kind: 'literal', text: url.slice(start, i) })
        groupStart = i
      }
    } else if (c === '>') {
      if (depth === 0) {
        throw new PatternError(`unbalanced pattern: ">" at offset ${i} has no matching "<"`)
      }
      if (--depth === 0) {
        segments.push({ kind: 'group', text: url.slice(groupStart + 1, i), number: ++groups })
        start = i + 1
      }
    }
  }
  if (depth !== 0) throw new PatternError(`unbalanced pattern: "<" at offset ${groupStart} is never closed`)
  if (start < url.length) segments.push({ kind: 'literal', text: url.slice(start) })
  return segments
}

/**
 * Lower-cases the literal text of the scheme and authority (`HTTPS://API.Example.com:8080/Path`
 * → `https://api.example.com:8080/Path`), because the caller lower-cases the request's scheme and
 * host before matching. The authority ends at the first literal `/` after `://`; a literal `/`
 * before any `://` ends it too (the scheme and host are then inside a group). Text inside groups
 * is never changed: it is regexp or glob syntax, where case can matter (`\D` vs `\d`).
 */
function lowercaseAuthority(segments: Segment[]): void {
  let phase: 'scheme' | 'authority' = 'scheme'
  for (const segment of segments) {
    if (segment.kind !== 'literal') continue
    const text = segment.text
    let end = -1
    for (let i = 0; i < text.length && end === -1; i++) {
      if (phase === 'scheme' && text.startsWith('://', i)) {
        phase = 'authority'
        i += 2
      } else if (text.charAt(i) === '/') {
        end = i
      }
    }
    if (end === -1) {
      segment.text = text.toLowerCase()
    } else {
      segment.text = text.slice(0, end).toLowerCase() + text.slice(end)
      return
    }
  }
}

/** The anchored JS source of the whole pattern, its capture count and unbounded repetitions. */
function translate(
  segments: readonly Segment[],
  strategy: MatchingStrategy,
): { source: string; groupCount: number; unbounded: number } {
  let source = '^'
  let groupCount = 0
  let unbounded = 0
  for (const segment of segments) {
    if (segment.kind === 'literal') {
      source += quoteRegExp(segment.text)
    } else if (strategy === 'glob') {
      const group = inGroup(segment, () => translateGlobGroup(segment.text))
      source += `(?:${group.source})`
      unbounded += group.unbounded
    } else {
      const group = inGroup(segment, () => translateRegexpGroup(segment.text))
      source += `(${group.source})`
      groupCount += 1 + group.captures
      unbounded += group.unbounded
    }
  }
  return { source: `${source}$`, groupCount, unbounded }
}

/** Runs a group translation, prefixing its error with the group it is about. */
function inGroup<R>(segment: Segment & { kind: 'group' }, run: () => R): R {
  try {
    return run()
  } catch (err) {
    if (err instanceof PatternError) throw new PatternError(`${describeGroup(segment)}: ${err.message}`)
    throw err
  }
}

function describeGroup(segment: Segment & { kind: 'group' }): string {
  const text = segment.text.length > 60 ? `${segment.text.slice(0, 57)}...` : segment.text
  return `group ${segment.number} <${text}>`
}

/** Compiles the full source; on failure finds the group to blame for a useful message. */
function compileChecked(
  source: string,
  segments: readonly Segment[],
  strategy: MatchingStrategy,
  engine: RegexpEngine,
): RegExp {
  try {
    return compileRuleRegExp(source, engine)
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err
    for (const segment of segments) {
      if (segment.kind !== 'group') continue
      const translated = strategy === 'glob' ? translateGlobGroup(segment.text) : translateRegexpGroup(segment.text)
      try {
        compileRuleRegExp(`^(?:${translated.source})$`, engine)
      } catch (groupErr) {
        if (groupErr instanceof SyntaxError) {
          const message = `${describeGroup(segment)}: ${explainSyntaxError(groupErr)}`
          throw new PatternError(message, { cause: groupErr })
        }
        throw groupErr
      }
    }
    throw new PatternError(explainSyntaxError(err), { cause: err })
  }
}

/** V8's `Invalid regular expression: /…/l: Reason` without the (possibly huge) source. */
function explainSyntaxError(err: SyntaxError): string {
  if (isNotLinearError(err)) {
    return (
      'cannot be matched in linear time; repetitions of a capturing group, and nested counted ' +
      'repetitions, are limited to 16 copies (use (?:...) or a smaller count)'
    )
  }
  const reason = err.message.slice(err.message.lastIndexOf(': ') + 2)
  return `invalid regular expression: ${reason.toLowerCase()}`
}

/**
 * The literal strings every match starts with (see {@link IndexedPattern.prefixes}): literal
 * segments are appended; a group that matches a small finite set of literals multiplies the set;
 * the first other group ends it. Prefixes that extend another one are dropped, since the shorter
 * one already selects the rule for every URL the longer one would.
 */
function indexPrefixes(segments: readonly Segment[], strategy: MatchingStrategy): readonly string[] {
  let prefixes = ['']
  for (const segment of segments) {
    if (segment.kind === 'literal') {
      prefixes = prefixes.map((p) => p + segment.text)
      continue
    }
    const alternatives =
      strategy === 'glob'
        ? globLiteralAlternatives(segment.text, MAX_INDEX_PREFIXES)
        : regexpLiteralAlternatives(segment.text, MAX_INDEX_PREFIXES)
    if (alternatives === undefined || prefixes.length * alternatives.length > MAX_INDEX_PREFIXES) break
    prefixes = prefixes.flatMap((p) => alternatives.map((a) => p + a))
  }
  const unique = [...new Set(prefixes)].sort()
  // After sorting, a string's extensions follow it directly; keep only those no kept one prefixes.
  const minimal: string[] = []
  for (const p of unique) {
    const last = minimal[minimal.length - 1]
    if (last === undefined || !p.startsWith(last)) minimal.push(p)
  }
  return Object.freeze(minimal)
}

/** A pattern without capture groups: `test` allocates nothing. */
class GrouplessPattern implements IndexedPattern {
  readonly groupCount = 0

  constructor(
    readonly source: string,
    readonly literalPrefix: string,
    readonly prefixes: readonly string[],
    private readonly regex: RegExp,
  ) {}

  test(s: string): readonly string[] | undefined {
    return this.regex.test(s) ? NO_GROUPS : undefined
  }
}

/** A pattern with capture groups: `test` allocates the groups array on a match only. */
class CapturingPattern implements IndexedPattern {
  constructor(
    readonly source: string,
    readonly literalPrefix: string,
    readonly prefixes: readonly string[],
    private readonly regex: RegExp,
    readonly groupCount: number,
  ) {}

  test(s: string): readonly string[] | undefined {
    const m = this.regex.exec(s)
    if (m === null) return undefined
    const groups = new Array<string>(this.groupCount)
    for (let i = 0; i < this.groupCount; i++) groups[i] = m[i + 1] ?? ''
    return groups
  }
}
