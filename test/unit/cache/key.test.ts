import { describe, expect, it } from 'vitest'
import { CREDENTIAL_KEY_LENGTH, credentialKey, isCredentialKey } from '../../../src/cache/key.js'

const distinct: { name: string; a: string[]; b: string[] }[] = [
  { name: 'moving a character across the boundary', a: ['ab', 'c'], b: ['a', 'bc'] },
  { name: 'an empty trailing part', a: ['a', ''], b: ['a'] },
  { name: 'two empty parts versus one', a: ['', ''], b: [''] },
  { name: 'a separator inside a part', a: ['tok|https://a'], b: ['tok', 'https://a'] },
  { name: 'swapping the parts', a: ['token', 'url'], b: ['url', 'token'] },
  { name: 'a lone surrogate versus U+FFFD (a UTF-8 encoding would collide)', a: ['\ud800'], b: ['\ufffd'] },
  { name: 'a length prefix forged inside the data', a: ['\u0000\u0000\u0000\u0001x'], b: ['', 'x'] },
]

describe('credentialKey', () => {
  it.each(distinct)('gives different keys for $name', ({ a, b }) => {
    expect(credentialKey(...a)).not.toBe(credentialKey(...b))
  })

  it('is deterministic, also across processes (a fixed vector)', () => {
    expect(credentialKey('token', 'https://idp.example/introspect')).toBe(
      credentialKey('token', 'https://idp.example/introspect'),
    )
    expect(credentialKey('token')).toBe(FIXED_VECTOR)
  })

  it('is 43 base64url characters whatever the input length, and passes isCredentialKey', () => {
    for (const input of ['', 'x', 'y'.repeat(64 * 1024), '\u{1F600}']) {
      const key = credentialKey(input)
      expect(key).toHaveLength(CREDENTIAL_KEY_LENGTH)
      expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(isCredentialKey(key)).toBe(true)
    }
  })

  it('does not contain the credential', () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig'
    expect(credentialKey(token)).not.toContain('eyJ')
  })

  it('refuses to hash nothing or non-strings', () => {
    expect(() => credentialKey()).toThrow(TypeError)
    expect(() => credentialKey(1 as unknown as string)).toThrow(TypeError)
  })
})

describe('isCredentialKey', () => {
  it.each([
    { name: 'a raw token', key: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.signature' },
    { name: 'a 43-char string with a dot', key: `${'a'.repeat(42)}.` },
    { name: 'standard base64 with padding', key: `${'a'.repeat(43)}=` },
    { name: 'the empty string', key: '' },
  ])('rejects $name', ({ key }) => {
    expect(isCredentialKey(key)).toBe(false)
  })
})

/** credentialKey('token'): SHA-256 of 00000005 + 'token' in UTF-16LE, base64url. */
const FIXED_VECTOR = 'JLiOseOg9IeH2Ny-NmdQIqGVKqUNUHu8nCdiMQABIyk'
