/**
 * Loads the configuration: YAML or JSON file, then environment overrides, then the zod schema.
 * Every problem is reported with its key path; the result is deep-frozen.
 *
 * Environment overrides: every scalar or list key has a variable named `PORTCULLIS_` + its path in
 * upper case with `.` → `_` (e.g. `serve.grpc.port` → `PORTCULLIS_SERVE_GRPC_PORT`,
 * `access_rules.repositories` → `PORTCULLIS_ACCESS_RULES_REPOSITORIES`, comma-separated).
 * @module
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ConfigSchema, type Config } from './schema.js'

export const ENV_PREFIX = 'PORTCULLIS_'

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor(source: string, problems: readonly string[]) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export interface LoadedConfig {
  readonly config: Readonly<Config>
  /** Directory that relative paths in the config are resolved against. */
  readonly baseDir: string
  /** The file read, if any. */
  readonly file: string | undefined
}

/** Reads `file` (optional), applies `env` overrides and validates. Throws ConfigError. */
export function loadConfig(opts: { file?: string | undefined; env?: NodeJS.ProcessEnv; cwd?: string }): LoadedConfig {
  const cwd = opts.cwd ?? process.cwd()
  const env = opts.env ?? {}
  const file = opts.file === undefined ? undefined : resolve(cwd, opts.file)
  let raw: unknown = {}
  if (file !== undefined) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(file, [`cannot read file: ${(err as Error).message}`])
    }
    try {
      raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true }) ?? {}
    } catch (err) {
      throw new ConfigError(file, [`not valid YAML or JSON: ${(err as Error).message}`])
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(file, ['the top level must be a mapping of keys'])
    }
  }
  const { value, problems } = applyEnv(raw as Record<string, unknown>, env)
  const parsed = ConfigSchema.safeParse(value)
  const source = file ?? 'defaults'
  if (!parsed.success) throw new ConfigError(source, [...problems, ...formatIssues(parsed.error)])
  if (problems.length > 0) throw new ConfigError(source, problems)
  const config = withDefaultHandlers(parsed.data)
  return { config: deepFreeze(config), baseDir: file === undefined ? cwd : dirname(file), file }
}

/** Oathkeeper enables the `json` error handler by default; every other handler is off. */
function withDefaultHandlers(c: Config): Config {
  if (c.errors.handlers['json'] !== undefined) return c
  return { ...c, errors: { ...c.errors, handlers: { ...c.errors.handlers, json: { enabled: true, config: {} } } } }
}

/** Formats zod issues as `path.to.key: message`. */
export function formatIssues(error: z.ZodError, prefix = ''): string[] {
  return error.issues.map((i) => {
    const path = joinPath(prefix, i.path)
    let msg = i.message
    if (i.code === 'unrecognized_keys') msg = `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`
    return `${path || '(top level)'}: ${msg}`
  })
}

export function joinPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else out += out === '' ? String(p) : `.${String(p)}`
  }
  return out
}

/** The scalar/list keys that can be overridden from the environment, with their kind. */
type LeafKind = 'string' | 'number' | 'boolean' | 'list'
const ENV_LEAVES: readonly (readonly [path: readonly string[], kind: LeafKind])[] = [
  [['serve', 'api', 'host'], 'string'],
  [['serve', 'api', 'port'], 'number'],
  [['serve', 'api', 'trusted_proxies'], 'list'],
  [['serve', 'api', 'max_check_duration_ms'], 'number'],
  [['serve', 'grpc', 'host'], 'string'],
  [['serve', 'grpc', 'port'], 'number'],
  [['serve', 'grpc', 'max_receive_message_length'], 'number'],
  [['serve', 'grpc', 'max_check_duration_ms'], 'number'],
  [['serve', 'prometheus', 'enabled'], 'boolean'],
  [['serve', 'prometheus', 'host'], 'string'],
  [['serve', 'prometheus', 'port'], 'number'],
  [['serve', 'prometheus', 'metrics_path'], 'string'],
  [['serve', 'shutdown', 'drain'], 'string'],
  [['serve', 'shutdown', 'grace'], 'string'],
  [['serve', 'workers'], 'number'],
  [['reload', 'enabled'], 'boolean'],
  [['memory_guard', 'enabled'], 'boolean'],
  [['memory_guard', 'soft_heap_bytes'], 'number'],
  [['memory_guard', 'hard_heap_bytes'], 'number'],
  [['memory_guard', 'soft_rss_bytes'], 'number'],
  [['memory_guard', 'hard_rss_bytes'], 'number'],
  [['access_rules', 'repositories'], 'list'],
  [['cache', 'max_bytes'], 'number'],
  [['outbound', 'timeout'], 'string'],
  [['outbound', 'connect_timeout'], 'string'],
  [['outbound', 'max_connections_per_origin'], 'number'],
  [['access_rules', 'matching_strategy'], 'string'],
  [['errors', 'fallback'], 'list'],
  [['log', 'level'], 'string'],
  [['log', 'format'], 'string'],
]

/** Name of the environment variable for a key path. */
export function envName(path: readonly string[]): string {
  return ENV_PREFIX + path.join('_').toUpperCase()
}

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): { value: Record<string, unknown>; problems: string[] } {
  const value = structuredClone(raw)
  const problems: string[] = []
  for (const [path, kind] of ENV_LEAVES) {
    const name = envName(path)
    const text = env[name]
    if (text === undefined) continue
    let v: unknown = text
    if (kind === 'number') {
      v = text.trim() === '' ? NaN : Number(text)
      if (!Number.isFinite(v)) problems.push(`${path.join('.')}: environment variable ${name}="${text}" is not a number`)
    } else if (kind === 'boolean') {
      if (text !== 'true' && text !== 'false') problems.push(`${path.join('.')}: environment variable ${name} must be true or false`)
      v = text === 'true'
    } else if (kind === 'list') {
      v = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
    }
    let node: Record<string, unknown> = value
    for (const key of path.slice(0, -1)) {
      const next = node[key]
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    node[path[path.length - 1]!] = v
  }
  return { value, problems }
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}
