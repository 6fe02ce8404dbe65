/**
 * Composition root: config → logger → handler registry → rule set → gRPC server → signals.
 * @module
 */
import { CacheBudget } from './cache/budget.js'
import { CacheRegistry } from './cache/registry.js'
import { loadConfig, type LoadedConfig } from './config/load.js'
import { disposeJwksProviders } from './credentials/jwks.js'
import { HttpClient } from './http/client.js'
import { createLogger, type Logger } from './observability/logger.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { startMetricsServer, type MetricsServer } from './observability/metrics-server.js'
import { defaultRegistry } from './pipeline/registry.js'
import type { HandlerDeps } from './pipeline/types.js'
import { loadRuleSet, type RuleSet } from './rules/compile.js'
import { startGrpcServer, type GrpcServer, type RuleSetHolder } from './server/grpc.js'

export interface Portcullis {
  readonly loaded: LoadedConfig
  readonly grpc: GrpcServer
  readonly holder: RuleSetHolder
  readonly log: Logger
  readonly deps: HandlerDeps
  readonly metrics: Metrics
  /** Undefined when `serve.prometheus.enabled` is false. */
  readonly metricsServer: MetricsServer | undefined
  stop(graceMs?: number): Promise<void>
}

export interface StartOptions {
  readonly configFile?: string | undefined
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Tests pass a logger writing to memory. */
  readonly log?: Logger
  /** Tests inject a clock. */
  readonly now?: () => number
}

/** Loads config and rules (throwing ConfigError / RuleSetError) and starts serving. */
export async function startPortcullis(opts: StartOptions = {}): Promise<Portcullis> {
  const loaded = loadConfig({ file: opts.configFile, env: opts.env ?? {}, ...(opts.cwd ? { cwd: opts.cwd } : {}) })
  const log = opts.log ?? createLogger(loaded.config.log.level)
  const deps = createDeps(loaded, log, opts.now)
  let ruleSet: RuleSet
  try {
    ruleSet = loadRuleSet(loaded, defaultRegistry(), deps)
  } catch (err) {
    await disposeDeps(deps)
    throw err
  }
  const holder: RuleSetHolder = { current: ruleSet }
  const metrics = createMetrics()
  metrics.bindCaches(() => deps.caches.stats())
  metrics.bindOutbound(() => deps.http.stats())
  metrics.forgetRules(ruleSet.rules.map((r) => r.id))
  const prom = loaded.config.serve.prometheus
  let metricsServer: MetricsServer | undefined
  try {
    metricsServer = prom.enabled ? await startMetricsServer(metrics.registry, prom, log) : undefined
  } catch (err) {
    metrics.close()
    await disposeDeps(deps)
    throw err
  }
  const g = loaded.config.serve.grpc
  const grpc = await startGrpcServer(holder, log, {
    host: g.host,
    port: g.port,
    maxReceiveMessageLength: g.max_receive_message_length,
    maxCheckDurationMs: g.max_check_duration_ms,
    observer: metrics,
  })
  grpc.setServing(ruleSet.rules.length > 0)
  log.info({ rules: ruleSet.rules.length, files: ruleSet.files.length, strategy: loaded.config.access_rules.matching_strategy }, 'access rules loaded')
  if (ruleSet.rules.length === 0) log.warn('no access rules loaded: every Check is denied and health stays NOT_SERVING')
  return {
    loaded,
    grpc,
    holder,
    log,
    deps,
    metrics,
    metricsServer,
    async stop(graceMs = 5000) {
      grpc.setServing(false)
      await grpc.stop(graceMs)
      await metricsServer?.close()
      metrics.close()
      await disposeDeps(deps)
    },
  }
}

/** The process-wide services handlers are built with: cache registry (budgeted), HTTP client, clock. */
export function createDeps(loaded: LoadedConfig, log: Logger, now: () => number = Date.now): HandlerDeps {
  const caches = new CacheRegistry(new CacheBudget(loaded.config.cache.max_bytes), { now })
  return { log, caches, http: new HttpClient(loaded.config.outbound), now }
}

export async function disposeDeps(deps: HandlerDeps): Promise<void> {
  disposeJwksProviders(deps)
  deps.caches.dispose()
  await deps.http.close()
}
