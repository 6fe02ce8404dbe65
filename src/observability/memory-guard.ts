/**
 * The memory guard: turns "the container got OOM-killed" into "the sidecar said 503 for a while".
 *
 * Every `check_interval` it samples the V8 heap (`used_heap_size` against `heap_size_limit`, the
 * `--max-old-space-size` ceiling) and the RSS (against the cgroup limit, `process.constrainedMemory()`,
 * when there is one), and compares them with two thresholds:
 * - **soft**: readiness goes false (Envoy's health checks and Kubernetes stop sending new traffic)
 *   and one warning line reports heap, RSS, every cache's entries and bytes, and GC counts/pauses;
 * - **hard**: additionally every cache is cleared (again at every sample while hard: it is the one
 *   large thing Portcullis can give back) and new Checks are shed, answered at once with a denied
 *   `ERR_UPSTREAM_UNAVAILABLE` response (HTTP `shed_status`, 503 by default, reason
 *   `memory_guard_shed`, `Retry-After: 1`), which costs no allocation: the response is built once.
 *
 * The level rises at the first sample above a threshold and falls only after `recovery_checks`
 * consecutive samples below it (then to the highest level seen during those samples), so a guard
 * near a threshold does not flap. Thresholds are bytes (`*_bytes`) or fractions of the limit
 * (`*_ratio`); bytes win when both are set; a ratio of 0 turns that threshold off.
 *
 * Cost: the Check path reads one boolean (`shedding()`); the sampler (`v8.getHeapStatistics()` and
 * `process.memoryUsage.rss()`, a few µs) runs on an unref'd timer.
 * @module
 */
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks'
import { freemem, totalmem } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import { z } from 'zod'
import type { CacheRegistry } from '../cache/registry.js'
import { DurationSchema } from '../config/duration.js'
import type { CheckResponse } from '../gen/envoy/service/auth/v3/external_auth.js'
import { PipelineError } from '../pipeline/errors.js'
import { denied } from '../server/check.js'
import { MEMORY_GUARD, type Readiness } from '../server/readiness.js'
import type { Logger } from './logger.js'

const Ratio = z.number().min(0).max(1)
const Bytes = z.int().min(1)

/** `memory_guard:` in the configuration file. */
export const MemoryGuardConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** How often memory is sampled. */
    check_interval: DurationSchema.pipe(z.number().min(10, 'must be at least 10ms').max(60_000, 'must be at most 1m')).prefault('1s'),
    /** Heap thresholds: bytes of V8 `used_heap_size`, or a fraction of `heap_size_limit`. */
    soft_heap_bytes: Bytes.optional(),
    hard_heap_bytes: Bytes.optional(),
    soft_heap_ratio: Ratio.default(0.85),
    hard_heap_ratio: Ratio.default(0.95),
    /** RSS thresholds: bytes, or a fraction of the cgroup memory limit (ignored when there is none). */
    soft_rss_bytes: Bytes.optional(),
    hard_rss_bytes: Bytes.optional(),
    soft_rss_ratio: Ratio.default(0.85),
    hard_rss_ratio: Ratio.default(0.95),
    /** Consecutive samples below a level needed to leave it. */
    recovery_checks: z.int().min(1).max(1000).default(3),
    /** HTTP status of the denied response a shed Check gets. */
    shed_status: z.int().min(400).max(599).default(503),
  })
  .superRefine((c, ctx) => {
    const pairs = [
      ['soft_heap_bytes', 'hard_heap_bytes'],
      ['soft_rss_bytes', 'hard_rss_bytes'],
      ['soft_heap_ratio', 'hard_heap_ratio'],
      ['soft_rss_ratio', 'hard_rss_ratio'],
    ] as const
    for (const [soft, hard] of pairs) {
      const s = c[soft]
      const h = c[hard]
      if (s !== undefined && h !== undefined && s > 0 && h > 0 && s >= h) {
        ctx.issues.push({ code: 'custom', message: `must be below ${hard} (${h})`, path: [soft], input: s })
      }
    }
  })
export type MemoryGuardConfig = z.output<typeof MemoryGuardConfigSchema>
export type MemoryGuardConfigInput = z.input<typeof MemoryGuardConfigSchema>

export type GuardLevel = 'ok' | 'soft' | 'hard'
const RANK: Readonly<Record<GuardLevel, number>> = { ok: 0, soft: 1, hard: 2 }

/** One memory reading. Limits are undefined when unknown (no cgroup limit). */
export interface MemorySample {
  readonly heapUsed: number
  readonly heapLimit: number
  readonly rss: number
  readonly rssLimit: number | undefined
}

/** Thresholds in bytes after resolving ratios against the limits (undefined: off). */
export interface Thresholds {
  readonly softHeap: number | undefined
  readonly hardHeap: number | undefined
  readonly softRss: number | undefined
  readonly hardRss: number | undefined
}

export interface GuardStats {
  readonly level: GuardLevel
  /** Checks answered with the shed response since start. */
  readonly shed: number
  /** Times the guard entered soft (from ok) and hard. */
  readonly softTrips: number
  readonly hardTrips: number
  /** Cache clears done while hard. */
  readonly cacheClears: number
  readonly lastSample: MemorySample | undefined
  readonly thresholds: Thresholds | undefined
  readonly gc: GcStats
}

