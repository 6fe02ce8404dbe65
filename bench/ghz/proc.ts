/**
 * Process plumbing for the benchmark drivers: spawning pinned to a core (`taskset`, util-linux),
 * free loopback ports, CPU time and RSS of a process from /proc, per-core busy time from
 * /proc/stat, tool lookup on PATH, and bounded waits. Every spawned process is tracked and
 * killed when the driver exits, whatever the reason.
 * @module
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { accessSync, constants, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`; 100 on Linux x86-64). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** An executable named `name` on PATH (or in `extraDirs`), else undefined. */
export function which(name: string, extraDirs: readonly string[] = []): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...extraDirs]
  for (const d of dirs) {
    if (d === '') continue
    const p = join(d, name)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // next
    }
  }
  return undefined
}

export const TASKSET = which('taskset')

/** Pins the running process (every thread) to `cpu`; false when taskset is missing. */
export function pinSelf(cpu: number): boolean {
  if (TASKSET === undefined) return false
  try {
    execFileSync(TASKSET, ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const children = new Set<ChildProcess>()
let hooked = false
function hookExit(): void {
  if (hooked) return
  hooked = true
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  process.once('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll()
      process.exit(130)
    })
  }
}

export interface Spawned {
  readonly child: ChildProcess
  readonly pid: number
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>
}

/**
 * Spawns `cmd args` pinned to `cpu` (when taskset exists and cpu is given). `stdoutFile`: stdout
 * and stderr go to that file (no pipe for the parent to drain under load); otherwise they are
 * piped.
 */
export function spawnPinned(
  cpu: number | undefined,
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdoutFile?: string; pipe?: boolean } = {},
): Spawned {
  hookExit()
  const [file, argv] = cpu !== undefined && TASKSET !== undefined ? [TASKSET, ['-c', String(cpu), cmd, ...args]] : [cmd, [...args]]
  let stdio: SpawnOptions['stdio']
  if (opts.stdoutFile !== undefined) {
    const fd = openSync(opts.stdoutFile, 'a')
    stdio = ['ignore', fd, fd]
  } else stdio = ['ignore', opts.pipe === false ? 'ignore' : 'pipe', 'pipe']
  const child = spawn(file, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio })
  children.add(child)
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      children.delete(child)
      resolve(code)
    })
    child.once('error', () => {
      children.delete(child)
      resolve(null)
    })
  })
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(t)
    },
  }
}

/** Binds 127.0.0.1:0, reads the port, closes. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      if (a === null || typeof a === 'string') {
        s.close()
        reject(new Error('no port'))
        return
      }
      s.close(() => resolve(a.port))
    })
  })
}

/** utime + stime of `pid` in seconds, or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command (which may contain spaces) start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(rest[11])
    const stime = Number(rest[12])
    return (utime + stime) / CLK_TCK
  } catch {
    return undefined
  }
}

/** Resident set size of `pid` in bytes (VmRSS), or undefined. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m?.[1] === undefined ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** Per-core [busy, total] jiffies from /proc/stat (index = cpu number). */
export function coreTimes(): [busy: number, total: number][] {
  const out: [number, number][] = []
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+) (.*)$/.exec(line)
      if (m === null) continue
      const v = m[2]!.trim().split(/\s+/).map(Number)
      const idle = (v[3] ?? 0) + (v[4] ?? 0)
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
      out[Number(m[1])] = [total - idle, total]
    }
  } catch {
    // not Linux
  }
  return out
}

/** Busy fraction per core between two `coreTimes()` readings. */
export function coreBusy(a: readonly [number, number][], b: readonly [number, number][]): number[] {
  return b.map(([busy, total], i) => {
    const [busy0, total0] = a[i] ?? [0, 0]
    return total === total0 ? 0 : (busy - busy0) / (total - total0)
  })
}

/** Tracks CPU seconds of a set of pids across a run. */
export class CpuMeter {
  readonly #start = new Map<number, number>()
  readonly #last = new Map<number, number>()
  #cores0 = coreTimes()
  #t0 = performance.now()
  #timer: NodeJS.Timeout | undefined

  constructor(readonly pids: readonly number[]) {
    for (const p of pids) {
      const s = cpuSeconds(p)
      if (s !== undefined) this.#start.set(p, s)
    }
  }

  /** Samples every `ms` (a process that exits keeps its last reading). */
  start(ms = 250): this {
    this.#cores0 = coreTimes()
    this.#t0 = performance.now()
    for (const p of this.pids) {
      const s = cpuSeconds(p)
      if (s !== undefined) this.#start.set(p, s)
    }
    this.#timer = setInterval(() => this.sample(), ms)
    this.#timer.unref()
    return this
  }

  sample(): void {
    for (const p of this.pids) {
      const s = cpuSeconds(p)
      if (s !== undefined) this.#last.set(p, s)
    }
  }

  /** Stops sampling; CPU share (1 = one full core) per pid and busy share per core. */
  stop(): { perPid: Map<number, number>; cores: number[]; seconds: number } {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.sample()
    const seconds = (performance.now() - this.#t0) / 1000
    const perPid = new Map<number, number>()
    for (const p of this.pids) {
      const a = this.#start.get(p)
      const b = this.#last.get(p)
      if (a !== undefined && b !== undefined) perPid.set(p, (b - a) / seconds)
    }
    return { perPid, cores: coreBusy(this.#cores0, coreTimes()), seconds }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, giveUp: () => boolean = () => false): Promise<T> {
  const until = Date.now() + timeoutMs
  let lastErr: unknown
  while (Date.now() < until && !giveUp()) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (err) {
      lastErr = err
    }
    await sleep(100)
  }
  throw new Error(`${what}: not ready within ${timeoutMs} ms${lastErr instanceof Error ? ` (last error: ${lastErr.message})` : ''}`)
}

/** 1-minute load average (for the record). */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
  } catch {
    return NaN
  }
}

/**
 * Waits until the machine is quiet (every core under `maxBusy` busy over a 1-second window, twice
 * in a row) or `maxWaitS` passes; another tenant's benchmark running at the same time would
 * otherwise be measured too. Returns the seconds waited and whether it was quiet.
 */
export async function waitQuiet(maxBusy: number, maxWaitS: number): Promise<{ waitedS: number; quiet: boolean }> {
  const t0 = performance.now()
  let quietWindows = 0
  while ((performance.now() - t0) / 1000 < maxWaitS) {
    const a = coreTimes()
    await sleep(1000)
    const busy = coreBusy(a, coreTimes())
    quietWindows = busy.every((b) => b < maxBusy) ? quietWindows + 1 : 0
    if (quietWindows >= 2) return { waitedS: (performance.now() - t0) / 1000, quiet: true }
  }
  return { waitedS: (performance.now() - t0) / 1000, quiet: false }
}
