/**
 * Notices changes to the rule repositories and the configuration file, and asks the `Reloader` to
 * rebuild (all-or-nothing, see reload.ts).
 *
 * Local repositories (files, directories, `file://` URLs) are watched by **directory**, never by
 * inode, because the ways files get replaced in production replace inodes:
 * - editors and deploy tools write a temporary file and rename it over the old one;
 * - a Kubernetes ConfigMap volume holds `rules.yaml -> ..data/rules.yaml` and
 *   `..data -> ..2024_05_01_12_00_00.123`; an update writes a new timestamped directory, points a
 *   new `..data_tmp` link at it and renames it over `..data` (kubelet's AtomicWriter).
 * So for each repository the watcher watches the directory that contains it (and the repository
 * itself when it is a directory, and the directory a symlinked file resolves to). Any event in those
 * directories schedules a check, debounced (`reload.debounce`, trailing, bounded by 10 × debounce
 * under a continuous stream of events). A check computes a digest of what `load.ts` would read (the
 * listed files' names and bytes, or the error reading them) and reloads only when it changed, so
 * unrelated files in a watched directory cost one read and no reload. Watches are re-established
 * after every check (a replaced or re-created directory is a new inode), and a periodic check
 * (`reload.poll_interval`) catches whatever events are lost (network filesystems, inotify limits).
 *
 * A deleted rule file is a change: the reload fails (the file cannot be read), the last good set
 * keeps serving, and the failure is logged and counted; re-creating the file reloads.
 *
 * The configuration file, when there is one and `reload.config_file` is on, is watched the same way;
 * a change reloads it (which rebuilds the rules if a reloadable part changed).
 *
 * `http(s)` repositories are polled every `reload.remote_interval` with conditional requests
 * (fetch-remote.ts); a changed body reloads the rules. Checks never overlap: they run one after
 * another, and events arriving during a check schedule one more.
 * @module
 */
import { createHash, type Hash } from 'node:crypto'
import { readdirSync, readFileSync, realpathSync, statSync, watch, type FSWatcher } from 'node:fs'
import { dirname, join } from 'node:path'
import { z } from 'zod'
import type { LoadedConfig } from '../config/load.js'
import { DurationSchema } from '../config/duration.js'
import type { Logger } from '../observability/logger.js'
import { isRemote, type RemoteRepositories } from './fetch-remote.js'
import { repositoryPath } from './load.js'
import type { ReloadOutcome } from './reload.js'

const MiB = 1024 * 1024

/** A Go duration in ms within [minMs, maxMs]; with `orZero`, "0" (off) is allowed too. */
function duration(minMs: number, maxMs: number, orZero = false) {
  return DurationSchema.pipe(
    z.number().refine((v) => (orZero && v === 0) || (v >= minMs && v <= maxMs), {
      message: `must be ${orZero ? '"0" (off) or ' : ''}between ${minMs} ms and ${maxMs} ms`,
    }),
  )
}

/** `reload:` in the configuration file. */
export const ReloadConfigSchema = z.strictObject({
  /** Watch files, poll remote repositories and reload. Off: rules and config are read once. */
  enabled: z.boolean().default(true),
  /** Quiet time after the last file event before a check runs. */
  debounce: duration(0, 60_000).prefault('200ms'),
  /** Period of a full check of local files whatever the events say ("0" turns it off). */
  poll_interval: duration(10, 86_400_000, true).prefault('10s'),
  /** Also watch and reload the configuration file. */
  config_file: z.boolean().default(true),
  /** Period of the conditional GET of each http(s) repository. */
  remote_interval: duration(10, 86_400_000, true).prefault('30s'),
  /** Deadline of one remote fetch. */
  remote_timeout: duration(1, 300_000).prefault('5s'),
  /** Body cap of one remote fetch, in bytes. */
  remote_max_bytes: z.int().min(1024).max(256 * MiB).default(16 * MiB),
})
export type ReloadConfig = z.output<typeof ReloadConfigSchema>

