/**
 * The `outbound:` configuration section: pool, timeout, body cap, retry and breaker settings shared
 * by every outbound HTTP call (JWKS, introspection, session check, token endpoints). Durations are
 * Go duration strings (`"150ms"`, `"2s"`, as in Oathkeeper's config) and come out of the schema in
 * milliseconds, so the client never parses configuration.
 *
 * The defaults keep one call inside Envoy's ext_authz deadline (200 ms for `grpc_service`): a
 * 150 ms overall budget for all attempts, a 100 ms connect timeout, two retries of 10–50 ms backoff.
 * @module
 */
import { z } from 'zod'
import { parseDuration } from '../config/duration.js'

const MiB = 1024 * 1024

/** A Go duration string (`parseDuration`, src/config/duration.ts), in ms within `[minMs, maxMs]`. */
function duration(def: string, minMs: number, maxMs: number) {
  return z
    .string()
    .transform((s, ctx) => {
      let ms: number
      try {
        ms = parseDuration(s)
      } catch (err) {
        ctx.issues.push({ code: 'custom', message: (err as Error).message, input: s })
        return z.NEVER
      }
      if (ms < minMs || ms > maxMs) {
        ctx.issues.push({ code: 'custom', message: `${JSON.stringify(s)} is outside [${minMs} ms, ${maxMs} ms]`, input: s })
        return z.NEVER
      }
      return ms
    })
    .prefault(def)
}

export const OutboundConfigSchema = z
  .strictObject({
    /** Overall deadline of one call: connect, headers, body, every attempt and backoff. */
    timeout: duration('150ms', 1, 60_000),
    /** TCP (+ TLS) connect timeout of one connection attempt. */
    connect_timeout: duration('100ms', 1, 60_000),
    /** Connections kept per origin (undici `connections`); calls beyond this wait in a queue. */
    max_connections_per_origin: z.int().min(1).max(1024).default(32),
    /** Calls allowed to wait for a connection per origin; beyond that they fail as `overloaded`. */
    max_pending_per_origin: z.int().min(0).max(100_000).default(256),
    /** How long an idle connection is kept open (undici `keepAliveTimeout` and its max). */
    keep_alive: duration('30s', 1, 600_000),
    /** Default response body cap per call, in bytes; larger bodies fail as `too_large`. */
    max_response_bytes: z.int().min(1).max(256 * MiB).default(MiB),
    /** Distinct origins the client will talk to; a config-sized bound, not a tuning knob. */
    max_origins: z.int().min(1).max(10_000).default(256),
    retry: z
      .strictObject({
        /** Retries after the first attempt (so at most `max_retries + 1` attempts). */
        max_retries: z.int().min(0).max(10).default(2),
        /** First backoff; doubles per retry, capped by `max_backoff`, with jitter (half to full). */
        backoff: duration('10ms', 0, 10_000),
        max_backoff: duration('50ms', 0, 60_000),
        /** Retries allowed per origin, as a fraction of calls over the last 10 s … */
        budget_ratio: z.number().min(0).max(10).default(0.2),
        /** … plus this many per second of the window, so a quiet origin can still retry. */
        budget_min_per_second: z.number().min(0).max(10_000).default(5),
      })
      .prefault({}),
    breaker: z
      .strictObject({
        /** Consecutive failed attempts (transport errors, timeouts, 5xx) that open the breaker. */
        failure_threshold: z.int().min(1).max(1_000_000).default(5),
        /** How long an open breaker rejects calls before letting one probe through. */
        open_for: duration('2s', 1, 600_000),
      })
      .prefault({}),
  })
  .check((ctx) => {
    const { retry } = ctx.value
    if (retry.max_backoff < retry.backoff) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: ['retry', 'max_backoff'], message: 'must not be less than retry.backoff' })
    }
  })

/** Parsed `outbound:` section; durations in milliseconds. */
export type OutboundConfig = z.output<typeof OutboundConfigSchema>
/** The `outbound:` section as written in the config file. */
export type OutboundConfigInput = z.input<typeof OutboundConfigSchema>
