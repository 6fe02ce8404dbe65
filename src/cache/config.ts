/**
 * Cache configuration, embedded by every handler that caches (`<handler>.config.cache`). Key names
 * are Oathkeeper's (`enabled`, `ttl`, `max_cost`) plus ours, but **`max_cost` is bytes**, keys and
 * per-entry overhead included, not Oathkeeper's item count (whose default of 100 000 000 items
 * pre-reserves ≈4 GiB). A ported Oathkeeper config with `max_cost: 100000000` therefore asks for
 * 100 MB, which `cache.max_bytes` (the global budget) will refuse unless raised.
 *
 * | key | default | meaning |
 * |---|---|---|
 * | `enabled` | per handler | cache this handler's results |
 * | `ttl` | `"30s"` | longest life of a positive result (Go duration, > 0); never past the credential's expiry |
 * | `max_cost` | 16 MiB | bytes the positive results may count, keys and overhead included |
 * | `max_entries` | 100 000 | results held at most (each of positive and negative) |
 * | `cleanup_interval` | `"10s"` | how often expired entries are purged without being read |
 * | `negative_ttl` | `"5s"` | life of a definitive "invalid" result; `"0s"` turns negative caching off |
 * | `negative_max_cost` | 1 MiB | bytes the negative results may count; 0 turns negative caching off |
 *
 * Durations are parsed at load into milliseconds, so the parsed `CacheConfig` holds numbers.
 * @module
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { DurationSchema } from '../config/duration.js'
import type { CacheOptions } from './auth-cache.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

/** Defaults a handler may override (in the configuration's input form: durations as strings). */
export interface CacheDefaults {
  readonly enabled?: boolean
  readonly ttl?: string
  readonly max_cost?: number
  readonly max_entries?: number
  readonly cleanup_interval?: string
  readonly negative_ttl?: string
  readonly negative_max_cost?: number
}

export const CACHE_DEFAULTS = {
  enabled: false,
  ttl: '30s',
  max_cost: 16 * MiB,
  max_entries: 100_000,
  cleanup_interval: '10s',
  negative_ttl: '5s',
  negative_max_cost: 1 * MiB,
} as const satisfies Required<CacheDefaults>

/** Smallest `max_cost` / non-zero `negative_max_cost`: a few entries' worth. */
const MIN_COST = 4 * KiB

const durationAtLeast = (minMs: number, maxMs: number, what: string) =>
  DurationSchema.pipe(
    z
      .number()
      .min(minMs, `${what} must be at least ${minMs}ms`)
      .max(maxMs, `${what} must be at most ${maxMs / 3_600_000}h`),
  )

/**
 * The schema of a `cache` block with a handler's own defaults, e.g.
 * `cache: cacheConfigSchema({ enabled: true, ttl: '1m' }).prefault({})`. Unknown keys are rejected.
 */
export function cacheConfigSchema(defaults: CacheDefaults = {}) {
  const d = { ...CACHE_DEFAULTS, ...defaults }
  return z.strictObject({
    enabled: z.boolean().default(d.enabled),
    /** Longest life of a positive result, capped by the credential's expiry. */
    ttl: DurationSchema.pipe(z.number().min(1, 'ttl must be at least 1ms')).prefault(d.ttl),
    /** Bytes (not items, unlike Oathkeeper), keys and per-entry overhead included. */
    max_cost: z.int().min(MIN_COST).max(64 * GiB).default(d.max_cost),
    max_entries: z.int().min(1).max(2 ** 24).default(d.max_entries),
    cleanup_interval: durationAtLeast(100, 24 * 3_600_000, 'cleanup_interval').prefault(d.cleanup_interval),
    /** 0 turns negative caching off. */
    negative_ttl: DurationSchema.refine((ms) => ms === 0 || ms >= 1, 'negative_ttl must be 0 or at least 1ms')
      .prefault(d.negative_ttl),
    /** Bytes; 0 turns negative caching off. */
    negative_max_cost: z
      .int()
      .min(0)
      .max(64 * GiB)
      .refine((b) => b === 0 || b >= MIN_COST, `negative_max_cost must be 0 or at least ${MIN_COST}`)
      .default(d.negative_max_cost),
  })
}

/** A `cache` block with Oathkeeper's default (`enabled: false`) and ours for the rest. */
export const CacheConfigSchema = cacheConfigSchema()

/** A parsed `cache` block: durations in milliseconds, sizes in bytes. */
export type CacheConfig = z.output<typeof CacheConfigSchema>

/**
 * `CacheOptions` for `CacheRegistry.create` from a parsed `cache` block. `enabled` is the
 * caller's to check (a disabled cache is simply not created). Fractional milliseconds are rounded
 * down for lifetimes (never longer than configured) and to the nearest for the purge period.
 */
export function cacheOptionsFrom(name: string, cfg: CacheConfig): CacheOptions {
  return {
    name,
    ttlMs: Math.max(1, Math.floor(cfg.ttl)),
    maxBytes: cfg.max_cost,
    maxEntries: cfg.max_entries,
    cleanupIntervalMs: Math.max(1, Math.round(cfg.cleanup_interval)),
    negativeTtlMs: Math.floor(cfg.negative_ttl),
    negativeMaxBytes: cfg.negative_max_cost,
  }
}

const HANDLER_ID = /^[a-z][a-z0-9_]{0,47}$/

/**
 * A bounded cache name: `<handler id>:<12 hex chars of SHA-256 of the handler's config>`, e.g.
 * `oauth2_introspection:3f9a1c2b7d0e`. One cache per (handler, config), as opposed to Oathkeeper's
 * one introspection cache for all rules whatever their settings. Rules with identical configs get
 * the same name and share a cache, which is safe because keys carry every input the result depends
 * on. The name is at most 61 characters and carries no credential (only a digest of the config),
 * so it can be a metrics label. Object keys are sorted, so key order in the file does not matter.
 */
export function cacheName(handlerId: string, config: unknown): string {
  if (!HANDLER_ID.test(handlerId)) {
    throw new RangeError(`invalid handler id for a cache name: ${JSON.stringify(handlerId)}`)
  }
  const digest = createHash('sha256').update(stableJson(config)).digest('hex')
  return `${handlerId}:${digest.slice(0, 12)}`
}

/** JSON with object keys sorted at every level (undefined properties dropped, as JSON does). */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    const sorted: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
    return sorted
  }) ?? 'undefined'
}
