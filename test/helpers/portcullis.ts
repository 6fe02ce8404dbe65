/**
 * Runs the built Portcullis CLI (`node dist/src/cli.js serve`) as a child process on an
 * ephemeral gRPC port, the way Envoy's sidecar would be run.
 * @module
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { REPO_ROOT } from './envoy.js'

/** The compiled CLI; `npm test` builds it before vitest runs. */
export const CLI_PATH = join(REPO_ROOT, 'dist', 'src', 'cli.js')

/** The example config served by `npm start`, docker-compose.yml and the end-to-end tests. */
export const DEFAULT_CONFIG_PATH = join(REPO_ROOT, 'portcullis.yaml')

export interface PortcullisProcess {
  readonly grpcPort: number
  /** Every stdout line so far (pino: one JSON object per line). */
  logs(): string[]
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<void>
}

const READY_MSG = 'grpc server listening'
const START_TIMEOUT_MS = 20_000

export async function startPortcullis(
  opts: { config?: string; env?: Record<string, string> } = {},
): Promise<PortcullisProcess> {
  if (!existsSync(CLI_PATH)) {
    throw new Error(`${CLI_PATH} does not exist: run \`npm run build\` first (\`npm test\` does it for you)`)
  }
  // Only the overrides a test asks for: an inherited PORTCULLIS_* variable would silently
  // change the config under test.
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('PORTCULLIS_')) env[k] = v
  }
  Object.assign(env, { PORTCULLIS_SERVE_GRPC_PORT: '0', PORTCULLIS_SERVE_PROMETHEUS_PORT: '0', PORTCULLIS_SERVE_API_PORT: '0' }, opts.env)

  const child = spawn(process.execPath, [CLI_PATH, 'serve', '--config', opts.config ?? DEFAULT_CONFIG_PATH], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stdout: string[] = []
  const stderr: string[] = []
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l))
  let spawnError: Error | undefined
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', (err) => {
      spawnError = err
      resolve()
    })
  })
  let running = true
  // Never leave an orphaned server behind if the test process dies without calling stop().
  const killOnExit = (): void => void child.kill('SIGKILL')
  process.once('exit', killOnExit)
  void exited.then(() => {
    running = false
    process.off('exit', killOnExit)
  })

  const grpcPort = await new Promise<number>((resolve, reject) => {
    const describe = (why: string): Error =>
      new Error(`Portcullis ${why}.\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`)
    const timer = setTimeout(() => reject(describe(`did not log "${READY_MSG}" within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout.push(line)
      const port = listeningPort(line)
      if (port !== undefined) {
        clearTimeout(timer)
        resolve(port)
      }
    })
    void exited.then(() => {
      clearTimeout(timer)
      const why = spawnError
        ? `could not be spawned: ${spawnError.message}`
        : `exited with code ${String(child.exitCode)} before listening`
      // Wait a tick so the last stderr lines are in the message.
      setImmediate(() => reject(describe(why)))
    })
  }).catch(async (err: unknown) => {
    if (running) child.kill('SIGKILL')
    await exited
    throw err
  })

  return {
    grpcPort,
    logs: () => [...stdout],
    async stop() {
      if (!running) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** The port of a `{"msg":"grpc server listening","port":N}` log line, else undefined. */
function listeningPort(line: string): number | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const entry = JSON.parse(line) as { msg?: unknown; port?: unknown }
    return entry.msg === READY_MSG && typeof entry.port === 'number' ? entry.port : undefined
  } catch {
    return undefined
  }
}
