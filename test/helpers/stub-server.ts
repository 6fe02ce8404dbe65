/**
 * A fake IdP: a real HTTP/1.1 server on 127.0.0.1 (ephemeral port) for every test that talks to
 * JWKS, introspection, session or token endpoints. Each path (or `'*'`) has a mode that says how to
 * answer, including the ways real dependencies fail: slow, 5xx, HTML, invalid JSON, huge bodies,
 * resets, redirects, bodies that never end, and requests that never get an answer.
 *
 * The server counts what a client cannot hide: requests (total and per path, the last 1 000
 * recorded, each with the connection that carried it), connections accepted, sockets open now and
 * at peak, bytes streamed; `connectionClosed(id)` / `socketsClosed()` wait for the client to hang
 * up. Every socket and timer is tracked, so `close()` always completes, even with hung requests.
 *
 * @example
 * const stub = await startStub()
 * stub.setMode('/jwks', { kind: 'json', body: { keys: [] } })
 * stub.setMode('/introspect', 'hang')
 * await fetch(stub.url('/jwks'))
 * await stub.close()
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** How the stub answers. Bare strings are the parameterless modes with their defaults. */
export type StubMode =
  | { readonly kind: 'json'; readonly status?: number; readonly body: unknown; readonly headers?: Readonly<Record<string, string>> }
  /** Waits `delayMs`, then answers with `then` (default: 200 `{}`). */
  | { readonly kind: 'slow'; readonly delayMs: number; readonly then?: StubMode }
  /** Default 503 with a small JSON body. */
  | { readonly kind: '5xx'; readonly status?: number; readonly body?: string }
  /** 200 text/html (a login page, a proxy's error page). */
  | { readonly kind: 'html'; readonly status?: number }
  /** 200 application/json that is not JSON. */
  | { readonly kind: 'garbage' }
  /** 200 with `mib` MiB streamed in 64 KiB chunks with backpressure; chunked unless `contentLength`. */
  | { readonly kind: 'huge'; readonly mib: number; readonly contentLength?: boolean }
  /** Destroys the socket before answering. */
  | { readonly kind: 'reset' }
  /** 302 (or `status`) with `Location: location` (a path on this stub, or any URL). */
  | { readonly kind: 'redirect'; readonly location: string; readonly status?: number }
  /** 200 headers, then a chunk every `intervalMs` (default 50) until the client goes away. */
  | { readonly kind: 'never-ending'; readonly intervalMs?: number }
  /** Reads the request, never answers. */
  | { readonly kind: 'hang' }
  /** One step per hit on this mode, in order; the last step repeats. */
  | { readonly kind: 'sequence'; readonly steps: readonly StubMode[] }
  | { readonly kind: 'custom'; readonly handle: StubHandler }
  | '5xx'
  | 'html'
  | 'garbage'
  | 'huge'
  | 'reset'
  | 'never-ending'
  | 'hang'

/** A handler of your own; `req.body` has already been read (and recorded). */
export type StubHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>

export interface RecordedRequest {
  readonly method: string
  /** Path without the query string (the key for modes and per-path hits). */
  readonly path: string
  /** Path and query, as sent. */
  readonly url: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  /** The request body as UTF-8, truncated to 1 MiB. */
  readonly body: string
  /** Which connection (1-based, in accept order) carried it. */
  readonly connection: number
}

export interface Stub {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** Absolute URL of `path` on this stub. */
  url(path: string): string
  /** Requests received (all paths). */
  readonly hits: number
  /** Requests received for `path` (without query). */
  hitsFor(path: string): number
  /** The last `MAX_RECORDED` requests, oldest first. */
  readonly requests: readonly RecordedRequest[]
  /** Sets the mode for `path` (exact, without query) or for every path without one (`'*'`). */
  setMode(path: string, mode: StubMode | StubHandler): void
  /** Connections accepted so far, open now, and the most open at once. */
  readonly connections: { readonly accepted: number; readonly open: number; readonly maxOpen: number }
  /** Requests being handled now, and the most at once. */
  readonly active: { readonly now: number; readonly max: number }
  /** Body bytes written by `huge` and `never-ending` responses. */
  readonly bytesStreamed: number
  /** Resolves once no socket is open, or rejects after `timeoutMs` (default 1 000). */
  socketsClosed(timeoutMs?: number): Promise<void>
  /**
   * Resolves once connection `id` (see `RecordedRequest.connection`) is closed, or rejects after
   * `timeoutMs` (default 1 000).
   */
  connectionClosed(id: number, timeoutMs?: number): Promise<void>
  /** Stops listening, destroys every socket, clears every timer. */
  close(): Promise<void>
}

