// The upstream behind Envoy in docker-compose.yml and in the end-to-end tests: answers every
// request 200 with JSON `{ method, path, headers }`, headers exactly as received (lower-case
// names, every value an array so a repeated header shows up as two entries). Dependency-free so
// the plain node image can run it: `PORT=8080 node envoy/echo-server.mjs`.
import { createServer } from 'node:http'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Starts the echo server on `port` (0 = ephemeral) on all interfaces.
 * `requests` records what reached the upstream, so tests can prove a request was NOT forwarded.
 * @param {number} [port]
 * @returns {Promise<{ port: number, requests: Array<{ method: string, path: string, headers: Record<string, string[]> }>, close(): Promise<void> }>}
 */
export function startEcho(port = 0) {
  /** @type {Array<{ method: string, path: string, headers: Record<string, string[]> }>} */
  const requests = []
  const server = createServer((req, res) => {
    // Drain the body; only the request line and headers are echoed.
    req.resume()
    req.on('end', () => {
      const seen = { method: req.method ?? '', path: req.url ?? '', headers: { ...req.headersDistinct } }
      requests.push(seen)
      const body = JSON.stringify(seen)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    })
  })
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject)
    server.listen(port, () => {
      server.off('error', reject)
      const address = server.address()
      const bound = typeof address === 'object' && address !== null ? address.port : port
      resolvePromise({
        port: bound,
        requests,
        close: () =>
          new Promise((done) => {
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (invokedDirectly) {
  const port = Number.parseInt(process.env.PORT ?? '8080', 10)
  const echo = await startEcho(port)
  console.log(JSON.stringify({ msg: 'echo server listening', port: echo.port }))
  const shutdown = () => void echo.close().then(() => process.exit(0))
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}
