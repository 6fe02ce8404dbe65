/**
 * Compiles rule files into an immutable RuleSet: validates every rule, merges each handler's
 * global config (`<stage>.<id>.config`) with the rule's `config`, validates the result with the
 * handler's schema, builds the handler once, and builds the URL matcher. Nothing here runs per
 * request. All problems are collected and reported together, each naming file, rule and field.
 * @module
 */
import type { LoadedConfig } from '../config/load.js'
import { formatIssues, joinPath } from '../config/load.js'
import type { HandlerSwitch } from '../config/schema.js'
import type { Registry } from '../pipeline/registry.js'
import { HANDLER_IDS } from '../pipeline/types.js'
import type {
  Authenticator,
  Authorizer,
  ErrorHandler,
  HandlerDeps,
  Mutator,
  Stage,
  StageImpl,
} from '../pipeline/types.js'
import { buildMatcher, MatcherBuildError, type MatcherEntry, type RuleMatcher } from './matcher.js'
import { isHeaderSetter } from '../pipeline/mutate/header.js'
import type { RemoteSource } from './fetch-remote.js'
import { readRepositories } from './load.js'
import { RuleSchema, type HandlerRef, type RawRule } from './schema.js'

export interface CompiledRule {
  readonly id: string
  readonly authenticators: readonly Authenticator[]
  readonly authorizer: Authorizer
  readonly mutators: readonly Mutator[]
  /** The rule's own error handlers; empty means `errors.fallback`. */
  readonly errors: readonly ErrorHandler[]
  /** Managed identity headers this rule does not set: always removed from the upstream request. */
  readonly removeHeaders: readonly string[]
}

export interface RuleSet {
  readonly rules: readonly CompiledRule[]
  readonly matcher: RuleMatcher<CompiledRule>
  /** Every header name some rule's `header` mutator sets (lower-case). */
  readonly managedHeaders: ReadonlySet<string>
  /** `errors.fallback`, compiled from the global error handler config. */
  readonly fallback: readonly ErrorHandler[]
  /** Files the rules came from (for reload watching). */
  readonly files: readonly string[]
}

export class RuleSetError extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid access rules:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'RuleSetError'
    this.problems = problems
  }
}

const STAGE_CONFIG_KEY = { authn: 'authenticators', authz: 'authorizers', mutate: 'mutators', error: 'errors.handlers' } as const
const STAGE_NAME = { authn: 'authenticator', authz: 'authorizer', mutate: 'mutator', error: 'error handler' } as const

/**
 * Reads the configured repositories and compiles them. Throws RuleSetError listing every problem.
 * `opts.remote`: the fetched bodies of http(s) repositories (src/rules/fetch-remote.ts).
 */
export function loadRuleSet(
  loaded: LoadedConfig,
  registry: Registry,
  deps: HandlerDeps,
  opts: { readonly remote?: RemoteSource } = {},
): RuleSet {
  const read = readRepositories(loaded.config.access_rules.repositories, loaded.baseDir, opts.remote)
  const problems = [...read.problems]
  const compiler = new Compiler(loaded, registry, deps, problems)
  compiler.checkHandlerConfigKeys()
  const fallback = compiler.fallback()

  const seen = new Map<string, string>()
  const compiled: { rule: Omit<CompiledRule, 'removeHeaders'>; raw: RawRule; where: string; setHeaders: readonly string[] }[] = []
  for (const src of read.rules) {
    const at = `${src.file}: rules[${src.index}]`
    const parsed = RuleSchema.safeParse(src.raw)
    if (!parsed.success) {
      const id = (src.raw as { id?: unknown } | null)?.id
      problems.push(...formatIssues(parsed.error, `${at}${typeof id === 'string' ? ` (id "${id}")` : ''}`))
      continue
    }
    const raw = parsed.data
    const where = `${at} (id "${raw.id}")`
    const dup = seen.get(raw.id)
    if (dup !== undefined) problems.push(`${where}.id: duplicate rule id, first defined at ${dup}`)
    seen.set(raw.id, where)
    const r = compiler.rule(raw, where)
    if (r) compiled.push({ ...r, raw, where })
  }

  const managedHeaders = new Set(compiled.flatMap((c) => c.setHeaders))
  const rules = compiled.map((c) => {
    const own = new Set(c.setHeaders)
    return Object.freeze({ ...c.rule, removeHeaders: Object.freeze([...managedHeaders].filter((h) => !own.has(h))) })
  })

  const entries: MatcherEntry<CompiledRule>[] = compiled.map((c, i) => ({
    methods: c.raw.match.methods.map((m) => m.toUpperCase()),
    url: c.raw.match.url,
    value: rules[i]!,
  }))
  let matcher: RuleMatcher<CompiledRule> | undefined
  try {
    matcher = buildMatcher(entries, loaded.config.access_rules.matching_strategy)
  } catch (err: unknown) {
    if (err instanceof MatcherBuildError) {
      problems.push(`${compiled[err.index]?.where ?? `rule ${err.index}`}.match.${err.field}: ${err.message.replace(/^entry \d+: /, "")}`)
    } else {
      problems.push(`access_rules: cannot build matcher: ${(err as Error).message}`)
    }
  }
  if (problems.length > 0 || matcher === undefined) throw new RuleSetError(problems)
  return Object.freeze({ rules, matcher, managedHeaders, fallback, files: read.files })
}

