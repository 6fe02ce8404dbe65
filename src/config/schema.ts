/**
 * The configuration schema: Oathkeeper's key names where they exist (`serve.*`, `access_rules.*`,
 * `authenticators|authorizers|mutators.<id>.{enabled,config}`, `errors.{fallback,handlers}`,
 * `log.*`), defaults embedded here, unknown keys rejected. Handler `config` objects are validated
 * later, against each handler's own schema, when the rules are compiled (src/rules/compile.ts).
 * @module
 */
import { z } from 'zod'
import { OutboundConfigSchema } from '../http/config.js'
import { DecisionSampleSchema } from '../observability/decision-log.js'
import { DurationSchema } from './duration.js'
import { ApiConfigSchema } from '../server/http-api-config.js'
import { MemoryGuardConfigSchema } from '../observability/memory-guard.js'
import { ReloadConfigSchema } from '../rules/watch.js'
import { ShutdownConfigSchema } from '../server/lifecycle.js'
import { PrometheusConfigSchema } from '../observability/metrics-config.js'
import { WorkersSchema } from '../cluster.js'

const MiB = 1024 * 1024

const Port = z.int().min(0).max(65535)

/** `<stage>.<id>`: is the handler enabled, and its global config that rules merge their config over. */
export const HandlerSwitch = z.strictObject({
  enabled: z.boolean().default(false),
  config: z.record(z.string(), z.unknown()).default({}),
})
export type HandlerSwitch = z.infer<typeof HandlerSwitch>

const HandlerSwitches = z.record(z.string(), HandlerSwitch).default({})

export const ConfigSchema = z.strictObject({
  serve: z
    .strictObject({
      /** Oathkeeper's API port: /health/alive, /health/ready and the /decisions API. */
      api: ApiConfigSchema.prefault({}),
      grpc: z
        .strictObject({
          host: z.string().min(1).default('127.0.0.1'),
          /** 0 picks a free port (tests); the chosen port is logged. */
          port: Port.default(50051),
          /** Bytes. Must exceed the largest CheckRequest Envoy sends (headers + buffered body). */
          max_receive_message_length: z.int().min(64 * 1024).max(256 * MiB).default(8 * MiB),
          /**
           * Upper bound for one Check when Envoy sends no deadline, in milliseconds. With a deadline,
           * Portcullis answers (deny 503) shortly before it expires instead of letting Envoy time out.
           */
          max_check_duration_ms: z.int().min(1).max(60_000).default(1000),
        })
        .prefault({}),
      /** SIGTERM/SIGINT: drain period, then grace period for in-flight calls (src/server/lifecycle.ts). */
      shutdown: ShutdownConfigSchema.prefault({}),
      /** The Prometheus endpoint (src/observability/metrics-config.ts). */
      prometheus: PrometheusConfigSchema.prefault({}),
      /** Worker processes (node:cluster) sharing the ports; the cache budget is divided among them (src/cluster.ts). */
      workers: WorkersSchema,
    })
    .prefault({}),
  /** Watching and reloading the rule repositories and this file (src/rules/watch.ts). */
  reload: ReloadConfigSchema.prefault({}),
  /** Heap/RSS thresholds: not ready above soft; shed and clear caches above hard (src/observability/memory-guard.ts). */
  memory_guard: MemoryGuardConfigSchema.prefault({}),
  access_rules: z
    .strictObject({
      /** Files, directories, or file:// URLs; relative paths are relative to the config file. */
      repositories: z.array(z.string().min(1)).default([]),
      matching_strategy: z.enum(['regexp', 'glob']).default('regexp'),
    })
    .prefault({}),
  authenticators: HandlerSwitches,
  authorizers: HandlerSwitches,
  mutators: HandlerSwitches,
  errors: z
    .strictObject({
      /** Error handlers tried in order when a rule has none responsible (and for 404 / 500). */
      fallback: z.array(z.string().min(1)).min(1).default(['json']),
      handlers: HandlerSwitches,
    })
    .prefault({}),
  health: z
    .strictObject({
      /**
       * Not ready until every JWKS a loaded `jwt` rule uses has been fetched once (a jwt rule
       * without keys can only deny, 503).
       */
      require_jwks_warm: z.boolean().default(true),
    })
    .prefault({}),
  cache: z
    .strictObject({
      /**
       * Bytes all caches together may reserve (each cache: its `max_cost` + `negative_max_cost` +
       * lru-cache's slot table). The process refuses to start when the configured caches exceed it.
       */
      max_bytes: z.int().min(MiB).max(64 * 1024 * MiB).default(256 * MiB),
    })
    .prefault({}),
  /** Pool, timeout, body cap, retry and breaker settings of every outbound HTTP call. */
  outbound: OutboundConfigSchema.prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      format: z.enum(['json']).default('json'),
      /** Fraction of allowed / denied decisions logged, e.g. `{ allow: 0.01, deny: 1 }`. */
      decision_sample: DecisionSampleSchema.prefault({}),
      /** Period of the one-line summary (heap, RSS, event-loop delay, GC, cache sizes); "0" turns it off. */
      summary_interval: DurationSchema.refine((ms) => ms === 0 || ms >= 10, 'must be 0 (off) or at least 10ms').prefault('60s'),
    })
    .prefault({}),
})

export type Config = z.infer<typeof ConfigSchema>
