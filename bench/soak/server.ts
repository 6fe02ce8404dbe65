/**
 * The soak's server process: the real Portcullis (`startPortcullis`, src/main.ts, the same
 * composition root as `portcullis serve`) plus the periodic summary line
 * (src/observability/summary.ts), which is where the soak reads heap, GC and cache figures.
 * Run by soak.ts as `node --max-old-space-size=<cap> dist/bench/soak/server.js --config <file>
 * [--summary-interval <ms>]`.
 *
 * The summary and the `soak server ready {port, pid}` line are logged at `info` through a child of
 * the process logger (one stdout stream, so lines never interleave), whatever `log.level` says: the
 * soak config sets `warn` so per-decision lines do not compete for the CPU unless asked.
 * SIGTERM/SIGINT stop the server (2 s grace) and exit 0; so does losing the parent process.
 * @module
 */
import { parseArgs } from 'node:util'
import { startPortcullis } from '../../src/main.js'
import { startSummary } from '../../src/observability/summary.js'

export const READY_MSG = 'soak server ready'

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string' }, 'summary-interval': { type: 'string', default: '1000' } },
  })
  if (values.config === undefined) throw new Error('--config is required')
  const app = await startPortcullis({ configFile: values.config, env: process.env })
  const info = app.log.child({ component: 'soak' })
  info.level = 'info'
  const summary = startSummary({ log: info, caches: app.deps.caches, intervalMs: Number(values['summary-interval']) })
  info.info({ port: app.grpc.port, pid: process.pid }, READY_MSG)

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    summary.stop()
    void app.stop(2000).then(() => {
      app.log.flush()
      process.exit(0)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // Never outlive the orchestrator: it has no IPC channel to us, so watch for being re-parented.
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) stop()
  }, 1000).unref()
}

main().catch((err: unknown) => {
  process.stderr.write(`soak server: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
