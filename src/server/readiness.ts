/**
 * The one readiness state of the process. gRPC health (`grpc.health.v1`, both `""` and
 * `envoy.service.auth.v3.Authorization`) and HTTP `GET /health/ready` are both driven by it, so they
 * can never disagree.
 *
 * Ready means every condition holds. Conditions are named (the names are what `/health/ready`
 * reports, as Oathkeeper's `{"errors":{"rules_loaded":…}}`), and come in two kinds:
 * - pushed, with `set(name, ok, message)`: `rules_loaded` (the reloader), `shutdown` (lifecycle:
 *   false from the first signal on, for good), `memory_guard` (the guard, while above its soft
 *   threshold);
 * - pulled, with `addCondition(name, () => boolean)`, for state owned elsewhere (e.g. `jwks_warmed`):
 *   evaluated by `check()` (so an HTTP probe always sees the current value) and every
 *   `pollIntervalMs` while any exists, to push changes to gRPC health.
 *
 * `rules_loaded` starts false: nothing is ready before a rule set with at least one rule is loaded.
 * Listeners (`onChange`, e.g. the gRPC server's `setServing`) are called with the new value only when
 * it changes, synchronously inside the `set()` that changed it.
 * @module
 */

/** Condition names set by Portcullis itself. */
export const RULES_LOADED = 'rules_loaded'
export const SHUTDOWN = 'shutdown'
export const MEMORY_GUARD = 'memory_guard'

export interface ReadinessReport {
  readonly ready: boolean
  /** Every unmet condition, by name, with its message (empty when ready). */
  readonly errors: Readonly<Record<string, string>>
}

export interface ReadinessOptions {
  /** Period at which pulled conditions are re-evaluated for gRPC health (default 1000 ms). */
  readonly pollIntervalMs?: number
}

type Listener = (ready: boolean, report: ReadinessReport) => void

interface Pushed {
  ok: boolean
  message: string
}

interface Pulled {
  readonly test: () => boolean
  readonly message: string
}

export class Readiness {
  readonly #pushed = new Map<string, Pushed>([[RULES_LOADED, { ok: false, message: 'no access rules are loaded' }]])
  readonly #pulled = new Map<string, Pulled>()
  readonly #listeners = new Set<Listener>()
  readonly #pollIntervalMs: number
  #timer: NodeJS.Timeout | undefined
  #last: boolean
  #stopped = false

  constructor(opts: ReadinessOptions = {}) {
    this.#pollIntervalMs = opts.pollIntervalMs ?? 1000
    this.#last = false
  }

  /** Sets a pushed condition and notifies listeners if readiness changed. */
  set(name: string, ok: boolean, message = `${name} not met`): void {
    const c = this.#pushed.get(name)
    if (c === undefined) this.#pushed.set(name, { ok, message })
    else {
      c.ok = ok
      c.message = message
    }
    this.refresh()
  }

  /**
   * Adds a pulled condition (e.g. `jwks_warmed`). A condition that throws counts as unmet. Returns a
   * function removing it.
   */
  addCondition(name: string, test: () => boolean, message = `${name} not met`): () => void {
    if (this.#pulled.has(name) || this.#pushed.has(name)) throw new Error(`readiness condition "${name}" already exists`)
    const entry = { test, message }
    this.#pulled.set(name, entry)
    this.#startPolling()
    this.refresh()
    return () => {
      if (this.#pulled.get(name) === entry) this.#pulled.delete(name)
      if (this.#pulled.size === 0) this.#stopPolling()
      this.refresh()
    }
  }

  /** Evaluates every condition now (HTTP `/health/ready` calls this per probe). */
  check(): ReadinessReport {
    const errors: Record<string, string> = {}
    for (const [name, c] of this.#pushed) if (!c.ok) errors[name] = c.message
    for (const [name, c] of this.#pulled) {
      let ok: boolean
      try {
        ok = c.test()
      } catch {
        ok = false
      }
      if (!ok) errors[name] = c.message
    }
    return { ready: Object.keys(errors).length === 0, errors }
  }

  /** Readiness as last computed (a field read; `refresh()` or `check()` for the current value). */
  get ready(): boolean {
    return this.#last
  }

  /** Re-evaluates and notifies listeners on a change; returns the current value. */
  refresh(): boolean {
    return this.#evaluate().ready
  }

  /**
   * Calls `listener` on every change, and once now with the current value (so a gRPC server
   * attached after start-up gets the right status at once). Returns a function removing it.
   */
  onChange(listener: Listener): () => void {
    const report = this.#evaluate()
    this.#listeners.add(listener)
    listener(report.ready, report)
    return () => void this.#listeners.delete(listener)
  }

  /** Stops polling pulled conditions (at shutdown). */
  stop(): void {
    this.#stopped = true
    this.#stopPolling()
  }

  #evaluate(): ReadinessReport {
    const report = this.check()
    if (report.ready !== this.#last) {
      this.#last = report.ready
      for (const l of [...this.#listeners]) l(report.ready, report)
    }
    return report
  }

  #startPolling(): void {
    if (this.#timer !== undefined || this.#stopped) return
    this.#timer = setInterval(() => this.refresh(), this.#pollIntervalMs)
    this.#timer.unref()
  }

  #stopPolling(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }
}
