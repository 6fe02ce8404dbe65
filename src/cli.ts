#!/usr/bin/env node
/**
 * `portcullis serve [--config FILE]` and `portcullis validate [--config FILE]`.
 * The config file may also come from PORTCULLIS_CONFIG.
 * @module
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config/load.js'
import { createLogger } from './observability/logger.js'
import { defaultRegistry } from './pipeline/registry.js'
import { loadRuleSet, RuleSetError } from './rules/compile.js'
import { createDeps, disposeDeps, startPortcullis } from './main.js'

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
    const rs = loadRuleSet(loaded, defaultRegistry(), deps)
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
  let app
  try {
    app = await startPortcullis({ configFile, env: process.env })
  } catch (err) {
    return reportLoadError(err)
  }
  const { log } = app
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection'))
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'shutting down')
    void app.stop(5000).then(() => {
      log.info('stopped')
      log.flush()
      process.exit(0)
    })
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  return new Promise<number>(() => {}) // runs until a signal
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`portcullis: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