export interface GcStats {
  readonly count: number
  readonly major: number
  /** Total GC pause time in ms since the guard started. */
  readonly pauseMs: number
}

export interface MemoryGuardDeps {
  readonly caches: CacheRegistry
  readonly log: Logger
  readonly readiness?: Readiness
  /** Tests inject readings; the default reads V8 and the process. */
  readonly sample?: () => MemorySample
}

/** The default sampler: V8 heap and process RSS, with the cgroup limit when the process has one. */
export function sampleMemory(): MemorySample {
  const h = getHeapStatistics()
  return { heapUsed: h.used_heap_size, heapLimit: h.heap_size_limit, rss: process.memoryUsage.rss(), rssLimit: cgroupLimit() }
}

let cachedCgroupLimit: number | undefined | null = null
/** `process.constrainedMemory()` when it is a real limit (Node reports 2^64−1 or 0 when there is none). */
function cgroupLimit(): number | undefined {
  if (cachedCgroupLimit === null) {
    const c = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0
    cachedCgroupLimit = c !== undefined && c > 0 && c < totalmem() ? c : undefined
  }
  return cachedCgroupLimit
}

/** Resolves a config's thresholds against the limits of a sample. */
export function resolveThresholds(cfg: MemoryGuardConfig, s: MemorySample): Thresholds {
  const pick = (bytes: number | undefined, ratio: number, limit: number | undefined): number | undefined =>
    bytes ?? (ratio > 0 && limit !== undefined ? Math.floor(ratio * limit) : undefined)
  return {
    softHeap: pick(cfg.soft_heap_bytes, cfg.soft_heap_ratio, s.heapLimit),
    hardHeap: pick(cfg.hard_heap_bytes, cfg.hard_heap_ratio, s.heapLimit),
    softRss: pick(cfg.soft_rss_bytes, cfg.soft_rss_ratio, s.rssLimit),
    hardRss: pick(cfg.hard_rss_bytes, cfg.hard_rss_ratio, s.rssLimit),
  }
}

/** The level one sample is at, ignoring hysteresis. */
export function levelOf(s: MemorySample, t: Thresholds): GuardLevel {
  const over = (v: number, limit: number | undefined): boolean => limit !== undefined && v >= limit
  if (over(s.heapUsed, t.hardHeap) || over(s.rss, t.hardRss)) return 'hard'
  if (over(s.heapUsed, t.softHeap) || over(s.rss, t.softRss)) return 'soft'
  return 'ok'
}

/** The reason a shed Check is denied with (logs, metrics, `dynamic_metadata.reason`). */
export const SHED_REASON = 'memory_guard_shed'

/** The denied CheckResponse for a shed Check: built once, shared, never mutated. */
export function shedResponse(status: number): CheckResponse {
  const e = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', SHED_REASON, 'The service is overloaded, retry later', {
    headers: [['retry-after', '1']],
  })
  const r = denied(
    e,
    {
      status,
      headers: [
        ['content-type', 'application/json; charset=utf-8'],
        ['retry-after', '1'],
      ],
      body: `{"error":{"code":${status},"status":"error","message":"The service is overloaded, retry later"}}`,
    },
    undefined,
  )
  return Object.freeze(r)
}

export class MemoryGuard {
  #cfg: MemoryGuardConfig
  readonly #deps: MemoryGuardDeps
  readonly #sample: () => MemorySample
  #level: GuardLevel = 'ok'
  #shedding = false
  /** Consecutive samples below the current level, and the highest level among them. */
  #below = 0
  #belowMax: GuardLevel = 'ok'
  #timer: NodeJS.Timeout | undefined
  #observer: PerformanceObserver | undefined
  #gc = { count: 0, major: 0, pauseMs: 0 }
  #shed = 0
  #softTrips = 0
  #hardTrips = 0
  #cacheClears = 0
  #lastSample: MemorySample | undefined
  #thresholds: Thresholds | undefined
  #response: CheckResponse
  readonly #listeners = new Set<(level: GuardLevel, previous: GuardLevel) => void>()

  constructor(cfg: MemoryGuardConfig, deps: MemoryGuardDeps) {
    this.#cfg = cfg
    this.#deps = deps
    this.#sample = deps.sample ?? sampleMemory
    this.#response = shedResponse(cfg.shed_status)
  }

  /** True while above the hard threshold: answer new work with `shed()` instead of running it. */
  shedding(): boolean {
    return this.#shedding
  }

  /** Counts one shed Check and returns the (shared, frozen) denied response for it. */
  shed(): CheckResponse {
    this.#shed++
    return this.#response
  }

  /** The HTTP status shed requests get (for the HTTP decisions API). */
  get shedStatus(): number {
    return this.#cfg.shed_status
  }

  get level(): GuardLevel {
    return this.#level
  }

