/**
 * All-or-nothing reload of the rule set, and of the reloadable parts of the configuration file.
 *
 * A reload builds a complete new `RuleSet` with `loadRuleSet` beside the one serving, then swaps
 * `holder.current` in one assignment. Each Check reads `holder.current` once, so it is evaluated
 * against exactly one snapshot, old or new, never a mix; Checks already running finish on the set
 * they started with. If anything is wrong with the new set (unparsable file, deleted file, unknown
 * or disabled handler, duplicate id, rejected pattern…) nothing is swapped: the last good set keeps
 * serving, every problem is logged, and the failure is counted. Readiness (`rules_loaded`) follows
 * the serving set: a successful reload to zero rules makes the process not ready; a failed reload
 * changes nothing.
 *
 * Caches: handlers get their caches from `deps.caches` (`CacheRegistry.create` returns the existing
 * cache for an unchanged (handler, config), so a reload keeps warm caches). The reloader records
 * which cache names each rule set asked for, and after a swap disposes every cache the new set does
 * not use (`retainOnly`); after a failed build it disposes the caches that build created.
 *
 * Configuration file: `reloadConfig()` reads it again with `loadConfig` (same environment). Only
 * `access_rules`, `authenticators`, `authorizers`, `mutators`, `errors` and `log.level` take effect
 * without a restart; a change anywhere else (`serve.*`, `cache`, `outbound`, `memory_guard`, …) is
 * logged as needing a restart and the running values are kept. An invalid file is a failed reload.
 *
 * Compilation runs on the event loop (handlers are closures over process-wide deps, so they cannot
 * be built in a worker): a large rule set delays the Checks queued behind it by its build time
 * (the matcher alone takes ~0.1 s for 10 000 rules, bench/RESULTS.md), but it never blocks a Check half-way.
 * @module
 */
import type { CacheRegistry } from '../cache/registry.js'
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../observability/logger.js'
import type { Registry } from '../pipeline/registry.js'
import type { HandlerDeps } from '../pipeline/types.js'
import { RULES_LOADED, type Readiness } from '../server/readiness.js'
import { loadRuleSet, RuleSetError, type RuleSet } from './compile.js'

/** Where the serving rule set lives (`src/server/grpc.ts` `RuleSetHolder`). */
export interface Holder {
  current: RuleSet | undefined
}

/** Top-level config sections a reload applies; `log.level` is applied too. */
export const RELOADABLE_SECTIONS = ['access_rules', 'authenticators', 'authorizers', 'mutators', 'errors'] as const

export type ReloadKind = 'rules' | 'config'

export type ReloadOutcome =
  | {
      readonly ok: true
      readonly kind: ReloadKind
      readonly trigger: string
      readonly rules: number
      /** False when a config reload found nothing reloadable to apply. */
      readonly swapped: boolean
      /** Config keys that changed but need a restart. */
      readonly restartNeeded: readonly string[]
      readonly durationMs: number
      readonly cachesReleased: readonly string[]
    }
  | {
      readonly ok: false
      readonly kind: ReloadKind
      readonly trigger: string
      readonly problems: readonly string[]
      readonly durationMs: number
    }

export interface ReloadStats {
  readonly successes: number
  readonly failures: number
  /** Rules in the serving set. */
  readonly rules: number
  /** Epoch ms of the last successful / failed reload. */
  readonly lastSuccessMs: number | undefined
  readonly lastFailureMs: number | undefined
  /** Problems of the last failed reload (cleared by a success). */
  readonly lastProblems: readonly string[]
}

export type Compile = (loaded: LoadedConfig, registry: Registry, deps: HandlerDeps) => RuleSet

export interface ReloaderOptions {
  readonly holder: Holder
  /** The configuration the serving set was built from. */
  readonly loaded: LoadedConfig
  readonly registry: Registry
  readonly deps: HandlerDeps
  readonly log: Logger
  readonly readiness?: Readiness
  /** For `reloadConfig`: the environment and working directory `loadConfig` used at start-up. */
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Default `loadRuleSet`; main.ts passes one that also reads fetched http(s) repositories. */
  readonly compile?: Compile
  /**
   * Names of the caches the serving set uses. Default: every cache in `deps.caches` when the
   * reloader is created (right when the only rule set built so far is the serving one).
   */
  readonly initialCacheNames?: Iterable<string>
  /** Wall clock for the stats (default Date.now). */
  readonly now?: () => number
}