/** What the watcher drives (the `Reloader`). */
export interface ReloadTarget {
  readonly loaded: LoadedConfig
  reloadRules(trigger: string): ReloadOutcome
  reloadConfig(trigger: string): ReloadOutcome
  peekConfig(): LoadedConfig | undefined
}

export interface WatcherOptions {
  readonly reloader: ReloadTarget
  readonly config: ReloadConfig
  readonly log: Logger
  /** Needed when a repository is http(s). */
  readonly remote?: RemoteRepositories
}

export interface WatcherStats {
  /** Directories watched now. */
  readonly watchedDirs: readonly string[]
  /** Checks run (events, polls, manual). */
  readonly checks: number
  /** Reloads asked for because something changed. */
  readonly reloads: number
  readonly remoteFetches: number
  readonly remoteNotModified: number
  readonly remoteFailures: number
}

const RULE_FILE = /\.(json|ya?ml)$/i

export class RuleWatcher {
  readonly #o: WatcherOptions
  readonly #watchers = new Map<string, { readonly watcher: FSWatcher; readonly ino: number }>()
  #rulesDigest = ''
  #configDigest = ''
  #started = false
  #stopped = false
  #debounce: NodeJS.Timeout | undefined
  #firstEventAt: number | undefined
  #poll: NodeJS.Timeout | undefined
  #remoteTimer: NodeJS.Timeout | undefined
  #tail: Promise<void> = Promise.resolve()
  #queued: Promise<void> | undefined
  #remotePoll: Promise<void> | undefined
  /** A valid config file whose rules were rejected (see `#afterConfigReload`). */
  #pending: LoadedConfig | undefined
  #checks = 0
  #reloads = 0
  #remoteFetches = 0
  #remoteNotModified = 0
  #remoteFailures = 0

  constructor(o: WatcherOptions) {
    this.#o = o
  }

