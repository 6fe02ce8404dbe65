/**
 * Cache keys. Every cache in Portcullis is keyed by `credentialKey(...)`: a SHA-256 digest of all
 * the inputs the cached result depends on, never by a raw credential. So a heap dump, a debug log
 * or a metrics label can never leak a token through a cache key, every key has the same small size
 * (43 bytes) whatever the credential's length, and a key cannot be "close" to another one.
 *
 * Callers must pass every input the cached result depends on (security.md I6): the token, the
 * endpoint it was checked against (introspection URL, session-check URL, token URL), the client id,
 * the requested scopes, … Oathkeeper's CVE-2026-33496 was an introspection cache keyed without the
 * introspection URL; its client-credentials cache kept the plaintext client secret in the key.
 * @module
 */
import * as crypto from 'node:crypto'

/** Length of a key: 256 bits in unpadded base64url. */
export const CREDENTIAL_KEY_LENGTH = 43

const KEY_SHAPE = /^[A-Za-z0-9_-]{43}$/

/**
 * SHA-256 (base64url, 43 chars) of the length-prefixed parts, so ("ab", "c") and ("a", "bc") give
 * different keys. Each part is hashed as its UTF-16 code units (with a 32-bit length prefix counting
 * code units), which makes the encoding injective for every JS string: a UTF-8 encoding would map
 * all lone surrogates to U+FFFD and let "\uD800" and "\uFFFD" collide.
 *
 * Deterministic across processes and versions of Node; it is not a MAC, so a key is only as secret
 * as its inputs' entropy (it is meant for memory, not for storage outside the process).
 *
 * @example credentialKey(token, introspectionUrl, requiredScopes.join(' '))
 */
export function credentialKey(...parts: string[]): string {
  if (parts.length === 0) throw new TypeError('credentialKey needs at least one part')
  let n = 0
  for (const part of parts) {
    if (typeof part !== 'string') throw new TypeError(`credentialKey parts must be strings, got ${typeof part}`)
    n += 4 + 2 * part.length
  }
  // One-shot hash of the whole encoding, built in a reused buffer: no Hash object per call
  // (~1.2 µs instead of ~1.8 µs for a 470-character JWT). Same bytes as the streaming form below.
  if (ONE_SHOT !== undefined && n <= SCRATCH_BYTES) {
    const buf = SCRATCH
    let o = 0
    for (const part of parts) {
      buf.writeUInt32BE(part.length, o)
      o += 4
      o += buf.write(part, o, 'utf16le')
    }
    const key = ONE_SHOT('sha256', buf.subarray(0, o), 'base64url')
    // No credential bytes left behind in a long-lived buffer (heap dumps).
    buf.fill(0, 0, o)
    return key
  }
  const hash = crypto.createHash('sha256')
  const prefix = Buffer.allocUnsafe(4)
  for (const part of parts) {
    prefix.writeUInt32BE(part.length)
    hash.update(prefix)
    hash.update(part, 'utf16le')
  }
  return hash.digest('base64url')
}

/** `crypto.hash` (Node ≥ 20.12); older versions take the streaming path. */
const ONE_SHOT = (crypto as { hash?: (alg: string, data: Uint8Array, enc: 'base64url') => string }).hash
/** Inputs up to this many encoded bytes use the scratch buffer (tokens are capped well below). */
const SCRATCH_BYTES = 16 * 1024
const SCRATCH = Buffer.allocUnsafe(SCRATCH_BYTES)

/** Whether `key` has the shape `credentialKey` produces (43 base64url characters). */
export function isCredentialKey(key: string): boolean {
  return key.length === CREDENTIAL_KEY_LENGTH && KEY_SHAPE.test(key)
}