export class Reloader {
  readonly #o: ReloaderOptions
  readonly #compile: Compile
  #loaded: LoadedConfig
  /** Cache names the serving set asked for (live: a handler creating a cache later adds to it). */
  #servingCaches: Set<string>
  #successes = 0
  #failures = 0
  #lastSuccessMs: number | undefined
  #lastFailureMs: number | undefined
  #lastProblems: readonly string[] = []
  readonly #listeners = new Set<(outcome: ReloadOutcome) => void>()

  constructor(o: ReloaderOptions) {
    this.#o = o
    this.#compile = o.compile ?? loadRuleSet
    this.#loaded = o.loaded
    this.#servingCaches = new Set(o.initialCacheNames ?? o.deps.caches.names())
    const n = o.holder.current?.rules.length ?? 0
    o.readiness?.set(RULES_LOADED, n > 0, 'no access rules are loaded')
  }

  /** The configuration in effect (the reloadable parts of the last good file, the rest from start-up). */
  get loaded(): LoadedConfig {
    return this.#loaded
  }

  /** Re-reads the rule repositories of the configuration in effect and swaps if they are valid. */
  reloadRules(trigger: string): ReloadOutcome {
    const started = performance.now()
    return this.#build('rules', trigger, this.#loaded, started, [])
  }

