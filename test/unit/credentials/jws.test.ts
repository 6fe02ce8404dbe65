/**
 * The synchronous JWS signature check (src/credentials/jws.ts) against jose's signer, an
 * independent implementation: every algorithm verifies what jose signs, and rejects tampering,
 * other keys, other parameters and malformed signatures without throwing.
 */
import { createPublicKey, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto'
import { CompactSign } from 'jose'
import { describe, expect, it } from 'vitest'
import { ASYMMETRIC_ALGORITHMS, type AsymmetricAlgorithm } from '../../../src/credentials/jwks.js'
import { verifyJwsSignature } from '../../../src/credentials/jws.js'

function pair(alg: AsymmetricAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return generateKeyPairSync('rsa', { modulusLength: 2048 })
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' })
  if (alg === 'ES384') return generateKeyPairSync('ec', { namedCurve: 'P-384' })
  if (alg === 'ES512') return generateKeyPairSync('ec', { namedCurve: 'P-521' })
  return generateKeyPairSync('ed25519')
}

const KEYS = new Map(ASYMMETRIC_ALGORITHMS.map((alg) => [alg, pair(alg)]))

async function token(alg: AsymmetricAlgorithm, payload = '{"sub":"alice"}'): Promise<string> {
  // jose knows Ed25519 keys under "EdDSA"; the header is what carries the name.
  return new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg }).sign(KEYS.get(alg)!.privateKey)
}

const parts = (t: string): [string, string] => {
  const i = t.lastIndexOf('.')
  return [t.slice(0, i), t.slice(i + 1)]
}

describe('verifyJwsSignature', () => {
  it.each(ASYMMETRIC_ALGORITHMS)('%s: verifies a token jose signed; rejects a changed payload and another key', async (alg) => {
    const [input, sig] = parts(await token(alg))
    const key = createPublicKey({ key: KEYS.get(alg)!.publicKey.export({ format: 'jwk' }), format: 'jwk' })
    expect(verifyJwsSignature(alg, key, input, sig)).toBe(true)
    const [head, body] = input.split('.') as [string, string]
    const other = Buffer.from('{"sub":"mallory"}').toString('base64url')
    expect(body).not.toBe(other)
    expect(verifyJwsSignature(alg, key, `${head}.${other}`, sig)).toBe(false)
    expect(verifyJwsSignature(alg, pair(alg).publicKey, input, sig)).toBe(false)
  })

  it.each(ASYMMETRIC_ALGORITHMS)('%s: malformed signatures are false, never a throw', async (alg) => {
    const [input, sig] = parts(await token(alg))
    const key = KEYS.get(alg)!.publicKey
    for (const bad of ['', 'AA', sig.slice(0, -4), sig + 'AAAA', 'A'.repeat(sig.length), '_'.repeat(2000)]) {
      expect(verifyJwsSignature(alg, key, input, bad), bad.slice(0, 12)).toBe(false)
    }
  })

  it('holds RSA-PSS to a salt as long as the hash, and ECDSA to R || S (a DER signature fails)', async () => {
    const { privateKey, publicKey } = KEYS.get('PS256')!
    const input = `${Buffer.from('{"alg":"PS256"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}`
    const salt0 = sign('sha256', Buffer.from(input), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 0 })
    const salt32 = sign('sha256', Buffer.from(input), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    expect(verifyJwsSignature('PS256', publicKey, input, salt32.toString('base64url'))).toBe(true)
    expect(verifyJwsSignature('PS256', publicKey, input, salt0.toString('base64url'))).toBe(false)
    // The same RSA key: a PKCS#1 v1.5 signature is not a PSS one, and the other way round.
    const pkcs1 = sign('sha256', Buffer.from(input), privateKey)
    expect(verifyJwsSignature('PS256', publicKey, input, pkcs1.toString('base64url'))).toBe(false)
    expect(verifyJwsSignature('RS256', publicKey, input, salt32.toString('base64url'))).toBe(false)
    expect(verifyJwsSignature('RS256', publicKey, input, pkcs1.toString('base64url'))).toBe(true)

    const ec = KEYS.get('ES256')!
    const der = sign('sha256', Buffer.from(input), ec.privateKey)
    const p1363 = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' })
    expect(verifyJwsSignature('ES256', ec.publicKey, input, p1363.toString('base64url'))).toBe(true)
    expect(verifyJwsSignature('ES256', ec.publicKey, input, der.toString('base64url'))).toBe(false)
    // ES384 parameters with a P-256 signature: the hash differs, the check fails.
    expect(verifyJwsSignature('ES384', ec.publicKey, input, p1363.toString('base64url'))).toBe(false)
  })

  it('a key of another type than the algorithm is false, not a throw', async () => {
    const [input, sig] = parts(await token('RS256'))
    expect(verifyJwsSignature('ES256', KEYS.get('RS256')!.publicKey, input, sig)).toBe(false)
    expect(verifyJwsSignature('EdDSA', KEYS.get('RS256')!.publicKey, input, sig)).toBe(false)
    expect(verifyJwsSignature('RS256', KEYS.get('ES256')!.publicKey, input, sig)).toBe(false)
    // A P-384 key under ES256, and an RSA key under 2048 bits, are refused before any check.
    const p384 = KEYS.get('ES384')!
    const [in384, sig384] = parts(await token('ES384'))
    expect(verifyJwsSignature('ES384', p384.publicKey, in384, sig384)).toBe(true)
    expect(verifyJwsSignature('ES256', p384.publicKey, in384, sig384)).toBe(false)
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const weakSig = sign('sha256', Buffer.from(input), weak.privateKey).toString('base64url')
    expect(verifyJwsSignature('RS256', weak.publicKey, input, weakSig)).toBe(false)
  })
})