/** Builds handlers, sharing one instance per (stage, id, merged config). */
class Compiler {
  readonly #instances = new Map<string, unknown>()

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly registry: Registry,
    private readonly deps: HandlerDeps,
    private readonly problems: string[],
  ) {}

  /** Global handler sections may only name handlers that exist. */
  checkHandlerConfigKeys(): void {
    const c = this.loaded.config
    const sections: [Stage, Readonly<Record<string, HandlerSwitch>>][] = [
      ['authn', c.authenticators],
      ['authz', c.authorizers],
      ['mutate', c.mutators],
      ['error', c.errors.handlers],
    ]
    for (const [stage, section] of sections) {
      for (const id of Object.keys(section)) {
        if (!this.registry.get(stage, id)) {
          this.problems.push(`${STAGE_CONFIG_KEY[stage]}.${id}: unknown ${STAGE_NAME[stage]} (known: ${this.registry.ids(stage).join(', ')})`)
        }
      }
    }
  }

  fallback(): ErrorHandler[] {
    const out: ErrorHandler[] = []
    this.loaded.config.errors.fallback.forEach((id, i) => {
      const h = this.handler('error', { handler: id }, `errors.fallback[${i}]`)
      if (h) out.push(h)
    })
    return out
  }

  rule(raw: RawRule, where: string): { rule: Omit<CompiledRule, 'removeHeaders'>; setHeaders: readonly string[] } | undefined {
    const before = this.problems.length
    const authenticators = raw.authenticators.map((ref, i) => this.handler('authn', ref, `${where}.authenticators[${i}]`))
    const authorizer = this.handler('authz', raw.authorizer, `${where}.authorizer`)
    const mutators = raw.mutators.map((ref, i) => this.handler('mutate', ref, `${where}.mutators[${i}]`))
    const errors = raw.errors.map((ref, i) => this.handler('error', ref, `${where}.errors[${i}]`))
    if (this.problems.length > before || authorizer === undefined) return undefined
    const setHeaders = (mutators as Mutator[]).flatMap((m) => (isHeaderSetter(m) ? m.headerNames : []))
    return {
      rule: {
        id: raw.id,
        authenticators: Object.freeze(authenticators as Authenticator[]),
        authorizer,
        mutators: Object.freeze(mutators as Mutator[]),
        errors: Object.freeze(errors as ErrorHandler[]),
      },
      setHeaders,
    }
  }

  handler<S extends Stage>(stage: S, ref: HandlerRef, where: string): StageImpl[S] | undefined {
    const factory = this.registry.get(stage, ref.handler)
    if (!factory) {
      this.problems.push(`${where}.handler: unknown ${STAGE_NAME[stage]} "${ref.handler}" (known: ${this.registry.ids(stage).join(', ')})`)
      return undefined
    }
    const section = stage === 'error' ? this.loaded.config.errors.handlers : this.loaded.config[STAGE_CONFIG_KEY[stage as Exclude<Stage, 'error'>]]
    const sw = section[ref.handler]
    if (!sw?.enabled) {
      this.problems.push(`${where}.handler: ${STAGE_NAME[stage]} "${ref.handler}" is not enabled (set ${STAGE_CONFIG_KEY[stage]}.${ref.handler}.enabled: true)`)
      return undefined
    }
    const merged = deepMerge(sw.config, ref.config ?? {})
    const key = `${stage}:${ref.handler}:${stableJson(merged)}`
    const existing = this.#instances.get(key)
    if (existing !== undefined) return existing as StageImpl[S]
    const parsed = factory.config.safeParse(merged)
    if (!parsed.success) {
      this.problems.push(...formatIssues(parsed.error, `${where}.config`).map((p) => `${p} (${STAGE_NAME[stage]} "${ref.handler}")`))
      return undefined
    }
    try {
      const impl = factory.create(parsed.data, this.deps) as StageImpl[S]
      HANDLER_IDS.set(impl, ref.handler)
      this.#instances.set(key, impl)
      return impl
    } catch (err) {
      this.problems.push(`${joinPath(where, ['config'])}: ${(err as Error).message} (${STAGE_NAME[stage]} "${ref.handler}")`)
      return undefined
    }
  }
}

type Json = Record<string, unknown>
function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Oathkeeper's (koanf) merge: maps merge deeply, scalars and arrays are replaced. */
export function deepMerge(base: Readonly<Json>, over: Readonly<Json>): Json {
  const out: Json = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = Object.hasOwn(out, k) ? out[k] : undefined
    // defineProperty, not assignment: a "__proto__" key in a rule file must stay plain data.
    Object.defineProperty(out, k, {
      value: isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (isPlainObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}