  /** Starts sampling every `check_interval` (and observing GC); a no-op when `enabled` is false. */
  start(): void {
    if (!this.#cfg.enabled || this.#timer !== undefined) return
    this.#observeGc()
    this.check()
    this.#timer = setInterval(() => this.check(), Math.max(1, this.#cfg.check_interval))
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#observer?.disconnect()
    this.#observer = undefined
  }

  /**
   * Applies a new configuration (thresholds, interval, shed status) from the next sample on; the
   * level is kept until samples say otherwise.
   */
  reconfigure(cfg: MemoryGuardConfig): void {
    const running = this.#timer !== undefined
    this.stop()
    this.#cfg = cfg
    this.#response = shedResponse(cfg.shed_status)
    if (!cfg.enabled) {
      this.#setLevel('ok', undefined)
      return
    }
    if (running) this.start()
  }

  /** Calls `listener(level, previous)` on every level change. Returns a function removing it. */
  onChange(listener: (level: GuardLevel, previous: GuardLevel) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  /** Takes one sample and applies it (the timer calls this; tests call it directly). */
  check(): GuardLevel {
    const s = this.#sample()
    const t = resolveThresholds(this.#cfg, s)
    this.#lastSample = s
    this.#thresholds = t
    const raw = levelOf(s, t)
    const wasHard = this.#level === 'hard'
    if (RANK[raw] > RANK[this.#level]) {
      this.#below = 0
      this.#setLevel(raw, s)
    } else if (RANK[raw] < RANK[this.#level]) {
      if (this.#below === 0 || RANK[raw] > RANK[this.#belowMax]) this.#belowMax = raw
      this.#below++
      if (this.#below >= this.#cfg.recovery_checks) {
        this.#below = 0
        this.#setLevel(this.#belowMax, s)
      }
    } else {
      this.#below = 0
    }
    // Entering hard cleared them already; staying hard keeps them empty.
    if (wasHard && this.#level === 'hard') this.#clearCaches()
    return this.#level
  }

  stats(): GuardStats {
    return {
      level: this.#level,
      shed: this.#shed,
      softTrips: this.#softTrips,
      hardTrips: this.#hardTrips,
      cacheClears: this.#cacheClears,
      lastSample: this.#lastSample,
      thresholds: this.#thresholds,
      gc: { ...this.#gc },
    }
  }

  #setLevel(level: GuardLevel, s: MemorySample | undefined): void {
    const previous = this.#level
    if (level === previous) return
    this.#level = level
    if (level === 'hard') this.#hardTrips++
    if (level === 'soft' && previous === 'ok') this.#softTrips++
    this.#shedding = level === 'hard'
    const ok = level === 'ok'
    this.#deps.readiness?.set(MEMORY_GUARD, ok, `memory above the ${level} threshold`)
    const fields = { memory_guard: level, previous, ...this.#report(s) }
    if (level === 'hard') {
      const before = this.#cacheTotals()
      this.#clearCaches()
      this.#deps.log.error({ ...fields, caches_cleared: before }, 'memory guard: above hard threshold, shedding new checks and clearing caches')
    } else if (level === 'soft') {
      this.#deps.log.warn(fields, previous === 'ok' ? 'memory guard: above soft threshold, not ready' : 'memory guard: below hard threshold, no longer shedding')
    } else {
      this.#deps.log.info(fields, 'memory guard: memory back to normal, ready')
    }
    for (const l of [...this.#listeners]) l(level, previous)
  }

  #clearCaches(): void {
    const reg = this.#deps.caches
    for (const name of reg.names()) reg.get(name)?.clear()
    this.#cacheClears++
  }

  #cacheTotals(): { caches: number; entries: number; bytes: number } {
    let entries = 0
    let bytes = 0
    const all = this.#deps.caches.stats()
    for (const c of all) {
      entries += c.entries + c.negativeEntries
      bytes += c.bytes + c.negativeBytes
    }
    return { caches: all.length, entries, bytes }
  }

  /** The fields of a guard log line: memory, thresholds, caches (each and total) and GC. */
  #report(s: MemorySample | undefined): Record<string, unknown> {
    const t = this.#thresholds
    return {
      heap_used_bytes: s?.heapUsed,
      heap_limit_bytes: s?.heapLimit,
      rss_bytes: s?.rss,
      rss_limit_bytes: s?.rssLimit,
      free_system_bytes: freemem(),
      thresholds: t,
      caches: this.#deps.caches.stats().map((c) => ({
        name: c.name,
        entries: c.entries,
        bytes: c.bytes,
        negative_entries: c.negativeEntries,
        negative_bytes: c.negativeBytes,
        inflight: c.inflight,
      })),
      cache_totals: this.#cacheTotals(),
      gc: { count: this.#gc.count, major: this.#gc.major, pause_ms: Math.round(this.#gc.pauseMs * 1000) / 1000 },
    }
  }

  #observeGc(): void {
    if (this.#observer !== undefined) return
    try {
      this.#observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          this.#gc.count++
          this.#gc.pauseMs += e.duration
          const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind
          if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) this.#gc.major++
        }
      })
      this.#observer.observe({ entryTypes: ['gc'] })
    } catch {
      this.#observer = undefined // GC observation is informational; never fail the guard for it.
    }
  }
}
