/**
 * A periodic one-line summary of the process's memory and latency health, logged at `info` with
 * the message `summary`, every `intervalMs` (config key `log.summary_interval`). It is what an
 * operator greps when memory grows, and what the soak (bench/soak/) reads instead of a metrics
 * endpoint. One line carries:
 *
 * | field | meaning |
 * |---|---|
 * | `heap_used_bytes`, `heap_total_bytes` | V8 heap of this isolate (`process.memoryUsage()`) |
 * | `rss_bytes` | resident set size of the process |
 * | `external_bytes`, `array_buffers_bytes` | memory of C++ objects bound to JS (Buffers included) |
 * | `event_loop_delay_p99_ms`, `event_loop_delay_max_ms` | event-loop delay since the previous line (`monitorEventLoopDelay`, 10 ms resolution) |
 * | `gc_count`, `gc_pause_ms_total` | garbage collections and their summed pause time since `startSummary` (`PerformanceObserver` `gc` entries) |
 * | `cache_entries`, `cache_bytes` | totals over every cache (positive + negative) |
 * | `caches` | per cache: `name`, `entries`, `bytes`, `max_bytes`, `negative_entries`, `negative_bytes`, `negative_max_bytes`, `inflight`, `hits`, `misses`, `evictions` |
 *
 * Bounded by construction: cache names are config-derived (`cacheName`), so `caches` has one item
 * per configured cache; the event-loop histogram is reset after every line; GC entries are summed
 * as they arrive, never kept. The timer is unref'd (it never keeps the process alive) and `stop()`
 * releases the timer, the histogram and the observer.
 * @module
 */
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks'
import type { CacheStats } from '../cache/auth-cache.js'
import type { Logger } from './logger.js'

/** Smallest accepted interval: a summary is a periodic health line, not a profiler. */
export const MIN_SUMMARY_INTERVAL_MS = 10

export interface SummaryOptions {
  /** Where the line goes (`info`, message `summary`). */
  readonly log: Pick<Logger, 'info'>
  /** Every cache in the process; usually `deps.caches`. */
  readonly caches: { stats(): readonly CacheStats[] }
  /** Period in ms (e.g. `log.summary_interval`); 0 turns the summary off (`stop()` is then a no-op). */
  readonly intervalMs: number
}

/** One cache as it appears in the line. */
export interface CacheSummary {
  readonly name: string
  readonly entries: number
  readonly bytes: number
  readonly max_bytes: number
  readonly negative_entries: number
  readonly negative_bytes: number
  readonly negative_max_bytes: number
  readonly inflight: number
  readonly hits: number
  readonly misses: number
  readonly evictions: number
}

/** The fields of one summary line (besides pino's own `level`, `time`, `msg`, …). */
export interface Summary {
  readonly heap_used_bytes: number
  readonly heap_total_bytes: number
  readonly rss_bytes: number
  readonly external_bytes: number
  readonly array_buffers_bytes: number
  readonly event_loop_delay_p99_ms: number
  readonly event_loop_delay_max_ms: number
  readonly gc_count: number
  readonly gc_pause_ms_total: number
  readonly cache_entries: number
  readonly cache_bytes: number
  readonly caches: readonly CacheSummary[]
}

export interface SummaryHandle {
  /** Stops the timer, the event-loop histogram and the GC observer. Idempotent. */
  stop(): void
}

export const SUMMARY_MSG = 'summary'

/**
 * Starts logging a summary line every `intervalMs` (rounded to the millisecond; the first line
 * after one interval). Throws a `RangeError` for an interval that is neither 0 nor a finite number
 * ≥ `MIN_SUMMARY_INTERVAL_MS` (up to 2³¹−1 ms, Node's timer limit).
 */
export function startSummary(opts: SummaryOptions): SummaryHandle {
  const { log, caches } = opts
  if (opts.intervalMs === 0) return { stop: () => {} }
  const intervalMs = Math.round(opts.intervalMs)
  if (!Number.isFinite(opts.intervalMs) || intervalMs < MIN_SUMMARY_INTERVAL_MS || intervalMs > 2 ** 31 - 1) {
    throw new RangeError(`summary interval must be 0 (off) or between ${MIN_SUMMARY_INTERVAL_MS} ms and 2^31-1 ms, got ${opts.intervalMs}`)
  }

  const delay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const gc = { count: 0, pauseMs: 0 }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.count++
      gc.pauseMs += entry.duration
    }
  })
  observer.observe({ entryTypes: ['gc'] })

  let pending: NodeJS.Immediate | undefined
  const emit = (): void => {
    pending = undefined
    const line = takeSummary(caches, delay, gc)
    delay.reset()
    log.info(line, SUMMARY_MSG)
  }
  // Read in the check phase, not in the timer callback: after a blocked loop, the histogram's own
  // timer (due in the same timers phase) has then recorded the block. `reset()` also restarts the
  // histogram's reference time, so a block read after the reset would be lost.
  const timer = setInterval(() => {
    pending ??= setImmediate(emit).unref()
  }, intervalMs)
  timer.unref()

  let stopped = false
  return {
    stop() {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      if (pending !== undefined) clearImmediate(pending)
      delay.disable()
      observer.disconnect()
    },
  }
}

/** The summary as of now; `delay` is read, not reset. Exported for tests. */
export function takeSummary(
  caches: { stats(): readonly CacheStats[] },
  delay: Pick<IntervalHistogram, 'percentile' | 'max' | 'count'>,
  gc: { readonly count: number; readonly pauseMs: number },
): Summary {
  const mem = process.memoryUsage()
  const list: CacheSummary[] = []
  let entries = 0
  let bytes = 0
  for (const s of caches.stats()) {
    entries += s.entries + s.negativeEntries
    bytes += s.bytes + s.negativeBytes
    list.push({
      name: s.name,
      entries: s.entries,
      bytes: s.bytes,
      max_bytes: s.maxBytes,
      negative_entries: s.negativeEntries,
      negative_bytes: s.negativeBytes,
      negative_max_bytes: s.negativeMaxBytes,
      inflight: s.inflight,
      hits: s.hits,
      misses: s.misses,
      evictions: s.evictions,
    })
  }
  // An empty histogram (no tick since the last reset) reports meaningless numbers (p99 511 ns): say 0.
  const sampled = delay.count > 0
  return {
    heap_used_bytes: mem.heapUsed,
    heap_total_bytes: mem.heapTotal,
    rss_bytes: mem.rss,
    external_bytes: mem.external,
    array_buffers_bytes: mem.arrayBuffers,
    event_loop_delay_p99_ms: sampled ? round3(delay.percentile(99) / 1e6) : 0,
    event_loop_delay_max_ms: sampled ? round3(delay.max / 1e6) : 0,
    gc_count: gc.count,
    gc_pause_ms_total: round3(gc.pauseMs),
    cache_entries: entries,
    cache_bytes: bytes,
    caches: list,
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000
}
