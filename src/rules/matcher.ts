/**
 * The rule matcher: finds the one rule whose `match` (methods + URL pattern) applies to a request,
 * or reports that none or several do. Oathkeeper's exactly-one semantics: the caller denies with
 * 404 for `none` and 500 for `many`; there is no priority between rules.
 *
 * Oathkeeper tests every rule, under a global mutex, on every request. Here a rule set is compiled
 * once into an immutable index and read without locks:
 *
 *     method (upper-case) → radix tree over each rule's literal prefixes → candidate rules
 *
 * `match` walks the tree along the URL and tests only the rules whose literal prefix (the text
 * before the first `<`, see `IndexedPattern.prefixes`) is a prefix of the URL, plus the rules
 * without one (patterns that start with `<`). Every candidate is tested, so `many` is found
 * whether the overlapping rules share a prefix, have prefixes that extend each other, or start
 * with `<`. Cost per request: O(URL length) for the walk plus one linear-time regexp test per
 * candidate, independent of the number of rules with unrelated prefixes.
 *
 * Hot path: no regexp compiled, no string built; a hit on a rule without capture groups returns
 * a result object prebuilt at load, `none` is a shared constant.
 * @module
 */
import type { PrefixNode } from './matcher-prefix-tree.js'
import { PrefixTree } from './matcher-prefix-tree.js'
import {
  compileIndexedPattern,
  NO_GROUPS,
  PatternError,
  type IndexedPattern,
  type MatchingStrategy,
} from './pattern.js'

/** One rule as the matcher sees it: its `match` block and what to return when it matches. */
export interface MatcherEntry<T> {
  /** HTTP methods, any case; a rule with no methods matches nothing (as in Oathkeeper). */
  readonly methods: readonly string[]
  /** The `match.url` pattern. */
  readonly url: string
  readonly value: T
}

/** `one`: exactly one rule matched, with its capture groups; `none`; `many`, in entry order. */
export type MatchResult<T> =
  | { readonly kind: 'one'; readonly value: T; readonly groups: readonly string[] }
  | { readonly kind: 'none' }
  | { readonly kind: 'many'; readonly values: readonly T[] }

/** An immutable, compiled rule set. */
export interface RuleMatcher<T> {
  /** Number of entries it was built from. */
  readonly size: number
  /**
   * @param method the request method; looked up as given, then upper-cased.
   * @param url `scheme://host[:port]/path`, no query; scheme and host lower-case, default port
   *   removed, path canonical (the caller's job).
   */
  match(method: string, url: string): MatchResult<T>
}

/**
 * Entry `index` is invalid: its `url` pattern (`field: 'url'`) or one of its `methods`
 * (`field: 'methods'`). `message` starts with `entry <index>: `; `cause` is the PatternError.
 */
export class MatcherBuildError extends PatternError {
  readonly index: number
  readonly field: 'url' | 'methods'

  constructor(index: number, field: 'url' | 'methods', cause: PatternError) {
    super(`entry ${index}: ${cause.message}`, { cause })
    this.name = 'MatcherBuildError'
    this.index = index
    this.field = field
  }
}

/**
 * Compiles every entry's pattern with `strategy` and indexes them. Throws
 * {@link MatcherBuildError} for the first invalid entry; nothing is half-built.
 */
export function buildMatcher<T>(
  entries: readonly MatcherEntry<T>[],
  strategy: MatchingStrategy,
): RuleMatcher<T> {
  const trees = new Map<string, PrefixTree<Candidate<T>>>()
  entries.forEach((entry, index) => {
    const candidate = compileCandidate(entry, index, strategy)
    for (const method of normalizeMethods(entry.methods, index)) {
      let tree = trees.get(method)
      if (tree === undefined) trees.set(method, (tree = new PrefixTree()))
      for (const prefix of candidate.pattern.prefixes) tree.insert(prefix, candidate)
    }
  })
  const roots = new Map<string, PrefixNode<Candidate<T>>>()
  for (const [method, tree] of trees) roots.set(method, tree.root)
  return new IndexedMatcher(entries.length, roots)
}

interface Candidate<T> {
  readonly index: number
  readonly value: T
  readonly pattern: IndexedPattern
  /** The result of a hit when the pattern has no capture groups, built once. */
  readonly hit: MatchResult<T> | undefined
}

const NONE: MatchResult<never> = Object.freeze({ kind: 'none' })

function compileCandidate<T>(entry: MatcherEntry<T>, index: number, strategy: MatchingStrategy): Candidate<T> {
  let pattern: IndexedPattern
  try {
    pattern = compileIndexedPattern(entry.url, strategy)
  } catch (err) {
    if (err instanceof PatternError) throw new MatcherBuildError(index, 'url', err)
    throw err
  }
  const hit =
    pattern.groupCount === 0
      ? Object.freeze({ kind: 'one' as const, value: entry.value, groups: NO_GROUPS })
      : undefined
  return { index, value: entry.value, pattern, hit }
}

/** Upper-cased, de-duplicated methods; HTTP methods compare case-insensitively (Oathkeeper). */
function normalizeMethods(methods: readonly string[], index: number): Set<string> {
  if (!Array.isArray(methods)) {
    throw new MatcherBuildError(index, 'methods', new PatternError('methods must be a list of HTTP method names'))
  }
  const normalized = new Set<string>()
  for (const method of methods) {
    if (typeof method !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) {
      throw new MatcherBuildError(index, 'methods', new PatternError(`invalid HTTP method ${JSON.stringify(method)}`))
    }
    normalized.add(method.toUpperCase())
  }
  return normalized
}

class IndexedMatcher<T> implements RuleMatcher<T> {
  constructor(
    readonly size: number,
    private readonly roots: ReadonlyMap<string, PrefixNode<Candidate<T>>>,
  ) {}

  match(method: string, url: string): MatchResult<T> {
    const root = this.roots.get(method) ?? this.roots.get(method.toUpperCase())
    if (root === undefined) return NONE

    let first: Candidate<T> | undefined
    let firstGroups: readonly string[] = NO_GROUPS
    let others: Candidate<T>[] | undefined
    let node = root
    let pos = 0
    for (;;) {
      // A rule sits at most once on any root-to-node path: its prefixes never extend each other.
      for (const candidate of node.values) {
        const groups = candidate.pattern.test(url)
        if (groups === undefined) continue
        if (first === undefined) {
          first = candidate
          firstGroups = groups
        } else {
          ;(others ??= []).push(candidate)
        }
      }
      const next = node.children?.get(url.charCodeAt(pos))
      if (next === undefined || !url.startsWith(next.label, pos)) break
      pos += next.label.length
      node = next
    }

    if (first === undefined) return NONE
    if (others !== undefined) return many(first, others)
    return first.hit ?? { kind: 'one', value: first.value, groups: firstGroups }
  }
}

function many<T>(first: Candidate<T>, others: readonly Candidate<T>[]): MatchResult<T> {
  const values = [first, ...others].sort((a, b) => a.index - b.index).map((c) => c.value)
  return { kind: 'many', values: Object.freeze(values) }
}
