/**
 * The regular-expression engine behind rule patterns, and the one function that compiles them.
 *
 * Rule patterns come from configuration and URLs from clients. On V8's normal, backtracking
 * engine (irregexp) a rule such as `https://h/<.*>/<.*>/<.*>/end` lets a single 3 KB URL block
 * the event loop for ~11 s (reference: security.md §3.4). V8 has a second engine that runs in time
 * linear in the input (a breadth-first NFA simulation); Node 20 exposes it only through V8 flags,
 * which this module sets once, when it is first imported:
 *
 * 1. `--enable-experimental-regexp-engine` makes V8 accept the `l` (linear) RegExp flag. We use
 *    it as a validator: `new RegExp(src, 'l')` succeeds exactly when the linear engine can run
 *    `src`, i.e. no lookaround, no backreferences, counted repetitions of at most 16 copies.
 *    Patterns that fail are rejected at load.
 * 2. `--enable-experimental-regexp-engine-on-excessive-backtracks` with
 *    `--regexp-backtracks-before-fallback=1000`: every regexp that passed (1) starts on the fast
 *    backtracking engine and, if a single execution backtracks more than 1 000 times, is re-run
 *    on the linear engine. Results are identical; only the time changes.
 *
 * Why not `l` on the hot path: measured on Node 20.20 (AMD EPYC, 2 cores; `bench/RESULTS.md`),
 * `l` costs 1–4 µs per test of a typical rule against a typical URL, the backtracking engine
 * 15–200 ns, and with the fallback the pathological cases (3 × `.*` against 3 000 slashes,
 * `(\w+\s?)+` against 30 × `a` + `!`) finish in 0.02–2 ms, like `l` itself. The threshold of
 * 1 000 (V8's default is 50 000) matters for quadratic patterns: two `.*` against an 8 KB URL
 * take ~80 ms at 10 000 and ~2.5 ms at 1 000.
 *
 * The fallback flags are process-wide: any regexp compiled after this module loads, in any
 * library, switches to the linear engine after 1 000 backtracks (same results). Regexps compiled
 * *before* the flags were set keep their old behaviour, and V8 caches compiled regexps by
 * (source, flags), so import this module early (it is imported by the rule loader at startup).
 *
 * At load a canary proves the fallback is live (a regexp that needs ~10⁷ backtracking steps must
 * finish in < 25 ms). If it is not, e.g. a future Node renames a flag, every rule regexp is
 * compiled with `l` instead: slower, still safe. If even `l` is unknown, rule patterns cannot be
 * compiled at all and loading fails closed.
 * @module
 */
import { setFlagsFromString } from 'node:v8'
import { performance } from 'node:perf_hooks'
import { PatternError } from './matcher-errors.js'

/**
 * - `backtracking-with-linear-fallback`: fast engine, automatic switch to the linear engine.
 * - `linear`: every rule regexp carries the `l` flag (fallback unavailable).
 * - `unavailable`: this V8 has no linear engine; compiling a rule pattern throws.
 */
export type RegexpEngine = 'backtracking-with-linear-fallback' | 'linear' | 'unavailable'

/** Backtracks of one execution after which V8 re-runs it on the linear engine. */
export const BACKTRACKS_BEFORE_FALLBACK = 1000

/** The canary takes ~0.2 ms when the fallback works and ≥ 70 ms when it does not. */
const CANARY_BUDGET_MS = 25

setFlagsFromString('--enable-experimental-regexp-engine')
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks')
setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_FALLBACK}`)

/** The engine this process uses for rule regexps, decided once at load. */
export const REGEXP_ENGINE: RegexpEngine = probeEngine()

/**
 * Compiles a rule regexp source (already anchored and translated to JS syntax) for the hot path.
 * Throws the `SyntaxError` of V8 when the source is invalid or cannot run in linear time; the
 * pattern compiler turns it into a {@link PatternError} that names the offending group.
 */
export function compileRuleRegExp(source: string, engine: RegexpEngine = REGEXP_ENGINE): RegExp {
  if (engine === 'unavailable') {
    throw new PatternError(
      `this Node.js (${process.version}) has no linear-time regexp engine, so rule patterns cannot be compiled safely`,
    )
  }
  // Validate first: `l` is accepted exactly when the linear engine can run the pattern, which is
  // also the condition under which V8 can fall back to it.
  const linear = new RegExp(source, 'l')
  return engine === 'linear' ? linear : new RegExp(source)
}

/** Whether V8 says `source` cannot run on the linear engine (as opposed to being invalid). */
export function isNotLinearError(err: unknown): boolean {
  return err instanceof SyntaxError && err.message.endsWith('Cannot be executed in linear time')
}

function probeEngine(): RegexpEngine {
  if (!acceptsLinearFlag()) return 'unavailable'
  return fallbackIsLive() ? 'backtracking-with-linear-fallback' : 'linear'
}

function acceptsLinearFlag(): boolean {
  try {
    new RegExp('(?:)', 'l')
    return true
  } catch {
    return false
  }
}

/**
 * `^(?:a|aa)+$` against 34 × `a` + `b` explores Fibonacci(34) ≈ 6·10⁶ paths when backtracking:
 * ~500 ms in V8's regexp bytecode interpreter (the first run of a new regexp), ≥ 70 ms as native
 * code; with the fallback it takes ~0.2 ms. Each attempt uses a regexp with a new source, so it
 * runs untiered and uncached (a reused regexp would be native on its second run and could pass
 * without any fallback). Two attempts, so one descheduling or GC pause cannot demote the engine;
 * without the fallback this costs ~1 s once, at startup.
 */
function fallbackIsLive(): boolean {
  const input = `${'a'.repeat(34)}b`
  for (let attempt = 0; attempt < 2; attempt++) {
    const canary = new RegExp(`^(?:a|aa)+$|^portcullis-canary-${attempt}$`)
    const start = performance.now()
    canary.test(input)
    if (performance.now() - start < CANARY_BUDGET_MS) return true
  }
  return false
}
