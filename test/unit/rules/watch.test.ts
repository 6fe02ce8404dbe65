/**
 * The rule watcher against the real filesystem (inotify through fs.watch): in-place writes,
 * rename-over, Kubernetes ConfigMap `..data` symlink swaps, deleted and re-created files and
 * directories, the config file, and http(s) repositories polled with ETag / If-Modified-Since.
 * The reloader is a fake that records what it was asked to do, so each test waits for the call
 * (event-driven, bounded) instead of sleeping.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { loadConfig, type LoadedConfig } from '../../../src/config/load.js'
import { HttpClient, OutboundConfigSchema } from '../../../src/http/client.js'
import { RemoteRepositories } from '../../../src/rules/fetch-remote.js'
import type { ReloadOutcome } from '../../../src/rules/reload.js'
import { digestRepositories, ReloadConfigSchema, RuleWatcher, watchedDirectories, type ReloadTarget } from '../../../src/rules/watch.js'
import { createLogger } from '../../../src/observability/logger.js'
import { startStub, type Stub } from '../../helpers/stub-server.js'

const WAIT_MS = 5000
const DEBOUNCE = '40ms'

interface Call {
  readonly kind: 'rules' | 'config'
  readonly trigger: string
}

/** Records reload requests; `reloadConfig` re-reads the file like the real one. */
class FakeReloader implements ReloadTarget {
  loaded: LoadedConfig
  readonly calls: Call[] = []
  #waiters: ((c: Call) => void)[] = []
  constructor(loaded: LoadedConfig) {
    this.loaded = loaded
  }
  reloadRules(trigger: string): ReloadOutcome {
    return this.#record({ kind: 'rules', trigger })
  }
  reloadConfig(trigger: string): ReloadOutcome {
    const next = this.peekConfig()
    if (next) this.loaded = next
    return this.#record({ kind: 'config', trigger })
  }
  peekConfig(): LoadedConfig | undefined {
    try {
      return loadConfig({ file: this.loaded.file, env: {} })
    } catch {
      return undefined
    }
  }
  /** The next call (or the first one not yet consumed). */
  next(timeoutMs = WAIT_MS): Promise<Call> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reload within ${timeoutMs} ms (calls: ${JSON.stringify(this.calls)})`)), timeoutMs)
      this.#waiters.push((c) => {
        clearTimeout(t)
        resolve(c)
      })
    })
  }
  #record(c: Call): ReloadOutcome {
    this.calls.push(c)
    const ws = this.#waiters
    this.#waiters = []
    for (const w of ws) w(c)
    return { ok: true, kind: c.kind, trigger: c.trigger, rules: 1, swapped: true, restartNeeded: [], durationMs: 0, cachesReleased: [] }
  }
}

const silent = createLogger('silent')
const rules = (id: string) => stringify([{ id, match: { url: 'https://a/<.*>', methods: ['GET'] }, authorizer: { handler: 'allow' } }])

let dir: string
let watcher: RuleWatcher | undefined
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-watch-'))
})
afterEach(() => {
  watcher?.stop()
  watcher = undefined
  rmSync(dir, { recursive: true, force: true })
})

function setup(repositories: string[], reload: Record<string, unknown> = {}, remote?: RemoteRepositories): FakeReloader {
  writeFileSync(join(dir, 'portcullis.yaml'), stringify({ access_rules: { repositories } }))
  const r = new FakeReloader(loadConfig({ file: join(dir, 'portcullis.yaml'), env: {} }))
  watcher = new RuleWatcher({
    reloader: r,
    config: ReloadConfigSchema.parse({ debounce: DEBOUNCE, poll_interval: '0', ...reload }),
    log: silent,
    ...(remote ? { remote } : {}),
  })
  watcher.start()
  return r
}

/** kubelet's AtomicWriter: new timestamped dir, `..data_tmp` link, renamed over `..data`. */
function configMap(mount: string, version: string, files: Record<string, string>, first: boolean): void {
  const ts = `..2024_01_01_00_00_00.${version}`
  mkdirSync(join(mount, ts), { recursive: true })
  for (const [n, text] of Object.entries(files)) writeFileSync(join(mount, ts, n), text)
  symlinkSync(ts, join(mount, '..data_tmp'))
  renameSync(join(mount, '..data_tmp'), join(mount, '..data'))
  if (first) for (const n of Object.keys(files)) symlinkSync(join('..data', n), join(mount, n))
}

describe('config', () => {
  it('defaults, Go durations in ms, "0" turns the periodic checks off, bounds', () => {
    expect(ReloadConfigSchema.parse({})).toEqual({
      enabled: true,
      debounce: 200,
      poll_interval: 10_000,
      config_file: true,
      remote_interval: 30_000,
      remote_timeout: 5000,
      remote_max_bytes: 16 * 1024 * 1024,
    })
    expect(ReloadConfigSchema.parse({ poll_interval: '0', remote_interval: '0' })).toMatchObject({ poll_interval: 0, remote_interval: 0 })
    for (const bad of [{ debounce: '2m' }, { poll_interval: '5ms' }, { remote_timeout: '0' }, { remote_max_bytes: 10 }, { debounce: '5' }, { nope: 1 }]) {
      expect(ReloadConfigSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false)
    }
  })
})

describe('local files', () => {
  it('reloads once after a burst of in-place writes (debounced)', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'])
    const next = r.next()
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'rules.yaml'), rules(`b${i}`))
    expect(await next).toEqual({ kind: 'rules', trigger: 'watch' })
    await watcher!.check() // a check that finds nothing new does not reload again
    expect(r.calls).toHaveLength(1)
  })

  it('detects a temporary file renamed over the rule file (new inode)', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['file://./rules.yaml'])
    const next = r.next()
    writeFileSync(join(dir, '.rules.yaml.tmp'), rules('b'))
    renameSync(join(dir, '.rules.yaml.tmp'), join(dir, 'rules.yaml'))
    expect((await next).kind).toBe('rules')
    // The watch survived the rename: a second rename-over is seen too.
    const again = r.next()
    writeFileSync(join(dir, '.rules.yaml.tmp'), rules('c'))
    renameSync(join(dir, '.rules.yaml.tmp'), join(dir, 'rules.yaml'))
    expect((await again).kind).toBe('rules')
  })

  it('does not reload for unrelated files in a watched directory', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'])
    writeFileSync(join(dir, 'notes.txt'), 'hello')
    await watcher!.check()
    expect(r.calls).toEqual([])
  })

  it('reports a deleted file (the reload fails and keeps the last good set) and its re-creation', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'])
    const deleted = r.next()
    unlinkSync(join(dir, 'rules.yaml'))
    expect((await deleted).kind).toBe('rules')
    const recreated = r.next()
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    expect((await recreated).kind).toBe('rules')
    expect(r.calls).toHaveLength(2)
  })

  it('watches a directory repository: added, changed and removed files', async () => {
    mkdirSync(join(dir, 'rules'))
    writeFileSync(join(dir, 'rules', 'a.yaml'), rules('a'))
    const r = setup(['rules'])
    let next = r.next()
    writeFileSync(join(dir, 'rules', 'b.json'), JSON.stringify([]))
    await next
    next = r.next()
    unlinkSync(join(dir, 'rules', 'a.yaml'))
    await next
    expect(r.calls.map((c) => c.kind)).toEqual(['rules', 'rules'])
  })

  it('re-establishes the watch when the repository directory is deleted and re-created', async () => {
    mkdirSync(join(dir, 'rules'))
    writeFileSync(join(dir, 'rules', 'a.yaml'), rules('a'))
    const r = setup(['rules'])
    let next = r.next()
    rmSync(join(dir, 'rules'), { recursive: true })
    await next // seen through the parent directory's watch
    next = r.next()
    mkdirSync(join(dir, 'rules'))
    writeFileSync(join(dir, 'rules', 'a.yaml'), rules('a2'))
    await next
    // The new directory (a new inode) is watched: a later change inside it is seen.
    expect(watcher!.stats().watchedDirs).toContain(join(dir, 'rules'))
    next = r.next()
    writeFileSync(join(dir, 'rules', 'a.yaml'), rules('a3'))
    await next
  })

  it('the periodic check finds changes even without events', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'], { poll_interval: '30ms', debounce: '1m' })
    const next = r.next()
    writeFileSync(join(dir, 'rules.yaml'), rules('b'))
    expect(await next).toEqual({ kind: 'rules', trigger: 'poll' })
  })
})

describe('Kubernetes ConfigMap volume', () => {
  it('detects the ..data symlink swap for a directory repository', async () => {
    const mount = join(dir, 'cm')
    mkdirSync(mount)
    configMap(mount, '1', { 'rules.yaml': rules('v1') }, true)
    const r = setup([mount])
    const before = digestRepositories(r.loaded)
    const next = r.next()
    configMap(mount, '2', { 'rules.yaml': rules('v2') }, false)
    rmSync(join(mount, '..2024_01_01_00_00_00.1'), { recursive: true })
    expect((await next).kind).toBe('rules')
    expect(digestRepositories(r.loaded)).not.toBe(before)
    // And the next swap too.
    const again = r.next()
    configMap(mount, '3', { 'rules.yaml': rules('v3') }, false)
    expect((await again).kind).toBe('rules')
  })

  it('detects the swap for a file repository that is a symlink into ..data', async () => {
    const mount = join(dir, 'cm')
    mkdirSync(mount)
    configMap(mount, '1', { 'rules.yaml': rules('v1') }, true)
    const r = setup([join(mount, 'rules.yaml')])
    expect(watchedDirectories(r.loaded, false)).toContain(mount)
    const next = r.next()
    configMap(mount, '2', { 'rules.yaml': rules('v2') }, false)
    expect((await next).kind).toBe('rules')
  })

  it('a swap that leaves the bytes unchanged reloads nothing', async () => {
    const mount = join(dir, 'cm')
    mkdirSync(mount)
    configMap(mount, '1', { 'rules.yaml': rules('same') }, true)
    const r = setup([mount])
    configMap(mount, '2', { 'rules.yaml': rules('same') }, false)
    await watcher!.check()
    expect(r.calls).toEqual([])
  })
})

describe('configuration file', () => {
  it('a change to the config file reloads the config, not just the rules', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'])
    const next = r.next()
    writeFileSync(join(dir, 'portcullis.yaml'), stringify({ access_rules: { repositories: ['rules.yaml'], matching_strategy: 'glob' } }))
    expect(await next).toEqual({ kind: 'config', trigger: 'watch' })
    expect(r.loaded.config.access_rules.matching_strategy).toBe('glob')
  })

  it('follows repositories added by a config reload', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    mkdirSync(join(dir, 'more'))
    const r = setup(['rules.yaml'])
    let next = r.next()
    writeFileSync(join(dir, 'portcullis.yaml'), stringify({ access_rules: { repositories: ['rules.yaml', 'more'] } }))
    expect((await next).kind).toBe('config')
    next = r.next()
    writeFileSync(join(dir, 'more', 'x.yaml'), rules('x'))
    expect(await next).toEqual({ kind: 'rules', trigger: 'watch' })
  })

  it('is not watched with reload.config_file: false', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'], { config_file: false })
    writeFileSync(join(dir, 'portcullis.yaml'), stringify({ access_rules: { repositories: ['rules.yaml'], matching_strategy: 'glob' } }))
    await watcher!.check()
    expect(r.calls).toEqual([])
  })

  it('does nothing with reload.enabled: false', async () => {
    writeFileSync(join(dir, 'rules.yaml'), rules('a'))
    const r = setup(['rules.yaml'], { enabled: false })
    expect(watcher!.stats().watchedDirs).toEqual([])
    writeFileSync(join(dir, 'rules.yaml'), rules('b'))
    expect(r.calls).toEqual([])
  })
})

describe('http(s) repositories', () => {
  let stub: Stub
  let http: HttpClient
  let body = rules('r1')
  let etag = '"1"'
  let failWith: number | undefined
  const seen: { ifNoneMatch: string | undefined; ifModifiedSince: string | undefined }[] = []
  beforeEach(async () => {
    body = rules('r1')
    etag = '"1"'
    failWith = undefined
    seen.length = 0
    stub = await startStub({
      kind: 'custom',
      handle: (req, res) => {
        const inm = req.headers['if-none-match'] as string | undefined
        seen.push({ ifNoneMatch: inm, ifModifiedSince: req.headers['if-modified-since'] as string | undefined })
        if (failWith !== undefined) {
          res.writeHead(failWith).end('nope')
          return
        }
        if (inm === etag) {
          res.writeHead(304, { etag }).end()
          return
        }
        res.writeHead(200, { 'content-type': 'application/yaml', etag, 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }).end(body)
      },
    })
    http = new HttpClient(OutboundConfigSchema.parse({}))
  })
  afterEach(async () => {
    await http.close()
    await stub.close()
  })

  it('polls with If-None-Match / If-Modified-Since, reloads only on a changed body, keeps the last good copy on errors', async () => {
    const url = stub.url('/rules.yaml')
    const remote = new RemoteRepositories(http, { timeoutMs: 2000, maxBytes: 1 << 20 })
    const first = await remote.refresh([url])
    expect(first).toMatchObject({ changed: true, fetched: 1, failed: 0 })
    expect(remote.get(url)?.text).toBe(body)
    const r = setup([url], { remote_interval: '1h' }, remote)

    await watcher!.pollRemote()
    expect(seen.at(-1)).toEqual({ ifNoneMatch: '"1"', ifModifiedSince: 'Mon, 01 Jan 2024 00:00:00 GMT' })
    expect(r.calls).toEqual([]) // 304
    expect(watcher!.stats()).toMatchObject({ remoteNotModified: 1, remoteFailures: 0 })

    body = rules('r2')
    etag = '"2"'
    await watcher!.pollRemote()
    expect(r.calls).toEqual([{ kind: 'rules', trigger: 'remote' }])
    expect(remote.get(url)?.text).toBe(rules('r2'))

    failWith = 503
    await watcher!.pollRemote()
    expect(r.calls).toHaveLength(1)
    expect(watcher!.stats().remoteFailures).toBe(1)
    expect(remote.get(url)?.text).toBe(rules('r2')) // last good kept
    expect(remote.problem(url)).toMatch(/HTTP 503/)

    failWith = undefined
    etag = '"3"' // new validator, same bytes: not a change
    await watcher!.pollRemote()
    expect(r.calls).toHaveLength(1)
    expect(remote.problem(url)).toBeUndefined()
  })

  it('polls on its own timer', async () => {
    const url = stub.url('/rules.yaml')
    const remote = new RemoteRepositories(http, { timeoutMs: 2000, maxBytes: 1 << 20 })
    await remote.refresh([url])
    body = rules('r2')
    etag = '"2"'
    const r = setup([url], { remote_interval: '30ms' }, remote)
    expect(await r.next()).toEqual({ kind: 'rules', trigger: 'remote' })
  })

  it('a first fetch that fails is a problem naming the URL without its query', async () => {
    failWith = 500
    const url = `${stub.url('/rules.json')}?token=secret`
    const remote = new RemoteRepositories(http, { timeoutMs: 2000, maxBytes: 1 << 20 })
    const r = await remote.refresh([url])
    expect(r).toMatchObject({ changed: false, failed: 1 })
    expect(remote.get(url)).toBeUndefined()
    expect(remote.problem(url)).toBe(`access_rules.repositories: ${stub.url('/rules.json')}: cannot fetch: HTTP 500`)
    expect(remote.problem(url)).not.toContain('secret')
  })

  it('a body over remote_max_bytes is rejected', async () => {
    body = 'x'.repeat(4096)
    const url = stub.url('/rules.yaml')
    const remote = new RemoteRepositories(http, { timeoutMs: 2000, maxBytes: 1024 })
    const r = await remote.refresh([url])
    expect(r.failed).toBe(1)
    expect(remote.problem(url)).toMatch(/too_large/)
  })
})
