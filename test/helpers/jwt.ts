/**
 * JWT test helpers: key pairs for every algorithm the `jwt` authenticator accepts, tokens signed
 * the normal way (jose `SignJWT`) and the adversarial way (`signRaw`: any header and payload
 * bytes, node:crypto signatures, DER or raw ECDSA), JWKS documents, JWKS served by the stub
 * server (test/helpers/stub-server.ts), and isolated `HandlerDeps` with an injectable clock.
 * @module
 */
import { generateKeyPairSync, sign as nodeSign, constants, type KeyObject } from 'node:crypto'
import { SignJWT, type JWTPayload } from 'jose'
import { pino } from 'pino'
import { CacheBudget } from '../../src/cache/budget.js'
import { CacheRegistry } from '../../src/cache/registry.js'
import { disposeJwksProviders } from '../../src/credentials/jwks.js'
import { HttpClient } from '../../src/http/client.js'
import { OutboundConfigSchema, type OutboundConfigInput } from '../../src/http/config.js'
import type { HandlerDeps } from '../../src/pipeline/types.js'
import type { Stub } from './stub-server.js'

export type TestAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

export interface TestKey {
  readonly alg: TestAlg
  readonly kid: string | undefined
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** The public JWK as a JWKS would publish it (`kid`, `use: sig`, `alg` unless told otherwise). */
  readonly jwk: Record<string, unknown>
}

const EC_CURVE = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' } as const
const HASH = { '256': 'sha256', '384': 'sha384', '512': 'sha512' } as const

/** Key-pair generation is slow for RSA: cache by (alg, seed). */
const pairs = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>()

function pairFor(alg: TestAlg, seed: string, rsaBits: number): { privateKey: KeyObject; publicKey: KeyObject } {
  const id = `${alg}:${seed}:${rsaBits}`
  let p = pairs.get(id)
  if (p === undefined) {
    if (alg.startsWith('RS') || alg.startsWith('PS')) p = generateKeyPairSync('rsa', { modulusLength: rsaBits })
    else if (alg === 'EdDSA') p = generateKeyPairSync('ed25519')
    else p = generateKeyPairSync('ec', { namedCurve: EC_CURVE[alg as keyof typeof EC_CURVE] })
    pairs.set(id, p)
  }
  return p
}

/**
 * A key pair and its public JWK. `seed` picks a distinct pair (same seed, same pair), `use` and
 * `jwkAlg` override (or, with `null`, omit) the JWK's members.
 */
export function makeKey(
  alg: TestAlg = 'RS256',
  kid: string | undefined = 'k1',
  o: { seed?: string; use?: string | null; jwkAlg?: string | null; rsaBits?: number } = {},
): TestKey {
  const { privateKey, publicKey } = pairFor(alg, o.seed ?? kid ?? 'nokid', o.rsaBits ?? 2048)
  const jwk: Record<string, unknown> = { ...publicKey.export({ format: 'jwk' }) }
  if (kid !== undefined) jwk['kid'] = kid
  if (o.use !== null) jwk['use'] = o.use ?? 'sig'
  if (o.jwkAlg !== null) jwk['alg'] = o.jwkAlg ?? alg
  return { alg, kid, privateKey, publicKey, jwk }
}

/** A JWKS document of these keys (TestKeys or raw JWK objects). */
export function jwksOf(...keys: readonly (TestKey | Record<string, unknown>)[]): { keys: Record<string, unknown>[] } {
  return { keys: keys.map((k) => ('jwk' in k && 'privateKey' in k ? (k as TestKey).jwk : (k as Record<string, unknown>))) }
}

/** Serves `doc` as JSON at `path` on the stub. */
export function serveJwks(stub: Stub, path: string, doc: unknown): void {
  stub.setMode(path, { kind: 'json', body: doc })
}

/** Seconds since the epoch for `ms`. */
export const seconds = (ms: number): number => Math.floor(ms / 1000)

