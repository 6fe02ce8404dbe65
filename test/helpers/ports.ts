/**
 * Free TCP ports for tests. Prefer letting the server bind port 0 and report the port it got
 * (Portcullis logs it, Envoy's admin lists it); use this only where that is impossible, as the
 * port can be taken by someone else between `freePort()` and the caller's bind.
 * @module
 */
import { createServer } from 'node:net'

/** Binds 127.0.0.1:0, reads the port the kernel chose, closes, and returns it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error(`unexpected server address ${String(address)}`))
        return
      }
      server.close(() => resolve(address.port))
    })
  })
}
