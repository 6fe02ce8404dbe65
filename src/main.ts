/**
 * Composition root: config → logger → handler registry → rule set → gRPC server → signals.
 * @module
 */
import { loadConfig, type LoadedConfig } from './config/load.js'
import { createLogger, type Logger } from './observability/logger.js'
import { defaultRegistry, type Registry } from './pipeline/registry.js'
import { loadRuleSet, type RuleSet } from './rules/compile.js'
import { startGrpcServer, type GrpcServer, type RuleSetHolder } from './server/grpc.js'

export interface Portcullis {
  readonly loaded: LoadedConfig
  readonly grpc: GrpcServer
  readonly holder: RuleSetHolder
  readonly log: Logger
  stop(graceMs?: number): Promise<void>
}

export interface StartOptions {
  readonly configFile?: string | undefined
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Tests pass a logger writing to memory. */
  readonly log?: Logger
}

/** Loads config and rules (throwing ConfigError / RuleSetError) and starts serving. */
export async function startPortcullis(opts: StartOptions = {}): Promise<Portcullis> {
  const loaded = loadConfig({ file: opts.configFile, env: opts.env ?? {}, ...(opts.cwd ? { cwd: opts.cwd } : {}) })
  const log = opts.log ?? createLogger(loaded.config.log.level)
  const registry = defaultRegistry()
  const ruleSet = compileRules(loaded, registry, log)
  const holder: RuleSetHolder = { current: ruleSet }
  const g = loaded.config.serve.grpc
  const grpc = await startGrpcServer(holder, log, {
    host: g.host,
    port: g.port,
    maxReceiveMessageLength: g.max_receive_message_length,
    maxCheckDurationMs: g.max_check_duration_ms,
  })
  grpc.setServing(ruleSet.rules.length > 0)
  log.info({ rules: ruleSet.rules.length, files: ruleSet.files.length, strategy: loaded.config.access_rules.matching_strategy }, 'access rules loaded')
  if (ruleSet.rules.length === 0) log.warn('no access rules loaded: every Check is denied and health stays NOT_SERVING')
  return {
    loaded,
    grpc,
    holder,
    log,
    async stop(graceMs = 5000) {
      grpc.setServing(false)
      await grpc.stop(graceMs)
    },
  }
}

export function compileRules(loaded: LoadedConfig, registry: Registry, log: Logger): RuleSet {
  return loadRuleSet(loaded, registry, { log })
}