/** `sub`, `iss`, `aud`, `iat`, `exp` (+1 h) relative to `nowMs`, plus `extra`. */
export function claimsAt(nowMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const t = seconds(nowMs)
  return { sub: 'alice', iss: 'https://idp-a.example', aud: ['api'], iat: t, exp: t + 3600, ...extra }
}

/** A normally signed JWT (jose SignJWT): header `{alg, kid, typ: JWT}` plus `header`. */
export async function signJwt(key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims as JWTPayload)
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', ...(key.kid === undefined ? {} : { kid: key.kid }), ...header })
    .sign(key.privateKey)
}

/** base64url of a string, bytes, or JSON value. */
export function b64u(x: string | Uint8Array | object): string {
  if (typeof x === 'string') return Buffer.from(x, 'utf8').toString('base64url')
  if (x instanceof Uint8Array) return Buffer.from(x).toString('base64url')
  return Buffer.from(JSON.stringify(x), 'utf8').toString('base64url')
}

/**
 * A token with exactly this header and payload (objects are JSON-encoded, strings are used
 * verbatim, so `'{"exp":1e400}'` stays as written), signed with node:crypto. ECDSA signatures
 * are raw r‖s (JWS) unless `dsaEncoding: 'der'`. `signature` replaces the signature segment.
 */
export function signRaw(
  key: TestKey,
  header: Record<string, unknown> | string,
  payload: Record<string, unknown> | string,
  o: { dsaEncoding?: 'der' | 'ieee-p1363'; signature?: string } = {},
): string {
  const input = `${b64u(header)}.${b64u(payload)}`
  if (o.signature !== undefined) return `${input}.${o.signature}`
  const bits = key.alg === 'EdDSA' ? undefined : HASH[key.alg.slice(2) as keyof typeof HASH]
  let sig: Buffer
  if (key.alg === 'EdDSA') sig = nodeSign(null, Buffer.from(input), key.privateKey)
  else if (key.alg.startsWith('PS')) {
    sig = nodeSign(bits!, Buffer.from(input), {
      key: key.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: Number(key.alg.slice(2)) / 8,
    })
  } else if (key.alg.startsWith('ES')) {
    sig = nodeSign(bits!, Buffer.from(input), { key: key.privateKey, dsaEncoding: o.dsaEncoding ?? 'ieee-p1363' })
  } else sig = nodeSign(bits!, Buffer.from(input), key.privateKey)
  return `${input}.${sig.toString('base64url')}`
}

/** A controllable wall clock. */
export interface FakeClock {
  (): number
  set(ms: number): void
  advance(ms: number): void
}

export function fakeClock(startMs: number = Date.UTC(2026, 0, 1)): FakeClock {
  let t = startMs
  const clock = (() => t) as FakeClock
  clock.set = (ms) => void (t = ms)
  clock.advance = (ms) => void (t += ms)
  return clock
}

export interface IsolatedDeps extends HandlerDeps {
  /** Disposes JWKS providers and caches, closes the HTTP client. */
  close(): Promise<void>
}

/**
 * Handler deps of their own (JWKS providers are shared per deps object, so tests do not see each
 * other's), a silent logger unless `log` is given, and `now` if given.
 */
export function isolatedDeps(o: { now?: () => number; outbound?: OutboundConfigInput; log?: HandlerDeps['log'] } = {}): IsolatedDeps {
  const now = o.now ?? Date.now
  const deps: HandlerDeps = {
    log: o.log ?? pino({ level: 'silent' }),
    caches: new CacheRegistry(new CacheBudget(1024 * 1024 * 1024), { now }),
    http: new HttpClient(OutboundConfigSchema.parse({ timeout: '2s', ...o.outbound })),
    now,
  }
  const out: IsolatedDeps = {
    ...deps,
    async close() {
      disposeJwksProviders(out)
      deps.caches.dispose()
      await deps.http.close()
    },
  }
  return out
}
