/**
 * Reading a response body under a byte cap. Every body the client receives goes through
 * `readCapped` exactly once, so each one is either read to its end (the connection goes back to
 * the pool) or destroyed (undici closes the connection; a half-read HTTP/1.1 response cannot be
 * reused). Nothing is buffered beyond `maxBytes` plus the chunk that crossed it.
 * @module
 */
import type { Readable } from 'node:stream'

/** The body was larger than the cap; it has been destroyed. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`body exceeds ${limit} bytes`)
    this.name = 'BodyTooLarge'
  }
}

/**
 * Reads `body` to its end into one Buffer, or destroys it and throws `BodyTooLarge` as soon as
 * more than `maxBytes` have arrived (or `content-length` already says so). Stream errors (abort,
 * reset, timeout) propagate after the stream is destroyed.
 */
export async function readCapped(body: Readable, maxBytes: number, contentLength: string | undefined): Promise<Buffer> {
  // Destroying an unfinished undici body emits an abort error; the cause has already been decided.
  body.on('error', ignore)
  if (contentLength !== undefined && Number(contentLength) > maxBytes) {
    body.destroy()
    throw new BodyTooLarge(maxBytes)
  }
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > maxBytes) throw new BodyTooLarge(maxBytes)
      chunks.push(chunk)
    }
  } finally {
    // `for await` destroys the stream on an early exit; this covers errors thrown before the first
    // iteration and keeps the guarantee explicit.
    if (!body.readableEnded) body.destroy()
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
}

function ignore(): void {}
