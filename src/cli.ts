#!/usr/bin/env node
/**
 * `portcullis serve [--config FILE]` and `portcullis validate [--config FILE]`.
 * The config file may also come from PORTCULLIS_CONFIG.
 * @module
 */
// First: V8 settings that must be in place before the hot code is compiled.
import './v8-flags.js'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config/load.js'
import { createLogger } from './observability/logger.js'
import { defaultRegistry } from './pipeline/registry.js'
import { loadRuleSet, RuleSetError } from './rules/compile.js'
import { createDeps, disposeDeps, startPortcullis } from './main.js'
import { isRemote, RemoteRepositories } from './rules/fetch-remote.js'
import { startLifecycle } from './server/lifecycle.js'
import { announceWorker, ClusterConfigError, configuredWorkers, runPrimary, workerBindings, workerSignals, workerSlot } from './cluster.js'

const USAGE = `usage: portcullis <serve|validate> [--config FILE]

  serve      start the Envoy ext_authz gRPC server
  validate   load config and rules, print every problem, exit 1 on any

  --config, -c FILE   YAML or JSON config (default: $PORTCULLIS_CONFIG, else built-in defaults)
`

async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    })
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const [command, ...rest] = parsed.positionals
  if (parsed.values.help || command === undefined || rest.length > 0) {
    process.stderr.write(USAGE)
    return parsed.values.help ? 0 : 2
  }
  const configFile = parsed.values.config ?? process.env['PORTCULLIS_CONFIG']
  switch (command) {
    case 'validate':
      return validate(configFile)
    case 'serve':
      return serve(configFile)
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`)
      return 2
  }
}

async function validate(configFile: string | undefined): Promise<number> {
  let deps
  try {
    const loaded = loadConfig({ file: configFile, env: process.env })
    deps = createDeps(loaded, createLogger('silent'))
    const reload = loaded.config.reload
    const remote = new RemoteRepositories(deps.http, { timeoutMs: reload.remote_timeout, maxBytes: reload.remote_max_bytes })
    const repositories = loaded.config.access_rules.repositories
    if (repositories.some(isRemote)) await remote.refresh(repositories)
    const rs = loadRuleSet(loaded, defaultRegistry(), deps, { remote })
    process.stdout.write(`ok: ${rs.rules.length} rule(s) from ${rs.files.length} file(s)\n`)
    return 0
  } catch (err) {
    return reportLoadError(err)
  } finally {
    if (deps) await disposeDeps(deps)
  }
}

function reportLoadError(err: unknown): number {
  if (err instanceof ConfigError || err instanceof RuleSetError) {
    process.stderr.write(`${err.message}\n`)
    return 1
  }
  throw err
}

async function serve(configFile: string | undefined): Promise<number> {
  // `serve.workers` > 1: this process becomes the cluster primary (src/cluster.ts); each worker
  // runs this same command and takes the single-process path below, with a worker-tagged logger.
  const slot = workerSlot()
  let workerLog
  try {
    const loaded = loadConfig({ file: configFile, env: process.env })
    const workers = slot === undefined ? configuredWorkers(loaded.config) : 1
    if (workers > 1) {
      const c = loaded.config
      return await runPrimary({
        workers,
        cacheMaxBytes: c.cache.max_bytes,
        prometheus: c.serve.prometheus,
        shutdown: c.serve.shutdown,
        log: createLogger(c.log.level).child({ role: 'primary', pid: process.pid }),
      })
    }
    if (slot !== undefined) workerLog = createLogger(loaded.config.log.level).child(workerBindings(slot))
  } catch (err) {
    if (err instanceof ClusterConfigError) {
      process.stderr.write(`${err.message}\n`)
      return 1
    }
    return reportLoadError(err)
  }
  const signals = slot === undefined ? process : workerSignals()
  let app
  try {
    app = await startPortcullis({ configFile, env: process.env, ...(workerLog ? { log: workerLog } : {}) })
  } catch (err) {
    return reportLoadError(err)
  }
  const { log } = app
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection'))
  const shutdown = app.loaded.config.serve.shutdown
  // SIGTERM/SIGINT: not ready at once, drain, stop accepting, grace, close, exit 0; a second: exit 1.
  startLifecycle({
    drainMs: shutdown.drain,
    graceMs: shutdown.grace,
    readiness: app.readiness,
    inflight: app.inflight,
    servers: [
      { name: 'grpc', stop: (ms) => app.grpc.stop(ms) },
      app.api,
    ],
    closers: [
      { name: 'watcher', close: () => app.watcher.stop() },
      { name: 'memory_guard', close: () => app.guard.stop() },
      { name: 'summary', close: () => app.summary.stop() },
      { name: 'metrics', close: async () => { await app.metricsServer?.close(); app.metrics.close() } },
      { name: 'deps', close: () => disposeDeps(app.deps) },
    ],
    log,
    process: signals,
  })
  if (slot !== undefined) announceWorker(slot, app.metrics.registry)
  return new Promise<number>(() => {}) // runs until a signal
}

// A cluster worker's IPC channel keeps it alive: it has to exit explicitly when `main` ends.
const exitNow = workerSlot() !== undefined
main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code
    if (exitNow) process.exit()
  },
  (err: unknown) => {
    process.stderr.write(`portcullis: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
    if (exitNow) process.exit()
  },
)