const MAX_RECORDED = 1000
const MAX_RECORDED_BODY = 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'a')

/** What the bare-string modes stand for. */
const BARE: Readonly<Record<Extract<StubMode, string>, Exclude<StubMode, string>>> = {
  '5xx': { kind: '5xx' },
  html: { kind: 'html' },
  garbage: { kind: 'garbage' },
  huge: { kind: 'huge', mib: 50 },
  reset: { kind: 'reset' },
  'never-ending': { kind: 'never-ending' },
  hang: { kind: 'hang' },
}

/**
 * Starts a stub on 127.0.0.1 with an ephemeral port. `fallback` answers paths without a mode
 * (default: 404 JSON naming the path).
 */
export async function startStub(fallback?: StubMode | StubHandler): Promise<Stub> {
  const modes = new Map<string, StubMode | StubHandler>()
  const sequencePositions = new Map<StubMode, number>()
  const perPath = new Map<string, number>()
  const recorded: RecordedRequest[] = []
  const sockets = new Map<number, Socket>()
  const socketIds = new WeakMap<Socket, number>()
  const timers = new Set<NodeJS.Timeout>()
  const closeWaiters = new Set<() => void>()
  let hits = 0
  let accepted = 0
  let maxOpen = 0
  let active = 0
  let maxActive = 0
  let bytesStreamed = 0

  const server = createServer((req, res) => {
    active++
    maxActive = Math.max(maxActive, active)
    res.once('close', () => active--)
    void readBody(req).then((body) => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      const r: RecordedRequest = { method: req.method ?? '', path, url, headers: { ...req.headers }, body, connection: socketIds.get(req.socket) ?? 0 }
      hits++
      perPath.set(path, (perPath.get(path) ?? 0) + 1)
      recorded.push(r)
      if (recorded.length > MAX_RECORDED) recorded.shift()
      const mode = modes.get(path) ?? modes.get('*') ?? fallback ?? { kind: 'json', status: 404, body: { error: `no stub mode for ${path}` } }
      return respond(mode, r, req, res)
    }).catch(() => req.socket.destroy())
  })
  server.keepAliveTimeout = 30_000
  server.on('connection', (socket: Socket) => {
    const id = ++accepted
    socketIds.set(socket, id)
    sockets.set(id, socket)
    maxOpen = Math.max(maxOpen, sockets.size)
    socket.once('close', () => {
      sockets.delete(id)
      for (const w of closeWaiters) w()
    })
  })

  function later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      timers.delete(t)
      fn()
    }, ms)
    timers.add(t)
    return t
  }

  async function respond(m: StubMode | StubHandler, r: RecordedRequest, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (typeof m === 'function') return m(r, res)
    const mode = typeof m === 'string' ? BARE[m] : m
    switch (mode.kind) {
      case 'json':
        send(res, mode.status ?? 200, 'application/json', JSON.stringify(mode.body), mode.headers)
        return
      case 'slow': {
        const t = later(mode.delayMs, () => void respond(mode.then ?? { kind: 'json', body: {} }, r, req, res))
        res.once('close', () => {
          clearTimeout(t)
          timers.delete(t)
        })
        return
      }
      case '5xx':
        send(res, mode.status ?? 503, 'application/json', mode.body ?? '{"error":"unavailable"}')
        return
      case 'html':
        send(res, mode.status ?? 200, 'text/html; charset=utf-8', '<!doctype html><html><body><form action="/login">Sign in</form></body></html>')
        return
      case 'garbage':
        send(res, 200, 'application/json', '{"keys": [ {"kty": "RSA", "n": ')
        return
      case 'huge':
        return streamHuge(res, mode.mib, mode.contentLength ?? false)
      case 'reset':
        req.socket.destroy()
        return
      case 'redirect': {
        const location = mode.location.startsWith('/') ? stub.url(mode.location) : mode.location
        send(res, mode.status ?? 302, 'text/plain', 'redirect', { location })
        return
      }
      case 'never-ending': {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('[')
        const t = setInterval(() => {
          bytesStreamed += 2
          res.write('0,')
        }, mode.intervalMs ?? 50)
        timers.add(t)
        res.once('close', () => {
          clearInterval(t)
          timers.delete(t)
        })
        return
      }
      case 'hang':
        return
      case 'sequence': {
        const i = sequencePositions.get(mode) ?? 0
        sequencePositions.set(mode, i + 1)
        const step = mode.steps[Math.min(i, mode.steps.length - 1)]
        if (step === undefined) throw new Error('sequence mode needs at least one step')
        return respond(step, r, req, res)
      }
      case 'custom':
        return mode.handle(r, res)
    }
  }

  async function streamHuge(res: ServerResponse, mib: number, withLength: boolean): Promise<void> {
    const total = Math.round(mib * 1024 * 1024)
    res.writeHead(200, withLength ? { 'content-type': 'application/json', 'content-length': String(total) } : { 'content-type': 'application/json' })
    let sent = 0
    let gone = false
    res.once('close', () => (gone = true))
    while (sent < total && !gone) {
      const chunk = total - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, total - sent)
      sent += chunk.length
      bytesStreamed += chunk.length
      if (!res.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done)
            res.off('close', done)
            resolve()
          }
          res.on('drain', done)
          res.on('close', done)
        })
      }
    }
    if (!gone) res.end()
  }

  /** Resolves when `done()` holds, checked now and after every socket close. */
  function until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!done()) return
        clearTimeout(t)
        closeWaiters.delete(check)
        resolve()
      }
      const t = setTimeout(() => {
        closeWaiters.delete(check)
        reject(new Error(`stub: ${what()} after ${timeoutMs} ms`))
      }, timeoutMs)
      closeWaiters.add(check)
    })
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error(`unexpected stub address ${String(address)}`)
  const port = address.port
  const origin = `http://127.0.0.1:${port}`

  const stub: Stub = {
    port,
    origin,
    url: (path) => `${origin}${path.startsWith('/') ? path : `/${path}`}`,
    get hits() {
      return hits
    },
    hitsFor: (path) => perPath.get(path) ?? 0,
    get requests() {
      return recorded
    },
    setMode(path, mode) {
      modes.set(path, mode)
    },
    get connections() {
      return { accepted, open: sockets.size, maxOpen }
    },
    get active() {
      return { now: active, max: maxActive }
    },
    get bytesStreamed() {
      return bytesStreamed
    },
    socketsClosed(timeoutMs = 1000) {
      return until(() => sockets.size === 0, timeoutMs, () => `${sockets.size} socket(s) still open`)
    },
    connectionClosed(id, timeoutMs = 1000) {
      if (id < 1 || id > accepted) return Promise.reject(new Error(`stub: no connection ${id}`))
      return until(() => !sockets.has(id), timeoutMs, () => `connection ${id} still open`)
    },
    async close() {
      for (const t of timers) clearTimeout(t)
      timers.clear()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets.values()) socket.destroy()
      await closed
      await until(() => sockets.size === 0, 1000, () => `${sockets.size} socket(s) still open`)
    },
  }
  return stub
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers?: Readonly<Record<string, string>>): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)), ...headers })
  res.end(body)
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (size < MAX_RECORDED_BODY) chunks.push(chunk)
    size += chunk.length
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, MAX_RECORDED_BODY)
}
