/**
 * A fast fake IdP for the memory proof and the soak: one HTTP/1.1 server on 127.0.0.1 running in a
 * worker thread, so it has its own V8 heap (not counted in the caller's `heapUsed`) and its own
 * event loop (the caller's loop only runs the client side). Keep-alive, tiny fixed-shape answers,
 * nothing recorded but counters: it can answer millions of requests in bounded memory.
 *
 * Validity is decided by the credential's first characters (see tokens.ts): `v.` is valid,
 * anything else is not.
 *
 * | endpoint | answers |
 * |---|---|
 * | `POST /introspect` (RFC 7662, form `token=…`) | 200 `{"active":true,"sub":…,"scope":"read write",…,"exp":now+1h}` or 200 `{"active":false}` |
 * | `GET /sessions/whoami` (Bearer or `Cookie: session=…`) | 200 `{"subject":…,"extra":{…}}` or 401 |
 * | `GET /.well-known/jwks.json` | the JWKS passed in `jwks` (default `{"keys":[]}`) |
 * | anything else | 404 |
 *
 * The worker's source is plain JavaScript kept in a string (`eval: true`), so the stub runs the
 * same under vitest (no TypeScript loader in workers) and from dist/ (`npm run soak`).
 * @module
 */
import { Worker } from 'node:worker_threads'

export interface IdpStubOptions {
  /** Served at `/.well-known/jwks.json`. */
  readonly jwks?: unknown
}

export interface IdpStubCounts {
  readonly requests: number
  readonly introspectActive: number
  readonly introspectInactive: number
  readonly sessionValid: number
  readonly sessionInvalid: number
  readonly jwks: number
  readonly notFound: number
  readonly connections: number
  /** Sockets open now. */
  readonly openConnections: number
  /** `heapUsed` of the stub's worker isolate. */
  readonly heapUsedBytes: number
}

export interface IdpStub {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  url(path: string): string
  counts(): Promise<IdpStubCounts>
  /** Terminates the worker (and with it the server and its sockets). */
  close(): Promise<void>
}

/** The worker's code (CommonJS script, run with `eval: true`). */
const SOURCE = String.raw`
'use strict'
const { createServer } = require('node:http')
const { parentPort, workerData } = require('node:worker_threads')

const c = { requests: 0, introspectActive: 0, introspectInactive: 0, sessionValid: 0, sessionInvalid: 0, jwks: 0, notFound: 0, connections: 0 }
let open = 0
const JSON_TYPE = 'application/json'
const INACTIVE = '{"active":false}'
const UNAUTHORIZED = '{"error":"unauthorized"}'
const NOT_FOUND = '{"error":"not found"}'
const JWKS = JSON.stringify(workerData.jwks === undefined ? { keys: [] } : workerData.jwks)

function send(res, status, body) {
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
// A short, token-derived id: distinct sessions without echoing the credential.
function idOf(token) {
  let h = 2166136261
  for (let i = 0; i < token.length; i += 7) h = Math.imul(h ^ token.charCodeAt(i), 16777619)
  return (h >>> 0).toString(36) + '-' + token.length.toString(36)
}
function formToken(body) {
  for (const part of body.split('&')) {
    if (part.startsWith('token=')) return decodeURIComponent(part.slice(6).replace(/\+/g, ' '))
  }
  return ''
}
function sessionToken(req) {
  const auth = req.headers['authorization']
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7)
  const cookie = req.headers['cookie']
  if (typeof cookie === 'string') {
    for (const part of cookie.split(';')) {
      const p = part.trim()
      const eq = p.indexOf('=')
      if (eq > 0) return p.slice(eq + 1)
    }
  }
  return ''
}

const server = createServer((req, res) => {
  c.requests++
  const url = req.url || '/'
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  if (req.method === 'POST' && path === '/introspect') {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d) => { if (body.length < 65536) body += d })
    req.on('end', () => {
      const token = formToken(body)
      if (token.startsWith('v.')) {
        c.introspectActive++
        const now = Math.floor(Date.now() / 1000)
        send(res, 200, '{"active":true,"sub":"user-' + idOf(token) + '","scope":"read write","client_id":"soak-client","token_type":"access_token","iat":' + now + ',"exp":' + (now + 3600) + '}')
      } else {
        c.introspectInactive++
        send(res, 200, INACTIVE)
      }
    })
    return
  }
  req.resume()
  if (req.method === 'GET' && path === '/sessions/whoami') {
    const token = sessionToken(req)
    if (token.startsWith('v.')) {
      c.sessionValid++
      send(res, 200, '{"subject":"user-' + idOf(token) + '","extra":{"tenant":"soak","roles":["reader"]}}')
    } else {
      c.sessionInvalid++
      send(res, 401, UNAUTHORIZED)
    }
    return
  }
  if (req.method === 'GET' && path === '/.well-known/jwks.json') {
    c.jwks++
    send(res, 200, JWKS)
    return
  }
  c.notFound++
  send(res, 404, NOT_FOUND)
})
server.keepAliveTimeout = 60000
server.headersTimeout = 65000
server.on('connection', (socket) => {
  c.connections++
  open++
  socket.once('close', () => open--)
})
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ type: 'ready', port: server.address().port }))
parentPort.on('message', (m) => {
  if (m === 'counts') parentPort.postMessage({ type: 'counts', counts: { ...c, openConnections: open, heapUsedBytes: process.memoryUsage().heapUsed } })
})
`

/** Starts the stub in a worker thread; resolves once it listens. */
export async function startIdpStub(opts: IdpStubOptions = {}): Promise<IdpStub> {
  const worker = new Worker(SOURCE, { eval: true, workerData: { jwks: opts.jwks } })
  // Never keep the caller alive; close() or the caller's exit ends it.
  worker.unref()
  const port = await new Promise<number>((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    worker.once('error', onError)
    worker.once('exit', (code) => reject(new Error(`IdP stub exited with code ${code} before listening`)))
    worker.once('message', (m: { type: string; port: number }) => {
      worker.off('error', onError)
      if (m.type === 'ready') resolve(m.port)
      else reject(new Error(`IdP stub: unexpected message ${JSON.stringify(m)}`))
    })
  })
  worker.removeAllListeners('exit')
  const origin = `http://127.0.0.1:${port}`
  let closed: Promise<void> | undefined
  return {
    port,
    origin,
    url: (path) => `${origin}${path.startsWith('/') ? path : `/${path}`}`,
    counts: () =>
      new Promise<IdpStubCounts>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('IdP stub did not answer counts() within 5 s')), 5000)
        const onMessage = (m: { type: string; counts: IdpStubCounts }): void => {
          if (m.type !== 'counts') return
          clearTimeout(t)
          worker.off('message', onMessage)
          resolve(m.counts)
        }
        worker.on('message', onMessage)
        worker.postMessage('counts')
      }),
    close() {
      closed ??= worker.terminate().then(() => undefined)
      return closed
    },
  }
}
