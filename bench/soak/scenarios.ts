/**
 * What the memory proof and the soak send: one access rule per credential authenticator, each
 * with its cache on and sized small (so it fills and evicts early), and a generator of requests
 * carrying a unique credential, valid or invalid, for that rule. Shared by the in-process driver
 * (in-process.ts), the gRPC load generator (loadgen.ts) and the soak orchestrator (run.ts), so
 * all of them exercise the same configuration.
 *
 * | scenario | rule path | authenticator (against the IdP stub) | credential | invalid means |
 * |---|---|---|---|---|
 * | `introspection` | `/introspection/…` | `oauth2_introspection` → `POST /introspect` | `Authorization: Bearer v.…` | `active: false` (negative cache) |
 * | `jwt` | `/jwt/…` | `jwt` (EdDSA) → JWKS at `/.well-known/jwks.json` | `Authorization: Bearer <JWS>` | signed by another key with the same `kid` (negative cache) |
 * | `bearer` | `/bearer/…` | `bearer_token` → `GET /sessions/whoami` | `Authorization: Bearer v.…` | 401 from the endpoint (negative cache) |
 * | `cookie` | `/cookie/…` | `cookie_session` → `GET /sessions/whoami` | `Cookie: session=v.…` | 401 from the endpoint (negative cache) |
 *
 * Valid credentials must be allowed, invalid ones denied with HTTP 401: anything else is counted
 * as a mismatch by the drivers.
 * @module
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { prng, TokenStream, type TokenMix } from './tokens.js'

export const SCENARIO_IDS = ['introspection', 'jwt', 'bearer', 'cookie'] as const
export type ScenarioId = (typeof SCENARIO_IDS)[number]

/** The authenticator each scenario needs. */
export const HANDLER_OF: Readonly<Record<ScenarioId, string>> = {
  introspection: 'oauth2_introspection',
  jwt: 'jwt',
  bearer: 'bearer_token',
  cookie: 'cookie_session',
}

export const HOST = 'api.example.com'
const KiB = 1024
const MiB = 1024 * KiB

/** Cache sizes of every scenario's handler (bytes); small so they fill and evict within seconds. */
export interface CacheSizing {
  readonly maxCost: number
  readonly negativeMaxCost: number
}
export const DEFAULT_SIZING: CacheSizing = { maxCost: 4 * MiB, negativeMaxCost: 1 * MiB }

/**
 * The rule of `id` against the IdP stub at `origin`. Lifetimes are long (10 min positive, 1 min
 * negative) so entries leave by eviction, the worst case for memory: the byte limits alone bound it.
 */
export function ruleFor(id: ScenarioId, origin: string, sizing: CacheSizing = DEFAULT_SIZING): Record<string, unknown> {
  const cache = {
    enabled: true,
    ttl: '10m',
    max_cost: sizing.maxCost,
    negative_ttl: '1m',
    negative_max_cost: sizing.negativeMaxCost,
    max_entries: 100_000,
  }
  const config: Record<ScenarioId, Record<string, unknown>> = {
    introspection: { introspection_url: `${origin}/introspect`, cache },
    jwt: { jwks_urls: [`${origin}/.well-known/jwks.json`], allowed_algorithms: ['EdDSA'], cache },
    bearer: { check_session_url: `${origin}/sessions/whoami`, preserve_path: true, subject_from: 'subject', cache },
    cookie: { check_session_url: `${origin}/sessions/whoami`, preserve_path: true, only: ['session'], cache },
  }
  return {
    id: `soak-${id}`,
    match: { url: `<https>://${HOST}/${id}/<.*>`, methods: ['GET', 'POST'] },
    authenticators: [{ handler: HANDLER_OF[id], config: config[id] }],
    authorizer: { handler: 'allow' },
    mutators: [{ handler: 'header', config: { headers: { 'X-User': '{{ print .Subject }}' } } }],
  }
}

/** The configuration (besides `serve` and `access_rules`) the rules above need. */
export function configFor(ids: readonly ScenarioId[], cacheBudgetBytes: number): Record<string, unknown> {
  return {
    authenticators: Object.fromEntries(ids.map((id) => [HANDLER_OF[id], { enabled: true }])),
    authorizers: { allow: { enabled: true } },
    mutators: { header: { enabled: true, config: { headers: {} } } },
    cache: { max_bytes: cacheBudgetBytes },
    // Loopback stub: a generous deadline so a busy 2-core box measures memory, not timeouts.
    outbound: { timeout: '2s', connect_timeout: '1s', max_connections_per_origin: 32, max_pending_per_origin: 4096 },
  }
}

/** One request to send: its path and headers, and whether its credential is valid. */
export interface SoakRequest {
  readonly scenario: ScenarioId
  readonly path: string
  readonly headers: Record<string, string>
  readonly valid: boolean
}

/** The Ed25519 keys of the `jwt` scenario: the JWKS signs valid tokens, `wrong` invalid ones. */
export interface JwtKeys {
  readonly privatePem: string
  readonly wrongPrivatePem: string
  /** The JWKS to serve (public key of `privatePem`, kid `soak-1`). */
  readonly jwks: { keys: Record<string, unknown>[] }
}

