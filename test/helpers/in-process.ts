/**
 * Starts Portcullis in this process on an ephemeral port with a config and rules written to a
 * temporary folder, logging into memory so tests can read the lines.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { createLogger } from '../../src/observability/logger.js'
import { startPortcullis, type Portcullis } from '../../src/main.js'

export interface Started {
  readonly app: Portcullis
  readonly port: number
  readonly dir: string
  readonly logs: string[]
  stop(): Promise<void>
}

export async function startWith(config: Record<string, unknown>, rules: unknown[]): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-it-'))
  writeFileSync(join(dir, 'rules.yaml'), stringify(rules))
  const cfg = {
    ...config,
    serve: {
      ...((config['serve'] as object | undefined) ?? {}),
      grpc: { ...(((config['serve'] as { grpc?: object } | undefined)?.grpc) ?? {}), host: '127.0.0.1', port: 0 },
      // Never the default 9000: test files run in parallel.
      prometheus: { port: 0, ...(((config['serve'] as { prometheus?: object } | undefined)?.prometheus) ?? {}) },
      api: { port: 0, ...(((config['serve'] as { api?: object } | undefined)?.api) ?? {}) },
    },
    access_rules: { repositories: ['file://./rules.yaml'], ...((config['access_rules'] as object | undefined) ?? {}) },
  }
  writeFileSync(join(dir, 'portcullis.yaml'), stringify(cfg))
  const logs: string[] = []
  const log = createLogger('info', { write: (s: string) => void logs.push(s) })
  const app = await startPortcullis({ configFile: join(dir, 'portcullis.yaml'), env: {}, log })
  return {
    app,
    port: app.grpc.port,
    dir,
    logs,
    async stop() {
      await app.stop(1000)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Every built-in handler enabled, as a config fragment. */
export const ALL_HANDLERS = {
  authenticators: { anonymous: { enabled: true }, noop: { enabled: true }, unauthorized: { enabled: true } },
  authorizers: { allow: { enabled: true }, deny: { enabled: true } },
  mutators: { noop: { enabled: true }, header: { enabled: true, config: { headers: {} } } },
  errors: {
    fallback: ['json'],
    handlers: {
      json: { enabled: true, config: { verbose: true } },
      www_authenticate: { enabled: true },
      redirect: { enabled: true, config: { to: 'https://login.example.com/' } },
    },
  },
}
