/**
 * The signature check of a compact JWS (RFC 7515) with an asymmetric key, synchronously, with
 * node:crypto. The `jwt` authenticator parses the header, checks `alg` and `crit`, and picks the
 * key (src/credentials/jwks.ts matches key type and curve to `alg`) before calling this; only the
 * cryptography is here.
 *
 * Why not jose's `compactVerify`: it verifies through WebCrypto, which is asynchronous (a libuv
 * thread-pool job and two promise hops per token) and costs 110–170 µs of CPU per RS256 token on
 * the benchmark machine, against 33 µs for `crypto.verify` (bench/RESULTS.md, "Latency through
 * Envoy"). Every cache miss pays it, and unique-token floods are exactly the load to be cheap on.
 *
 * Parameters (RFC 7518 §3): RSxxx RSASSA-PKCS1-v1_5; PSxxx RSASSA-PSS with MGF1 of the same hash and
 * a salt as long as the hash (OpenSSL's RSA_PSS_SALTLEN_DIGEST: any other salt length fails);
 * ESxxx ECDSA with the signature as R || S (`ieee-p1363`, not DER), P-256/P-384/P-521 enforced by
 * the key selection; EdDSA / Ed25519: Ed25519 (no prehash).
 * @module
 */
import { constants, verify, type KeyObject } from 'node:crypto'
import type { AsymmetricAlgorithm } from './jwks.js'

interface Params {
  /** The key type (and curve) the algorithm needs: node:crypto would verify an RSA signature given ES256 options. */
  readonly keyType: 'rsa' | 'ec' | 'ed25519'
  readonly curve?: 'prime256v1' | 'secp384r1' | 'secp521r1'
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null
  readonly padding?: number
  readonly saltLength?: number
  readonly dsaEncoding?: 'ieee-p1363'
}

type Hash = 'sha256' | 'sha384' | 'sha512'
const PKCS1 = (hash: Hash): Params => ({ keyType: 'rsa', hash, padding: constants.RSA_PKCS1_PADDING })
const PSS = (hash: Hash): Params => ({ keyType: 'rsa', hash, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST })
const ECDSA = (hash: Hash, curve: NonNullable<Params['curve']>): Params => ({ keyType: 'ec', curve, hash, dsaEncoding: 'ieee-p1363' })

const PARAMS: Readonly<Record<AsymmetricAlgorithm, Params>> = {
  RS256: PKCS1('sha256'),
  RS384: PKCS1('sha384'),
  RS512: PKCS1('sha512'),
  PS256: PSS('sha256'),
  PS384: PSS('sha384'),
  PS512: PSS('sha512'),
  ES256: ECDSA('sha256', 'prime256v1'),
  ES384: ECDSA('sha384', 'secp384r1'),
  ES512: ECDSA('sha512', 'secp521r1'),
  EdDSA: { keyType: 'ed25519', hash: null },
  Ed25519: { keyType: 'ed25519', hash: null },
}

/**
 * Is `signature` (base64url, already checked to be base64url characters) a valid `alg` signature
 * by `key` over `signingInput` (the token up to its second dot)? False for a key of another type
 * or curve than `alg` needs, an RSA key under 2048 bits, and any malformed signature (wrong
 * length, not a point on the curve, …): never throws for attacker input.
 */
export function verifyJwsSignature(alg: AsymmetricAlgorithm, key: KeyObject, signingInput: string, signature: string): boolean {
  const p = PARAMS[alg]
  if (key.type !== 'public' || key.asymmetricKeyType !== p.keyType) return false
  if (p.curve !== undefined && key.asymmetricKeyDetails?.namedCurve !== p.curve) return false
  if (p.keyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return false
  const sig = Buffer.from(signature, 'base64url')
  if (sig.length === 0) return false
  const data = Buffer.from(signingInput, 'latin1')
  try {
    const options =
      p.padding !== undefined
        ? { key, padding: p.padding, ...(p.saltLength === undefined ? {} : { saltLength: p.saltLength }) }
        : p.dsaEncoding !== undefined
          ? { key, dsaEncoding: p.dsaEncoding }
          : key
    return verify(p.hash, data, options, sig)
  } catch {
    return false
  }
}