export const JWT_KID = 'soak-1'

export function makeJwtKeys(): JwtKeys {
  const good = generateKeyPairSync('ed25519')
  const wrong = generateKeyPairSync('ed25519')
  const jwk = good.publicKey.export({ format: 'jwk' }) as Record<string, unknown>
  return {
    privatePem: good.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    wrongPrivatePem: wrong.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    jwks: { keys: [{ ...jwk, kid: JWT_KID, alg: 'EdDSA', use: 'sig' }] },
  }
}

/** Checks that a JWKS and a private key belong together (guards a mismatched key file). */
export function jwksMatches(keys: JwtKeys): boolean {
  const pub = createPublicKey(createPrivateKey(keys.privatePem)).export({ format: 'jwk' }) as { x?: string }
  return keys.jwks.keys[0]?.['x'] === pub.x
}

const JWT_HEADER = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: JWT_KID, typ: 'JWT' })).toString('base64url')

/** Unique EdDSA JWTs of roughly the mix's sizes (never shorter than a minimal signed token). */
class JwtStream {
  readonly #good: KeyObject
  readonly #wrong: KeyObject
  readonly #sizes: TokenStream
  readonly #rnd: () => number
  readonly #validRatio: number
  readonly #prefix: string
  #seq = 0

  constructor(keys: JwtKeys, mix: TokenMix, seed: number) {
    this.#good = createPrivateKey(keys.privatePem)
    this.#wrong = createPrivateKey(keys.wrongPrivatePem)
    this.#sizes = new TokenStream(mix, seed)
    this.#rnd = prng(seed ^ 0x5bd1e995)
    this.#validRatio = mix.validRatio
    this.#prefix = Math.floor(Math.random() * 2 ** 31).toString(36)
  }

  next(): { token: string; valid: boolean } {
    const valid = this.#rnd() < this.#validRatio
    const now = Math.floor(Date.now() / 1000)
    const base = { sub: `user-${this.#prefix}-${(this.#seq++).toString(36)}`, iss: 'https://idp.soak.local', iat: now, exp: now + 3600 }
    // Payload base64 ≈ 4/3 of its JSON; header ≈ 50 and signature 86 characters.
    const target = this.#sizes.size()
    const padChars = Math.max(0, Math.floor(((target - 140) * 3) / 4) - JSON.stringify(base).length - 10)
    const payload = Buffer.from(JSON.stringify(padChars > 0 ? { ...base, pad: 'p'.repeat(padChars) } : base)).toString('base64url')
    const input = `${JWT_HEADER}.${payload}`
    const sig = sign(null, Buffer.from(input), valid ? this.#good : this.#wrong).toString('base64url')
    return { token: `${input}.${sig}`, valid }
  }
}

/**
 * Round-robin over the scenarios: request i uses scenario i mod n, with its own token stream.
 * Every credential is new; paths are unique too (`/<scenario>/items/<n>`).
 */
export class RequestStream {
  readonly #ids: readonly ScenarioId[]
  readonly #opaque: Map<ScenarioId, TokenStream>
  readonly #jwt: JwtStream | undefined
  #i = 0

  constructor(ids: readonly ScenarioId[], mix: TokenMix, jwtKeys: JwtKeys | undefined, seed = 1) {
    if (ids.length === 0) throw new Error('at least one scenario is needed')
    this.#ids = ids
    this.#opaque = new Map(ids.filter((id) => id !== 'jwt').map((id, k) => [id, new TokenStream(mix, seed * 31 + k)]))
    if (ids.includes('jwt')) {
      if (jwtKeys === undefined) throw new Error('the jwt scenario needs keys')
      this.#jwt = new JwtStream(jwtKeys, mix, seed * 31 + 17)
    }
  }

  get count(): number {
    return this.#i
  }

  next(): SoakRequest {
    const n = this.#i++
    const scenario = this.#ids[n % this.#ids.length]!
    const path = `/${scenario}/items/${n.toString(36)}`
    if (scenario === 'jwt') {
      const { token, valid } = this.#jwt!.next()
      return { scenario, path, headers: { authorization: `Bearer ${token}` }, valid }
    }
    const { token, valid } = this.#opaque.get(scenario)!.next()
    const headers = scenario === 'cookie' ? { cookie: `session=${token}` } : { authorization: `Bearer ${token}` }
    return { scenario, path, headers, valid }
  }
}

/** Parses `introspection,jwt` into scenario ids (throws on unknown names). */
export function parseScenarios(s: string): ScenarioId[] {
  const ids = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
  for (const id of ids) {
    if (!(SCENARIO_IDS as readonly string[]).includes(id)) throw new Error(`unknown scenario "${id}" (known: ${SCENARIO_IDS.join(', ')})`)
  }
  if (ids.length === 0) throw new Error('no scenario given')
  return [...new Set(ids)] as ScenarioId[]
}