  /**
   * Takes the current files as the baseline and starts watching and polling. Call it right after
   * the initial rule set is built (a change in between is caught by the first poll).
   */
  start(): void {
    if (this.#started || !this.#o.config.enabled) return
    this.#started = true
    const loaded = this.#o.reloader.loaded
    this.#rulesDigest = this.#digest()
    this.#configDigest = this.#watchingConfig(loaded) ? digestFile(loaded.file!) : ''
    this.#resync()
    const cfg = this.#o.config
    if (cfg.poll_interval > 0) {
      this.#poll = setInterval(() => void this.check('poll'), cfg.poll_interval)
      this.#poll.unref()
    }
    if (this.#o.remote !== undefined && cfg.remote_interval > 0) {
      this.#remoteTimer = setInterval(() => void this.pollRemote(), cfg.remote_interval)
      this.#remoteTimer.unref()
    }
  }

  /** Stops every watch and timer; a check already running finishes. */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#debounce)
    clearInterval(this.#poll)
    clearInterval(this.#remoteTimer)
    for (const { watcher } of this.#watchers.values()) watcher.close()
    this.#watchers.clear()
  }

  /**
   * Checks now (what events and polls do): reloads the config file if it changed, else the rules if
   * they changed. Concurrent calls share a check not yet started. Resolves when it has run.
   */
  check(trigger = 'manual'): Promise<void> {
    if (this.#queued !== undefined) return this.#queued
    const run = this.#tail.then(() => {
      this.#queued = undefined
      if (this.#stopped) return
      return this.#check(trigger)
    })
    const caught = run.catch((err: unknown) => this.#o.log.error({ err }, 'rule watcher check failed'))
    this.#queued = caught
    this.#tail = caught
    return caught
  }

  /** One conditional fetch of every http(s) repository; reloads the rules if a body changed. */
  pollRemote(): Promise<void> {
    const remote = this.#o.remote
    if (remote === undefined) return Promise.resolve()
    // A poll still waiting or fetching (slow server, short interval) is not doubled.
    if (this.#remotePoll !== undefined) return this.#remotePoll
    const run = this.#tail.then(async () => {
      if (this.#stopped) return
      const repos = this.#o.reloader.loaded.config.access_rules.repositories
      if (!repos.some(isRemote)) return
      const r = await remote.refresh(repos)
      this.#remoteFetches += r.fetched + r.notModified + r.failed
      this.#remoteNotModified += r.notModified
      this.#remoteFailures += r.failed
      if (r.problems.length > 0) {
        this.#o.log.warn({ problems: r.problems }, 'remote rule repository fetch failed: keeping the last good copy')
      }
      if (r.changed && !this.#stopped) {
        this.#reloads++
        this.#o.reloader.reloadRules('remote')
      }
    })
    const caught = run
      .catch((err: unknown) => this.#o.log.error({ err }, 'remote rule repository poll failed'))
      .finally(() => {
        if (this.#remotePoll === caught) this.#remotePoll = undefined
      })
    this.#remotePoll = caught
    this.#tail = caught
    return caught
  }

  stats(): WatcherStats {
    return {
      watchedDirs: [...this.#watchers.keys()],
      checks: this.#checks,
      reloads: this.#reloads,
      remoteFetches: this.#remoteFetches,
      remoteNotModified: this.#remoteNotModified,
      remoteFailures: this.#remoteFailures,
    }
  }

  async #check(trigger: string): Promise<void> {
    this.#checks++
    const reloader = this.#o.reloader
    const loaded = reloader.loaded
    if (this.#watchingConfig(loaded)) {
      const d = digestFile(loaded.file!)
      if (d !== this.#configDigest) {
        this.#configDigest = d
        this.#reloads++
        await this.#reloadConfig(trigger)
        return
      }
    }
    const d = this.#digest()
    if (d !== this.#rulesDigest) {
      this.#rulesDigest = d
      this.#reloads++
      // While the file on disk is a config whose rules were rejected, it is what we try to reach.
      if (this.#pending !== undefined) await this.#reloadConfig(trigger)
      else reloader.reloadRules(trigger)
    }
    this.#resync()
  }

  /** Digest of the serving config's repositories, and of the pending config's. */
  #digest(): string {
    const serving = digestRepositories(this.#o.reloader.loaded)
    return this.#pending === undefined ? serving : `${serving}:${digestRepositories(this.#pending)}`
  }

  /** A config reload; new http(s) repositories it lists are fetched first, or it would fail on them. */
  async #reloadConfig(trigger: string): Promise<void> {
    const reloader = this.#o.reloader
    const remote = this.#o.remote
    if (remote !== undefined) {
      const next = reloader.peekConfig()
      const fresh = next?.config.access_rules.repositories.filter((u) => isRemote(u) && remote.get(u) === undefined) ?? []
      if (fresh.length > 0) {
        const r = await remote.refresh(fresh)
        if (r.problems.length > 0) this.#o.log.warn({ problems: r.problems }, 'remote rule repository fetch failed')
      }
    }
    this.#afterConfigReload(reloader.reloadConfig(trigger))
  }

  /**
   * After a config reload: if it was rejected although the file itself is valid (its rules were
   * not), that config stays pending: its repositories are watched too, and a change to them retries
   * the config reload (say the new rules directory appears a moment after the config that names it).
   */
  #afterConfigReload(outcome: ReloadOutcome): void {
    const reloader = this.#o.reloader
    if (outcome.ok && outcome.swapped) this.#o.remote?.retainOnly(reloader.loaded.config.access_rules.repositories)
    this.#pending = outcome.ok ? undefined : reloader.peekConfig()
    this.#rulesDigest = this.#digest()
    this.#resync()
  }

  #watchingConfig(loaded: LoadedConfig): boolean {
    return this.#o.config.config_file && loaded.file !== undefined
  }

  /** Debounced: trailing, at most 10 × debounce after the first event of a burst. */
  #schedule(): void {
    if (this.#stopped) return
    const now = performance.now()
    this.#firstEventAt ??= now
    const debounce = this.#o.config.debounce
    const wait = Math.max(0, Math.min(debounce, this.#firstEventAt + 10 * debounce - now))
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => {
      this.#firstEventAt = undefined
      void this.check('watch')
    }, wait)
    this.#debounce.unref()
  }

  /** Watches exactly the directories the current config needs, re-creating replaced ones. */
  #resync(): void {
    if (this.#stopped) return
    const wanted = watchedDirectories(this.#o.reloader.loaded, this.#o.config.config_file)
    if (this.#pending !== undefined) for (const d of watchedDirectories(this.#pending, false)) wanted.add(d)
    for (const [dir, w] of this.#watchers) {
      if (!wanted.has(dir) || inode(dir) !== w.ino) {
        w.watcher.close()
        this.#watchers.delete(dir)
      }
    }
    for (const dir of wanted) {
      if (this.#watchers.has(dir)) continue
      const ino = inode(dir)
      if (ino === undefined) continue // missing now: the poll (or an event in its parent) brings it back
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#schedule())
        watcher.on('error', () => {
          watcher.close()
          if (this.#watchers.get(dir)?.watcher === watcher) this.#watchers.delete(dir)
          this.#schedule()
        })
        this.#watchers.set(dir, { watcher, ino })
      } catch (err) {
        this.#o.log.warn({ dir, err: (err as Error).message }, 'cannot watch directory: relying on the periodic check')
      }
    }
  }
}

/** The directories to watch for a config: see the module comment. */
export function watchedDirectories(loaded: LoadedConfig, configFile: boolean): Set<string> {
  const dirs = new Set<string>()
  const addFile = (path: string): void => {
    dirs.add(dirname(path))
    const real = realpathOrUndefined(path)
    if (real !== undefined) dirs.add(dirname(real))
  }
  for (const entry of loaded.config.access_rules.repositories) {
    if (isRemote(entry)) continue
    const r = repositoryPath(entry, loaded.baseDir)
    if ('problem' in r) continue
    if (isDirectory(r.path)) {
      dirs.add(r.path)
      dirs.add(dirname(r.path))
    } else addFile(r.path)
  }
  if (configFile && loaded.file !== undefined) addFile(loaded.file)
  return dirs
}

/**
 * A digest of what `readRepositories` (load.ts) would read for the local repositories: the same
 * directory listing rules (dot-entries skipped, *.json|yaml|yml, sorted), each file's bytes or the
 * error reading it.
 */
export function digestRepositories(loaded: LoadedConfig): string {
  const h = createHash('sha256')
  for (const entry of loaded.config.access_rules.repositories) {
    if (isRemote(entry)) continue
    h.update(`entry\0${entry}\0`)
    const r = repositoryPath(entry, loaded.baseDir)
    if ('problem' in r) continue
    if (isDirectory(r.path)) {
      let names: string[]
      try {
        names = readdirSync(r.path)
          .filter((n) => !n.startsWith('.') && RULE_FILE.test(n))
          .sort()
      } catch (err) {
        h.update(`error\0${errorCode(err)}\0`)
        continue
      }
      for (const n of names) hashFile(h, join(r.path, n))
    } else hashFile(h, r.path)
  }
  return h.digest('hex')
}

function digestFile(path: string): string {
  const h = createHash('sha256')
  hashFile(h, path)
  return h.digest('hex')
}

function hashFile(h: Hash, path: string): void {
  h.update(`file\0${path}\0`)
  try {
    const bytes = readFileSync(path)
    h.update(`${bytes.length}\0`)
    h.update(bytes)
  } catch (err) {
    h.update(`error\0${errorCode(err)}\0`)
  }
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

function inode(path: string): number | undefined {
  try {
    const s = statSync(path)
    return s.isDirectory() ? s.ino : undefined
  } catch {
    return undefined
  }
}

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path)
  } catch {
    return undefined
  }
}