  /** Re-reads the configuration file, then rebuilds the rule set if a reloadable part changed. */
  reloadConfig(trigger: string): ReloadOutcome {
    const started = performance.now()
    const file = this.#loaded.file
    if (file === undefined) return this.reloadRules(trigger)
    let next: LoadedConfig
    try {
      next = loadConfig({ file, env: this.#o.env ?? {}, ...(this.#o.cwd === undefined ? {} : { cwd: this.#o.cwd }) })
    } catch (err) {
      if (err instanceof ConfigError) return this.#fail('config', trigger, err.problems.map((p) => `${file}: ${p}`), started)
      throw err
    }
    const { effective, reloadable, restart } = mergeReloadable(this.#loaded.config, next.config)
    if (restart.length > 0) {
      this.#o.log.warn({ trigger, keys: restart }, 'configuration changes that need a restart were not applied')
    }
    const levelChanged = next.config.log.level !== this.#loaded.config.log.level
    if (levelChanged) {
      this.#o.log.level = next.config.log.level
      this.#o.log.info({ level: next.config.log.level }, 'log level changed')
    }
    const loaded: LoadedConfig = { ...this.#loaded, config: effective }
    if (reloadable.length === 0) {
      this.#loaded = loaded // log.level
      const outcome: ReloadOutcome = {
        ok: true,
        kind: 'config',
        trigger,
        rules: this.#o.holder.current?.rules.length ?? 0,
        swapped: false,
        restartNeeded: restart,
        durationMs: performance.now() - started,
        cachesReleased: [],
      }
      this.#o.log.info({ trigger, restart_needed: restart }, 'configuration file changed: nothing to reload')
      this.#emit(outcome)
      return outcome
    }
    return this.#build('config', trigger, loaded, started, restart)
  }

  /**
   * The configuration file as `reloadConfig` would read it, without applying anything (undefined
   * without a file or when it is invalid). The watcher uses it to fetch new http(s) repositories
   * before the reload that needs them.
   */
  peekConfig(): LoadedConfig | undefined {
    const file = this.#loaded.file
    if (file === undefined) return undefined
    try {
      return loadConfig({ file, env: this.#o.env ?? {}, ...(this.#o.cwd === undefined ? {} : { cwd: this.#o.cwd }) })
    } catch {
      return undefined
    }
  }

  stats(): ReloadStats {
    return {
      successes: this.#successes,
      failures: this.#failures,
      rules: this.#o.holder.current?.rules.length ?? 0,
      lastSuccessMs: this.#lastSuccessMs,
      lastFailureMs: this.#lastFailureMs,
      lastProblems: this.#lastProblems,
    }
  }

  /** Calls `listener` after every reload attempt (metrics, watchers, tests). Returns a remover. */
  onReload(listener: (outcome: ReloadOutcome) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  #build(kind: ReloadKind, trigger: string, loaded: LoadedConfig, started: number, restart: readonly string[]): ReloadOutcome {
    const caches = this.#o.deps.caches
    const used = new Set<string>()
    let next: RuleSet
    try {
      next = this.#compile(loaded, this.#o.registry, { ...this.#o.deps, caches: tracking(caches, used) })
    } catch (err) {
      // Whatever the failed build created is released; the serving set's caches are untouched.
      caches.retainOnly(this.#servingCaches)
      if (err instanceof RuleSetError) return this.#fail(kind, trigger, err.problems, started)
      return this.#fail(kind, trigger, [`cannot build the rule set: ${(err as Error).message}`], started)
    }
    const previous = this.#o.holder.current
    this.#o.holder.current = next // the swap: one assignment
    this.#loaded = loaded
    this.#servingCaches = used
    const released = caches.retainOnly(used)
    this.#successes++
    this.#lastSuccessMs = (this.#o.now ?? Date.now)()
    this.#lastProblems = []
    this.#o.readiness?.set(RULES_LOADED, next.rules.length > 0, 'no access rules are loaded')
    const outcome: ReloadOutcome = {
      ok: true,
      kind,
      trigger,
      rules: next.rules.length,
      swapped: true,
      restartNeeded: restart,
      durationMs: performance.now() - started,
      cachesReleased: released,
    }
    this.#o.log.info(
      {
        kind,
        trigger,
        rules: next.rules.length,
        previous_rules: previous?.rules.length ?? 0,
        files: next.files.length,
        caches_released: released,
        duration_ms: round(outcome.durationMs),
      },
      'access rules reloaded',
    )
    if (next.rules.length === 0) this.#o.log.warn('the reloaded rule set has no rules: every Check is denied and the process is not ready')
    this.#emit(outcome)
    return outcome
  }

  #fail(kind: ReloadKind, trigger: string, problems: readonly string[], started: number): ReloadOutcome {
    this.#failures++
    this.#lastFailureMs = (this.#o.now ?? Date.now)()
    this.#lastProblems = problems
    const outcome: ReloadOutcome = { ok: false, kind, trigger, problems, durationMs: performance.now() - started }
    this.#o.log.error(
      { kind, trigger, problems, serving_rules: this.#o.holder.current?.rules.length ?? 0, failures: this.#failures },
      'reload rejected: keeping the last good rule set',
    )
    this.#emit(outcome)
    return outcome
  }

  #emit(outcome: ReloadOutcome): void {
    for (const l of [...this.#listeners]) {
      try {
        l(outcome)
      } catch (err) {
        this.#o.log.error({ err }, 'reload listener failed')
      }
    }
  }
}

/**
 * The configuration in effect after reading `next`: reloadable sections (and `log.level`) from
 * `next`, everything else from `current`. Also says which reloadable sections changed and which
 * other keys changed (those need a restart), as dotted paths down to the second level.
 */
export function mergeReloadable(
  current: Readonly<Config>,
  next: Readonly<Config>,
): { effective: Readonly<Config>; reloadable: string[]; restart: string[] } {
  const reloadable: string[] = []
  const restart: string[] = []
  const keys = new Set([...Object.keys(current), ...Object.keys(next)])
  const merged: Record<string, unknown> = { ...current }
  const cur = current as unknown as Record<string, unknown>
  const nxt = next as unknown as Record<string, unknown>
  for (const key of keys) {
    const a = cur[key]
    const b = nxt[key]
    if (stableJson(a) === stableJson(b)) continue
    if ((RELOADABLE_SECTIONS as readonly string[]).includes(key)) {
      reloadable.push(key)
      merged[key] = b
    } else if (key === 'log' && isObject(a) && isObject(b)) {
      const la = a
      const lb = b
      for (const k of new Set([...Object.keys(la), ...Object.keys(lb)])) {
        if (k !== 'level' && stableJson(la[k]) !== stableJson(lb[k])) restart.push(`log.${k}`)
      }
      merged[key] = Object.freeze({ ...la, level: lb['level'] })
    } else {
      restart.push(...changedPaths(key, a, b))
    }
  }
  return { effective: Object.freeze(merged) as unknown as Readonly<Config>, reloadable, restart }
}

/** `serve.grpc`, `serve.shutdown`…: the second-level keys that differ (or the key itself). */
function changedPaths(key: string, a: unknown, b: unknown): string[] {
  if (!isObject(a) || !isObject(b)) return [key]
  const out: string[] = []
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (stableJson(a[k]) !== stableJson(b[k])) out.push(`${key}.${k}`)
  }
  return out.length > 0 ? out : [key]
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

/**
 * The registry as the handlers of one build see it: `create()` records the name, everything else
 * goes to the registry itself (bound, so its private fields work).
 */
function tracking(registry: CacheRegistry, used: Set<string>): CacheRegistry {
  return new Proxy(registry, {
    get(target, prop) {
      if (prop === 'create') {
        return (o: Parameters<CacheRegistry['create']>[0]) => {
          used.add(o.name)
          return target.create(o)
        }
      }
      const v: unknown = Reflect.get(target, prop, target)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}
