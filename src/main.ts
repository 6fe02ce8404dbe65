/**
 * Composition root: config → logger → handler registry → rule set → gRPC server → signals.
 * @module
 */
import { CacheBudget } from './cache/budget.js'
import { CacheRegistry } from './cache/registry.js'
import { loadConfig, type LoadedConfig } from './config/load.js'
import { disposeJwksProviders, jwksProviders } from './credentials/jwks.js'
import { HttpClient } from './http/client.js'
import { createLogger, type Logger } from './observability/logger.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { startMetricsServer, type MetricsServer } from './observability/metrics-server.js'
import { MemoryGuard } from './observability/memory-guard.js'
import { defaultRegistry } from './pipeline/registry.js'
import type { HandlerDeps } from './pipeline/types.js'
import { loadRuleSet, type RuleSet } from './rules/compile.js'
import { isRemote, RemoteRepositories } from './rules/fetch-remote.js'
import { Reloader, type Compile } from './rules/reload.js'
import { RuleWatcher } from './rules/watch.js'
import { startGrpcServer, type GrpcServer, type RuleSetHolder } from './server/grpc.js'
import { sampled } from './observability/decision-log.js'
import { startSummary, type SummaryHandle } from './observability/summary.js'
import { logDecision, startHttpApi, type HttpApi } from './server/http-api.js'
import { InFlight, wrapCheckHandler } from './server/lifecycle.js'
import { Readiness, SHUTDOWN } from './server/readiness.js'

export interface Portcullis {
  readonly loaded: LoadedConfig
  readonly grpc: GrpcServer
  /** `serve.api`: health endpoints and the Oathkeeper-compatible /decisions API. */
  readonly api: HttpApi
  readonly holder: RuleSetHolder
  readonly log: Logger
  readonly deps: HandlerDeps
  /** The one readiness state: gRPC health and HTTP /health/ready. */
  readonly readiness: Readiness
  readonly reloader: Reloader
  readonly watcher: RuleWatcher
  readonly guard: MemoryGuard
  /** The periodic one-line summary (`log.summary_interval`). */
  readonly summary: SummaryHandle
  /** Checks being answered; the shutdown sequence denies those still running at its deadline. */
  readonly inflight: InFlight
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
  const registry = defaultRegistry()
  const reload = loaded.config.reload
  const remote = new RemoteRepositories(deps.http, { timeoutMs: reload.remote_timeout, maxBytes: reload.remote_max_bytes })
  const compile: Compile = (l, r, d) => loadRuleSet(l, r, d, { remote })
  let ruleSet: RuleSet
  try {
    const repositories = loaded.config.access_rules.repositories
    // A repository that cannot be fetched is reported by compile() as a load problem.
    if (repositories.some(isRemote)) await remote.refresh(repositories)
    ruleSet = compile(loaded, registry, deps)
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
  const readiness = new Readiness()
  const inflight = new InFlight()
  const guard = new MemoryGuard(loaded.config.memory_guard, { caches: deps.caches, log, readiness })
  const g = loaded.config.serve.grpc
  const grpc = await startGrpcServer(holder, log, {
    host: g.host,
    port: g.port,
    maxReceiveMessageLength: g.max_receive_message_length,
    maxCheckDurationMs: g.max_check_duration_ms,
    wrapCheck: (check) => wrapCheckHandler(check, { inflight, guard, log }),
    observer: metrics,
    decisionSample: loaded.config.log.decision_sample,
  })
  readiness.onChange((ready) => grpc.setServing(ready))
  const logHttpDecision = logDecision(log)
  let api: HttpApi
  try {
    api = await startHttpApi({
      holder,
      log,
      config: loaded.config.serve.api,
      readiness: () => readiness.check(),
      inflight,
      guard,
      onDecision: (e) => {
        metrics.observeDecision(e.ruleId, e.decision, undefined, e.durationMs / 1000, e.reason)
        if (sampled(loaded.config.log.decision_sample, e.decision)) logHttpDecision(e)
      },
    })
  } catch (err) {
    await grpc.stop(0)
    await metricsServer?.close()
    metrics.close()
    await disposeDeps(deps)
    throw err
  }
  // The reloader sets readiness `rules_loaded` now; the caches created so far are the serving set's.
  const reloader = new Reloader({ holder, loaded, registry, deps, log, readiness, env: opts.env ?? {}, ...(opts.cwd ? { cwd: opts.cwd } : {}), compile })
  reloader.onReload((o) => {
    metrics.reload(o.ok ? 'success' : 'failure', o.ok ? o.rules : undefined)
    if (o.ok && o.swapped) metrics.forgetRules(holder.current?.rules.map((r) => r.id) ?? [])
  })
  const watcher = new RuleWatcher({ reloader, config: reload, log, remote })
  watcher.start()
  guard.start()
  if (loaded.config.health.require_jwks_warm) {
    readiness.addCondition(
      'jwks_warmed',
      () => jwksProviders(deps).every((p) => p.released || p.current() !== undefined),
      'a JWKS used by a jwt rule has not been fetched yet',
    )
  }
  const summary = startSummary({ log, caches: deps.caches, intervalMs: loaded.config.log.summary_interval })
  log.info({ rules: ruleSet.rules.length, files: ruleSet.files.length, strategy: loaded.config.access_rules.matching_strategy }, 'access rules loaded')
  if (ruleSet.rules.length === 0) log.warn('no access rules loaded: every Check is denied and health stays NOT_SERVING')
  return {
    loaded,
    grpc,
    api,
    holder,
    log,
    deps,
    metrics,
    metricsServer,
    readiness,
    reloader,
    watcher,
    guard,
    summary,
    inflight,
    async stop(graceMs = 5000) {
      readiness.set(SHUTDOWN, false, 'shutting down')
      watcher.stop()
      guard.stop()
      summary.stop()
      readiness.stop()
      await Promise.all([grpc.stop(graceMs), api.stop(graceMs)])
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
