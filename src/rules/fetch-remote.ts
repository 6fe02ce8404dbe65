/**
 * `http(s)://` rule repositories. Oathkeeper fetches them once at start; Portcullis polls them
 * (`reload.remote_interval`) with conditional requests, so an unchanged repository costs one 304:
 * - each repository's last good body is kept with its `ETag` and `Last-Modified`, sent back as
 *   `If-None-Match` / `If-Modified-Since`;
 * - a 200 whose body is byte-identical to the one kept (a server without validators) is "unchanged";
 * - any failure (transport error, timeout, non-200/304 status, body over `remote_max_bytes`) keeps the
 *   last good body and is reported as a problem; the rule set is not touched. At start-up, before
 *   any good body exists, the same failure is a load problem (the process does not start, as with
 *   an unreadable file).
 *
 * Calls go through the process's pooled `HttpClient` (deps.http) with their own deadline and body
 * cap. The bodies are parsed by `src/rules/load.ts` like files (JSON when the URL path ends in
 * `.json`, YAML otherwise), through the `RemoteSource` lookup.
 * @module
 */
import { createHash } from 'node:crypto'
import type { HttpClient } from '../http/client.js'
import { OutboundError } from '../http/errors.js'

/** What load.ts reads for an http(s) repository entry. */
export interface RemoteDocument {
  readonly url: string
  readonly text: string
}

/** The lookup load.ts is given: the last good body of a repository URL, if there is one. */
export interface RemoteSource {
  get(url: string): RemoteDocument | undefined
  /** Why `url` has no body (its last fetch failure), for load.ts's problem list. */
  problem(url: string): string | undefined
}

export interface RemoteOptions {
  /** Deadline of one fetch (ms). */
  readonly timeoutMs: number
  /** Body cap of one fetch (bytes). */
  readonly maxBytes: number
}

export interface RefreshResult {
  /** True when at least one repository's body changed (or appeared) since the last refresh. */
  readonly changed: boolean
  /** One line per repository that could not be fetched (its last good body, if any, is kept). */
  readonly problems: readonly string[]
  /** URLs fetched with a 304 / 200 / failure. */
  readonly notModified: number
  readonly fetched: number
  readonly failed: number
}

interface Entry {
  text: string
  digest: string
  etag: string | undefined
  lastModified: string | undefined
}

/** True for repository entries this module fetches. */
export function isRemote(entry: string): boolean {
  return /^https?:\/\//i.test(entry)
}

export class RemoteRepositories implements RemoteSource {
  readonly #http: Pick<HttpClient, 'request'>
  readonly #opts: RemoteOptions
  readonly #entries = new Map<string, Entry>()
  readonly #problems = new Map<string, string>()

  constructor(http: Pick<HttpClient, 'request'>, opts: RemoteOptions) {
    this.#http = http
    this.#opts = opts
  }

  get(url: string): RemoteDocument | undefined {
    const e = this.#entries.get(url)
    return e === undefined ? undefined : { url, text: e.text }
  }

  problem(url: string): string | undefined {
    return this.#problems.get(url) ?? (this.#entries.has(url) ? undefined : `access_rules.repositories: ${displayUrl(url)}: not fetched`)
  }

  /** URLs with a good body. */
  urls(): string[] {
    return [...this.#entries.keys()]
  }

  /** Forgets the bodies of URLs not in `repositories` (after a reload changed the list). */
  retainOnly(repositories: readonly string[]): void {
    const keep = new Set(repositories)
    for (const u of [...this.#entries.keys()]) if (!keep.has(u)) this.#entries.delete(u)
    for (const u of [...this.#problems.keys()]) if (!keep.has(u)) this.#problems.delete(u)
  }

  /**
   * Fetches every http(s) entry of `repositories` (the others are ignored) concurrently. Bodies of
   * URLs not listed are kept (see `retainOnly`): a rejected config reload must not lose them.
   */
  async refresh(repositories: readonly string[]): Promise<RefreshResult> {
    const urls = [...new Set(repositories.filter(isRemote))]
    const results = await Promise.all(
      urls.map(async (u) => {
        const r = await this.#fetch(u)
        if (r.kind === 'failed') this.#problems.set(u, r.problem)
        else this.#problems.delete(u)
        return r
      }),
    )
    const problems: string[] = []
    let changed = false
    let notModified = 0
    let fetched = 0
    let failed = 0
    for (const r of results) {
      if (r.kind === 'changed') changed = true
      if (r.kind === 'not_modified') notModified++
      else if (r.kind === 'failed') {
        failed++
        problems.push(r.problem)
      } else fetched++
    }
    return { changed, problems, notModified, fetched, failed }
  }

  async #fetch(url: string): Promise<{ kind: 'changed' | 'unchanged' | 'not_modified' } | { kind: 'failed'; problem: string }> {
    const prev = this.#entries.get(url)
    const headers: Record<string, string> = { accept: 'application/json, application/yaml, text/yaml, */*;q=0.5' }
    if (prev?.etag !== undefined) headers['if-none-match'] = prev.etag
    if (prev?.lastModified !== undefined) headers['if-modified-since'] = prev.lastModified
    const where = `access_rules.repositories: ${displayUrl(url)}`
    let res
    try {
      res = await this.#http.request({
        url: new URL(url),
        method: 'GET',
        headers,
        timeoutMs: this.#opts.timeoutMs,
        maxBytes: this.#opts.maxBytes,
      })
    } catch (err) {
      const why = err instanceof OutboundError ? `${err.kind}${err.code === undefined ? '' : ` (${err.code})`}` : (err as Error).message
      return { kind: 'failed', problem: `${where}: cannot fetch: ${why}` }
    }
    if (res.status === 304 && prev !== undefined) return { kind: 'not_modified' }
    if (res.status !== 200) return { kind: 'failed', problem: `${where}: cannot fetch: HTTP ${res.status}` }
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(res.body)
    } catch {
      return { kind: 'failed', problem: `${where}: the body is not UTF-8` }
    }
    const digest = createHash('sha256').update(res.body).digest('hex')
    const etag = res.headers['etag']
    const lastModified = res.headers['last-modified']
    this.#entries.set(url, { text, digest, etag, lastModified })
    return { kind: prev?.digest === digest ? 'unchanged' : 'changed' }
  }
}

/** A repository URL for messages and logs: no userinfo, no query (either may carry a secret). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return '(invalid URL)'
  }
}
