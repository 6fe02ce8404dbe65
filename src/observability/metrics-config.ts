/**
 * The `serve.prometheus` configuration section: where the metrics endpoint listens. Key names and
 * defaults are Oathkeeper's (`host`, `port: 9000`, `metrics_path: /metrics`), except the host,
 * which defaults to loopback: metrics name rules, caches and upstream origins, so exposing them
 * beyond the pod is an explicit choice.
 *
 * | key | default | meaning |
 * |---|---|---|
 * | `enabled` | `true` | serve metrics at all |
 * | `host` | `127.0.0.1` | listen address (`0.0.0.0` / `::` for every interface) |
 * | `port` | `9000` | listen port; `0` picks a free one (tests), logged at startup |
 * | `metrics_path` | `/metrics` | the only path served; every other path is 404 |
 *
 * Oathkeeper's `hide_request_paths` and `collapse_request_paths` are accepted so ported configs
 * load, and have no effect: request paths are never labels here. Its `metric_name_prefix` is
 * rejected with an explanation, because the metric names are fixed (`portcullis_*`, README).
 * @module
 */
import { z } from 'zod'

/** An absolute path: starts with `/`, no query, fragment, whitespace or control characters. */
const MetricsPath = z
  .string()
  .regex(/^\/[^\s?#\x00-\x1f\x7f]*$/, 'must be an absolute path starting with "/", without query, fragment or whitespace')

export const PrometheusConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.int().min(0).max(65535).default(9000),
  metrics_path: MetricsPath.default('/metrics'),
  /** Oathkeeper compatibility: accepted, no effect (paths are never labels). */
  hide_request_paths: z.boolean().optional(),
  /** Oathkeeper compatibility: accepted, no effect (paths are never labels). */
  collapse_request_paths: z.boolean().optional(),
  metric_name_prefix: z
    .custom<never>(() => false, {
      message: 'not supported: Portcullis metric names are fixed (portcullis_*); relabel in Prometheus if you need another prefix',
    })
    .optional(),
})

/** Parsed `serve.prometheus` section. */
export type PrometheusConfig = z.output<typeof PrometheusConfigSchema>
/** The `serve.prometheus` section as written in the config file. */
export type PrometheusConfigInput = z.input<typeof PrometheusConfigSchema>
