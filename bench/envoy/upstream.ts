/**
 * The upstream behind Envoy in the latency benchmark: `node dist/bench/envoy/upstream.js`, a
 * separate process on 127.0.0.1 and an ephemeral port (printed as `{"port":N}` on stdout). It
 * answers every request 200 with a small JSON body naming the `x-user` header it got (so a run
 * can check that the header mutator's output reached it). envoy/echo-server.mjs is not used here:
 * it keeps every request it saw for the end-to-end tests, which at 6000 requests/s is hundreds of
 * megabytes and a growing GC load on a core the measurement shares.
 * @module
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume()
  req.on('end', () => {
    const user = req.headers['x-user']
    const body = `{"user":${JSON.stringify(typeof user === 'string' ? user : null)}}`
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`)
})
const stop = (): void => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
