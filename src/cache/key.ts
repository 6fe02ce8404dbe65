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
import { createHash } from 'node:crypto'

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
  const hash = createHash('sha256')
  const prefix = Buffer.allocUnsafe(4)
  for (const part of parts) {
    if (typeof part !== 'string') throw new TypeError(`credentialKey parts must be strings, got ${typeof part}`)
    prefix.writeUInt32BE(part.length)
    hash.update(prefix)
    hash.update(part, 'utf16le')
  }
  return hash.digest('base64url')
}

/** Whether `key` has the shape `credentialKey` produces (43 base64url characters). */
export function isCredentialKey(key: string): boolean {
  return key.length === CREDENTIAL_KEY_LENGTH && KEY_SHAPE.test(key)
}
