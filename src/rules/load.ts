/**
 * Reads rule repositories (`access_rules.repositories`): files or directories given as paths or
 * `file://` URLs, each holding a JSON or YAML array of rules. A directory contributes its
 * `*.json`, `*.yaml` and `*.yml` files, sorted, skipping dot-entries (so a Kubernetes ConfigMap
 * mount, with its `..data` links, is read once). Every problem is collected, none stops the scan.
 * @module
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { displayUrl, isRemote, type RemoteSource } from './fetch-remote.js'

/** One rule as found in a file, before validation. */
export interface SourcedRule {
  readonly file: string
  readonly index: number
  readonly raw: unknown
}

export interface ReadResult {
  readonly rules: readonly SourcedRule[]
  readonly problems: readonly string[]
  readonly files: readonly string[]
}

const RULE_FILE = /\.(json|ya?ml)$/i

/** Resolves a repository entry to a local path. Unsupported schemes are reported, not fetched. */
export function repositoryPath(entry: string, baseDir: string): { path: string } | { problem: string } {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    if (!entry.toLowerCase().startsWith('file://')) {
      return { problem: `${entry}: only file paths, file:// and http(s):// URLs are supported` }
    }
    // file://./rules (relative, Oathkeeper style) or file:///abs/path
    const rest = entry.slice('file://'.length)
    if (rest.startsWith('/')) return { path: fileURLToPath(entry) }
    return { path: resolve(baseDir, decodeURIComponent(rest)) }
  }
  return { path: isAbsolute(entry) ? entry : resolve(baseDir, entry) }
}

/**
 * `remote` holds the fetched bodies of http(s) repositories (src/rules/fetch-remote.ts); without it
 * an http(s) entry is reported as unsupported.
 */
export function readRepositories(entries: readonly string[], baseDir: string, remote?: RemoteSource): ReadResult {
  const rules: SourcedRule[] = []
  const problems: string[] = []
  const files: string[] = []
  for (const entry of entries) {
    if (remote !== undefined && isRemote(entry)) {
      const doc = remote.get(entry)
      if (doc === undefined) {
        problems.push(remote.problem(entry) ?? `access_rules.repositories: ${displayUrl(entry)}: not fetched`)
        continue
      }
      const name = displayUrl(entry) // no userinfo or query in messages
      files.push(name)
      parseRules(name, /\.json$/i.test(new URL(entry).pathname), doc.text, rules, problems)
      continue
    }
    const r = repositoryPath(entry, baseDir)
    if ('problem' in r) {
      problems.push(`access_rules.repositories: ${r.problem}`)
      continue
    }
    let isDir: boolean
    try {
      isDir = statSync(r.path).isDirectory()
    } catch (err) {
      problems.push(`access_rules.repositories: ${entry}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (${r.path})`)
      continue
    }
    const list = isDir
      ? readdirSync(r.path)
          .filter((n) => !n.startsWith('.') && RULE_FILE.test(n))
          .sort()
          .map((n) => join(r.path, n))
      : [r.path]
    for (const file of list) {
      files.push(file)
      readRuleFile(file, rules, problems)
    }
  }
  return { rules, problems, files }
}

function readRuleFile(file: string, out: SourcedRule[], problems: string[]): void {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    problems.push(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    return
  }
  parseRules(file, /\.json$/i.test(file), text, out, problems)
}

/** Parses one repository's text (JSON or YAML) into `out`; `file` names it in problems. */
function parseRules(file: string, json: boolean, text: string, out: SourcedRule[], problems: string[]): void {
  let parsed: unknown
  try {
    parsed = json ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true })
  } catch (err) {
    problems.push(`${file}: cannot parse: ${(err as Error).message.split('\n')[0]}`)
    return
  }
  if (parsed === null || parsed === undefined) return // an empty file holds no rules
  if (!Array.isArray(parsed)) {
    problems.push(`${file}: a rule file must hold an array of rules`)
    return
  }
  parsed.forEach((raw, index) => out.push({ file, index, raw }))
}
