/**
 * Authenticator `jwt` (Oathkeeper `pipeline/authn/authenticator_jwt.go` +
 * `credentials/verifier_default.go`): verifies a JWS-signed JSON Web Token against the keys of
 * one or more JWKS URLs and makes its claims the session (`subject = sub`, `extra = claims` with
 * the scopes normalised into `scp`).
 *
 * **Responsibility.** Responsible iff `token_from` yields a token (default `Authorization:
 * Bearer`) made of exactly three dot-separated segments whose first two (header, payload) are
 * non-empty. Anything else (an opaque token, a 5-segment JWE) is NOT_RESPONSIBLE, so a later
 * authenticator (`oauth2_introspection`, `bearer_token`) can handle other token types at the same
 * location, as in Oathkeeper. A JWE is therefore never decrypted. An empty third segment (an
 * unsecured `alg: none` token) stays ours and is denied with `jwt_alg`, not passed on.
 * Over-long or ambiguous credentials are rejected by `tokenExtractor` before any parsing.
 *
 * **Verification**, in order (all failures 401 `ERR_UNAUTHENTICATED`, reason in brackets):
 * 1. segments are base64url, the header is a JSON object [`jwt_malformed`]; `alg` is in
 *    `allowed_algorithms` [`jwt_alg`]; no `crit` header [`jwt_crit`]; `kid`, if present, a string
 *    of at most 1 KiB [`jwt_malformed`]. `jwk`, `jku`, `x5u`, `x5c` headers are never read.
 * 2. key: the first JWKS (in `jwks_urls` order) holding a key with the token's `kid` whose type,
 *    curve and own `alg` fit the token's `alg`. Keys need `use: "sig"` or no `use` (Oathkeeper
 *    demands `use: "sig"` exactly and never finds keys without it). A token without `kid` is
 *    accepted only if exactly one key of all the sets fits (Oathkeeper always requires `kid`)
 *    [`jwt_kid_required` when several fit]. An unknown `kid` triggers one rate-limited, coalesced
 *    refetch, then [`jwt_key_unknown`]. No usable key set (never fetched, or last success older
 *    than `jwks_max_staleness`) in a set that might hold the key → 503 `ERR_UPSTREAM_UNAVAILABLE`
 *    [`jwks_unavailable`].
 * 3. signature with node:crypto, synchronously (src/credentials/jws.ts) [`jwt_signature`] — before any claim is looked at, so an
 *    expired token with a bad signature is `jwt_signature` (CVE-2024-51744 shape).
 * 4. claim shapes: payload a JSON object; `exp`, `nbf`, `iat` finite numbers when present; `iss`
 *    a string; `aud` a string or an array of strings [`jwt_claims`]; `sub` a non-empty string
 *    [`jwt_subject`] (Oathkeeper accepts a missing `sub` and authenticates subject "").
 * 5. time, with `leeway`: `exp` required unless `require_exp: false` [`jwt_exp_missing`]
 *    (Oathkeeper: a token without `exp` never expires); `exp` passed [`jwt_expired`]; `nbf` or
 *    `iat` in the future [`jwt_not_yet_valid`]; `exp` further than `max_token_lifetime` ahead
 *    [`jwt_lifetime`].
 * 6. `target_audience`: every value in `aud` [`jwt_audience`]; `trusted_issuers`: `iss` one of
 *    them [`jwt_issuer`]; `required_scope` with `scope_strategy` [`jwt_scope`]. 401, as Oathkeeper
 *    (it wraps every verifier error in 401).
 *
 * **Cache** (`cache`, on by default): key `credentialKey(token, jwks_urls, allowed_algorithms)`,
 * value the verified, deep-frozen claims plus the thumbprint of the key that verified them,
 * lifetime `min(cache.ttl, exp)`. Only steps 1–4 (parsing and signature) are cached; steps 5–6
 * run on every hit, and a hit is only used while its key is still in a usable key set (so a key
 * removed from the JWKS stops its tokens at the next refresh, and a JWKS stale past
 * `jwks_max_staleness` gives 503 even on a hit). Definitive failures (`jwt_signature`,
 * `jwt_malformed`, `jwt_alg`, `jwt_crit`, `jwt_claims`, `jwt_subject`) are cached as negatives
 * for `cache.negative_ttl`; unknown kids and JWKS outages never are. One cache per
 * (`jwks_urls`, `allowed_algorithms`, `cache` block): rules differing only in claim checks share it.
 *
 * **JWKS.** One `JwksProvider` (src/credentials/jwks.ts) per (URL, JWKS settings) per process,
 * shared across rules and reloads, created at rule load (the first fetch starts then); see there
 * for refresh, staleness, rate limits, size caps and how a provider stops once no rule uses it.
 * @module
 */
import { z } from 'zod'
import { DurationSchema } from '../../config/duration.js'
import { CacheAbortError, cacheConfigSchema, cacheName, cacheOptionsFrom, credentialKey, estimateBytes } from '../../cache/index.js'
import type { AuthCache, LoadResult } from '../../cache/index.js'
import {
  ASYMMETRIC_ALGORITHMS,
  isAsymmetricAlgorithm,
  jwksProviderFor,
  type AsymmetricAlgorithm,
  type JwksProvider,
  type JwksSettings,
  type VerificationKey,
} from '../../credentials/jwks.js'
import { verifyJwsSignature } from '../../credentials/jws.js'
import { PipelineError } from '../errors.js'
import { defineHandler, NOT_RESPONSIBLE, type Authenticator, type Session } from '../types.js'
import { grantedScopes, SCOPE_MATCHERS, ScopeStrategySchema, type ScopeMatcher } from './shared/scope.js'
import { tokenExtractor, TokenFromSchema } from './shared/token.js'

const KiB = 1024
const MiB = 1024 * KiB
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/** Longest `kid` looked up; longer ones are malformed (no refetch for them). */
const MAX_KID_LENGTH = 1024

/** Default background refresh period (Oathkeeper's `jwks_ttl` is 30 s, refetched per request). */
const DEFAULT_REFRESH = '5m'

const durationIn = (minMs: number, maxMs: number, what: string) =>
  DurationSchema.pipe(
    z
      .number()
      .min(minMs, `${what} must be at least ${minMs} ms`)
      .max(maxMs, `${what} must be at most ${maxMs} ms`),
  )

/** `jwks_urls` entry: http(s) or an absolute file:// URL, no userinfo; normalised to its href. */
const JwksUrlSchema = z.string().transform((s, ctx) => {
  let u: URL
  try {
    u = new URL(s)
  } catch {
    ctx.issues.push({ code: 'custom', message: 'must be an absolute URL (http://, https:// or file:///)', input: s })
    return z.NEVER
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:' && u.protocol !== 'file:') {
    ctx.issues.push({ code: 'custom', message: `${u.protocol}// JWKS URLs are not supported (use http://, https:// or file:///)`, input: s })
    return z.NEVER
  }
  if (u.username !== '' || u.password !== '') {
    ctx.issues.push({ code: 'custom', message: 'a JWKS URL must not carry userinfo', input: s })
    return z.NEVER
  }
  if (u.protocol === 'file:' && u.host !== '' && u.host !== 'localhost') {
    ctx.issues.push({ code: 'custom', message: 'file URLs must be absolute: file:///path/to/jwks.json', input: s })
    return z.NEVER
  }
  u.hash = ''
  return u.href
})

/** `allowed_algorithms` entry: asymmetric JWS algorithms only. */
const AlgorithmSchema = z.string().transform((alg, ctx): AsymmetricAlgorithm => {
  if (isAsymmetricAlgorithm(alg)) return alg
  let message: string
  if (alg.toLowerCase() === 'none') message = '"none" (unsigned tokens) is never allowed'
  else if (/^HS(256|384|512)$/.test(alg)) {
    message = `${alg} is not supported: JWKS keys are public, and symmetric (oct) keys in a JWKS are ignored, so an HMAC token could only verify against a key others may know`
  } else message = `unsupported algorithm "${alg}" (supported: ${ASYMMETRIC_ALGORITHMS.join(', ')})`
  ctx.issues.push({ code: 'custom', message, input: alg })
  return z.NEVER
})

const JwtConfigObject = z.strictObject({
  /** JWKS locations, tried in order for a token's `kid`. Required. */
  jwks_urls: z.array(JwksUrlSchema).min(1, 'at least one JWKS URL is required'),
  allowed_algorithms: z.array(AlgorithmSchema).min(1).default(['RS256']),
  /** `iss` must equal one of them; empty: any issuer. */
  trusted_issuers: z.array(z.string().min(1)).default([]),
  /** Every value must be in `aud`. */
  target_audience: z.array(z.string().min(1)).default([]),
  required_scope: z.array(z.string().min(1)).default([]),
  scope_strategy: ScopeStrategySchema.default('none'),
  token_from: TokenFromSchema.optional(),
  /** Deny tokens without `exp` (Oathkeeper accepts them and they never expire). */
  require_exp: z.boolean().default(true),
  /** Clock skew tolerated for `exp`, `nbf`, `iat`. */
  leeway: durationIn(0, 5 * MINUTE, 'leeway').prefault('0s'),
  /** If set, deny tokens whose `exp` is further than this in the future. */
  max_token_lifetime: durationIn(1000, 366 * DAY, 'max_token_lifetime').optional(),
  /** Background JWKS refresh period. Default 5m (or `jwks_ttl` when only that is set). */
  jwks_refresh_interval: durationIn(1000, DAY, 'jwks_refresh_interval').optional(),
  /** Keep using the last good keys this long after the last successful fetch. */
  jwks_max_staleness: durationIn(1000, 7 * DAY, 'jwks_max_staleness').prefault('1h'),
  /** Least time between two fetches triggered by unknown kids (or by missing keys). */
  jwks_unknown_kid_cooldown: durationIn(1000, HOUR, 'jwks_unknown_kid_cooldown').prefault('30s'),
  /** Deadline of one JWKS fetch. */
  jwks_fetch_timeout: durationIn(10, MINUTE, 'jwks_fetch_timeout').prefault('2s'),
  /** Longest a request waits for a JWKS fetch (first fetch, unknown kid); Oathkeeper's key too. */
  jwks_max_wait: durationIn(0, 30_000, 'jwks_max_wait').prefault('1s'),
  /** Oathkeeper's JWKS cache TTL: accepted as `jwks_refresh_interval` when that is not set. */
  jwks_ttl: durationIn(1000, DAY, 'jwks_ttl').optional(),
  /** Cap of a JWKS body or file. */
  jwks_max_bytes: z.int().min(KiB).max(16 * MiB).default(MiB),
  cache: cacheConfigSchema({ enabled: true, ttl: '1m' }).prefault({}),
})

export const JwtConfig = JwtConfigObject.superRefine((c, ctx) => {
  if (c.scope_strategy === 'none' && c.required_scope.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['scope_strategy'],
      message: 'required_scope is set but scope_strategy is "none": choose exact, hierarchic or wildcard (Oathkeeper fails every request with this config)',
    })
  }
  const refresh = c.jwks_refresh_interval ?? c.jwks_ttl
  if (refresh !== undefined && c.jwks_max_staleness < refresh) {
    ctx.addIssue({
      code: 'custom',
      path: ['jwks_max_staleness'],
      message: 'jwks_max_staleness must be at least the refresh interval, or keys would expire between refreshes',
    })
  }
}).transform((c) => ({
  ...c,
  jwks_urls: [...new Set(c.jwks_urls)],
  allowed_algorithms: [...new Set(c.allowed_algorithms)],
  jwks_refresh_interval: c.jwks_refresh_interval ?? c.jwks_ttl ?? DurationSchema.parse(DEFAULT_REFRESH),
}))
export type JwtConfig = z.output<typeof JwtConfig>

/** A token whose signature verified: what the cache holds (shared, immutable). */
interface Verified {
  /** The claims with scopes normalised into `scp`, deep-frozen. */
  readonly extra: Readonly<Record<string, unknown>>
  readonly sub: string
  readonly iss: string | undefined
  /** `aud` as a list. */
  readonly aud: readonly string[]
  readonly scopes: readonly string[]
  /** Seconds since the epoch, when present. */
  readonly exp: number | undefined
  readonly nbf: number | undefined
  readonly iat: number | undefined
  /** Which provider and which key verified the signature. */
  readonly provider: number
  readonly thumbprint: string
}

const MESSAGES = {
  jwt_malformed: 'The JSON Web Token is malformed',
  jwt_alg: 'The JSON Web Token is signed with an algorithm that is not allowed',
  jwt_crit: 'The JSON Web Token has critical header parameters that are not supported',
  jwt_kid_required: 'The JSON Web Token must name its key (kid)',
  jwt_key_unknown: 'The JSON Web Token is signed with an unknown key',
  jwt_signature: 'The JSON Web Token signature is invalid',
  jwt_claims: 'The JSON Web Token has invalid claims',
  jwt_subject: 'The JSON Web Token has no valid subject (sub)',
  jwt_exp_missing: 'The JSON Web Token has no expiry (exp)',
  jwt_expired: 'The JSON Web Token is expired',
  jwt_not_yet_valid: 'The JSON Web Token is not valid yet',
  jwt_lifetime: 'The JSON Web Token is valid for longer than allowed',
  jwt_audience: 'The JSON Web Token is not intended for this audience',
  jwt_issuer: 'The JSON Web Token issuer is not trusted',
  jwt_scope: 'The JSON Web Token is missing a required scope',
  jwt_invalid: 'The JSON Web Token is invalid',
} as const
type Reason = keyof typeof MESSAGES

/** One error per reason, built once: floods of bad tokens construct no `Error`s. */
const DENIED: Readonly<Record<Reason, PipelineError>> = Object.fromEntries(
  Object.entries(MESSAGES).map(([reason, message]) => [reason, new PipelineError('ERR_UNAUTHENTICATED', reason, message)]),
) as Record<Reason, PipelineError>

const JWKS_UNAVAILABLE = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'jwks_unavailable', 'The keys to verify the JSON Web Token are unavailable')
const DEADLINE = new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'deadline_exceeded', 'The check did not finish in time')

/** Reasons that depend on the token alone (given the key sets): cached as negatives. */
const DEFINITIVE: ReadonlySet<string> = new Set<Reason>(['jwt_malformed', 'jwt_alg', 'jwt_crit', 'jwt_signature', 'jwt_claims', 'jwt_subject'])

/**
 * An internal verdict, thrown inside this module and turned into `DENIED[reason]` at its edge.
 * Not an `Error`: it captures no stack, so a flood of bad tokens costs no stack traces.
 */
class Denied {
  private constructor(readonly reason: Reason) {}
  static readonly of: Readonly<Record<Reason, Denied>> = Object.fromEntries(
    Object.keys(MESSAGES).map((r) => [r, new Denied(r as Reason)]),
  ) as Record<Reason, Denied>
}

const B64URL = /^[A-Za-z0-9_-]+$/
const B64URL_OR_EMPTY = /^[A-Za-z0-9_-]*$/

export const jwt = defineHandler('authn', 'jwt', JwtConfig, (config, deps) => {
  const extract = tokenExtractor(config.token_from)
  const algorithms: ReadonlySet<string> = new Set(config.allowed_algorithms)
  const settings: JwksSettings = {
    refreshIntervalMs: config.jwks_refresh_interval,
    maxStalenessMs: config.jwks_max_staleness,
    unknownKidCooldownMs: config.jwks_unknown_kid_cooldown,
    fetchTimeoutMs: config.jwks_fetch_timeout,
    maxBytes: config.jwks_max_bytes,
  }
  const providers: readonly JwksProvider[] = config.jwks_urls.map((url) => jwksProviderFor(deps, url, settings))
  const maxWaitMs = config.jwks_max_wait
  const leewayMs = config.leeway
  const requireExp = config.require_exp
  const maxLifetimeMs = config.max_token_lifetime
  const audiences = config.target_audience
  const issuers: ReadonlySet<string> | undefined = config.trusted_issuers.length > 0 ? new Set(config.trusted_issuers) : undefined
  const requiredScopes = config.required_scope
  const matchScope: ScopeMatcher | undefined = config.scope_strategy === 'none' ? undefined : SCOPE_MATCHERS[config.scope_strategy]
  const now = deps.now

  // Everything the signature result depends on: the key sets and the algorithms.
  const scopeId = JSON.stringify([config.jwks_urls, config.allowed_algorithms])
  const cache: AuthCache<Verified> | undefined = config.cache.enabled
    ? deps.caches.create<Verified>(
        cacheOptionsFrom(cacheName('jwt', { jwks_urls: config.jwks_urls, allowed_algorithms: config.allowed_algorithms, cache: config.cache }), config.cache),
      )
    : undefined

  /** Finds the key for (alg, kid), fetching again at most once (rate limited) if none fits. */
  async function resolveKey(alg: AsymmetricAlgorithm, kid: string | undefined, signal: AbortSignal | undefined): Promise<{ key: VerificationKey; provider: number }> {
    for (let attempt = 0; ; attempt++) {
      let unavailable = false
      const fits: { key: VerificationKey; provider: number }[] = []
      for (let i = 0; i < providers.length; i++) {
        const p = providers[i]!
        const set = p.current()
        if (set === undefined) {
          unavailable = true
          continue
        }
        const keys = p.select(set, alg, kid)
        if (kid !== undefined && keys.length > 0) return { key: keys[0]!, provider: i }
        for (const key of keys) fits.push({ key, provider: i })
      }
      if (kid === undefined) {
        if (fits.length > 1) throw Denied.of.jwt_kid_required
        if (fits.length === 1 && !unavailable) return fits[0]!
      }
      if (attempt > 0) {
        if (unavailable) throw JWKS_UNAVAILABLE
        if (fits.length === 1) return fits[0]!
        throw Denied.of.jwt_key_unknown
      }
      await Promise.all(providers.map((p) => p.refetch(maxWaitMs, signal)))
      if (signal?.aborted === true) throw DEADLINE
    }
  }

  /** Steps 1–4: parse, find the key, verify the signature, check claim shapes. */
  async function verify(token: string, signal: AbortSignal | undefined): Promise<Verified> {
    const dot1 = token.indexOf('.')
    const dot2 = token.indexOf('.', dot1 + 1)
    const h = token.slice(0, dot1)
    if (!B64URL.test(h) || !B64URL.test(token.slice(dot1 + 1, dot2)) || !B64URL_OR_EMPTY.test(token.slice(dot2 + 1))) {
      throw Denied.of.jwt_malformed
    }
    const header = parseObject(h)
    if (header === undefined) throw Denied.of.jwt_malformed
    const alg = header['alg']
    if (typeof alg !== 'string' || !algorithms.has(alg) || !isAsymmetricAlgorithm(alg)) throw Denied.of.jwt_alg
    if (Object.hasOwn(header, 'crit')) throw Denied.of.jwt_crit
    // Without `crit`, `b64` (RFC 7797) has no effect: the payload is always base64url here.
    const kid = header['kid']
    if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH)) throw Denied.of.jwt_malformed

    const { key, provider } = await resolveKey(alg, kid, signal)
    // Synchronous node:crypto check (src/credentials/jws.ts); the header, alg and key were checked above.
    if (!verifyJwsSignature(alg, key.key, token.slice(0, dot2), token.slice(dot2 + 1))) throw Denied.of.jwt_signature
    const claims = parsePayload(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url'))
    if (claims === undefined) throw Denied.of.jwt_malformed
    return toVerified(claims, provider, key.thumbprint)
  }

  /** The cache loader: definitive failures become negatives, everything else is thrown. */
  async function load(token: string): Promise<LoadResult<Verified>> {
    try {
      const v = await verify(token, undefined)
      return { kind: 'positive', value: v, sizeBytes: estimateBytes(v), ...(v.exp === undefined ? {} : { expiresAtMs: v.exp * 1000 }) }
    } catch (err) {
      if (err instanceof Denied && DEFINITIVE.has(err.reason)) return { kind: 'negative', reason: err.reason }
      throw err
    }
  }

  /** Is the key that verified a cached token still in a usable key set? */
  function stillTrusted(v: Verified): boolean {
    return providers[v.provider]?.current()?.thumbprints.has(v.thumbprint) === true
  }

  /** Steps 5–6, on every request, cached or not. */
  function checkClaims(v: Verified): void {
    const t = now()
    if (v.exp === undefined) {
      if (requireExp || maxLifetimeMs !== undefined) throw Denied.of.jwt_exp_missing
    } else {
      if (v.exp * 1000 <= t - leewayMs) throw Denied.of.jwt_expired
      if (maxLifetimeMs !== undefined && v.exp * 1000 - t > maxLifetimeMs + leewayMs) throw Denied.of.jwt_lifetime
    }
    if (v.nbf !== undefined && v.nbf * 1000 > t + leewayMs) throw Denied.of.jwt_not_yet_valid
    if (v.iat !== undefined && v.iat * 1000 > t + leewayMs) throw Denied.of.jwt_not_yet_valid
    for (const a of audiences) if (!v.aud.includes(a)) throw Denied.of.jwt_audience
    if (issuers !== undefined && (v.iss === undefined || !issuers.has(v.iss))) throw Denied.of.jwt_issuer
    if (matchScope !== undefined) {
      for (const s of requiredScopes) if (!matchScope(v.scopes, s)) throw Denied.of.jwt_scope
    }
  }

  /** A verdict of this module as the pipeline sees it (always throws). */
  function fail(err: unknown, signal: AbortSignal): never {
    if (err instanceof Denied) throw DENIED[err.reason] ?? DENIED.jwt_invalid
    if (err instanceof PipelineError) throw err
    if (err instanceof CacheAbortError || signal.aborted) throw DEADLINE
    throw err
  }

  /**
   * Steps 5–6, then the session: each request gets its own (shallow) copy of the cached claims, so
   * a later stage may add keys to `extra` without touching the shared, deep-frozen entry.
   */
  function accept(v: Verified, s: Session, signal: AbortSignal): void {
    try {
      checkClaims(v)
    } catch (err) {
      fail(err, signal)
    }
    s.subject = v.sub
    s.extra = { ...v.extra }
  }

  /**
   * Cached: one lookup and one continuation per request (a hit costs no verification, no copy).
   * A hit is used only while its key is still in a usable key set; otherwise the entry is dropped
   * and the token verified from scratch. Negative entries answer with their cached reason.
   */
  function run(token: string, s: Session, signal: AbortSignal): void | Promise<void> {
    const onError = (err: unknown): never => fail(err, signal)
    if (cache === undefined) return verify(token, signal).then((v) => accept(v, s, signal), onError)
    const key = credentialKey(token, scopeId)
    // A hit answers synchronously: no promise, no microtask (the common case at load).
    const hit = cache.get(key)
    if (hit !== undefined) {
      if (hit.kind === 'negative') fail(Denied.of[hit.reason as Reason] ?? Denied.of.jwt_invalid, signal)
      if (stillTrusted(hit.value)) return accept(hit.value, s, signal)
      cache.delete(key)
      return verify(token, signal).then((v) => accept(v, s, signal), onError)
    }
    return cache.lookup(key, () => load(token), signal).then((r): void | Promise<void> => {
      if (r.kind === 'negative') fail(Denied.of[r.reason as Reason] ?? Denied.of.jwt_invalid, signal)
      if (!r.hit || stillTrusted(r.value)) return accept(r.value, s, signal)
      // The key was rotated out, or its set went stale: forget the entry and verify from scratch.
      cache.delete(key)
      return verify(token, signal).then((v) => accept(v, s, signal), onError)
    }, onError)
  }

  const authenticator: Authenticator = {
    authenticate(req, s, signal) {
      const token = extract(req)
      if (token === undefined) return NOT_RESPONSIBLE
      // Oathkeeper: a token that is not header.payload.signature is not ours, so that fallback
      // authenticators (oauth2_introspection, bearer_token) can take other token types (opaque
      // tokens, JWE) at the same location. We also need a non-empty header and payload.
      const dot1 = token.indexOf('.')
      if (dot1 <= 0) return NOT_RESPONSIBLE
      const dot2 = token.indexOf('.', dot1 + 1)
      if (dot2 === -1 || dot2 === dot1 + 1 || token.indexOf('.', dot2 + 1) !== -1) return NOT_RESPONSIBLE
      return run(token, s, signal)
    },
  }
  return authenticator
})

/** base64url → JSON object, or undefined. */
function parseObject(segment: string): Record<string, unknown> | undefined {
  return parseJsonObject(Buffer.from(segment, 'base64url'))
}

function parsePayload(bytes: Uint8Array): Record<string, unknown> | undefined {
  return parseJsonObject(bytes)
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  let v: unknown
  try {
    v = JSON.parse(UTF8.decode(bytes))
  } catch {
    return undefined
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined
}

/** Step 4 (claim shapes) and the cached form: scopes normalised into `scp`, everything frozen. */
function toVerified(claims: Record<string, unknown>, provider: number, thumbprint: string): Verified {
  const num = (name: string): number | undefined => {
    if (!Object.hasOwn(claims, name)) return undefined
    const v = claims[name]
    if (typeof v !== 'number' || !Number.isFinite(v)) throw Denied.of.jwt_claims
    return v
  }
  const exp = num('exp')
  const nbf = num('nbf')
  const iat = num('iat')
  let iss: string | undefined
  if (Object.hasOwn(claims, 'iss')) {
    const v = claims['iss']
    if (typeof v !== 'string') throw Denied.of.jwt_claims
    iss = v
  }
  let aud: readonly string[] = []
  if (Object.hasOwn(claims, 'aud')) {
    const v = claims['aud']
    if (typeof v === 'string') aud = [v]
    else if (Array.isArray(v) && v.every((a) => typeof a === 'string')) aud = v as string[]
    else throw Denied.of.jwt_claims
  }
  const sub = Object.hasOwn(claims, 'sub') ? claims['sub'] : undefined
  if (typeof sub !== 'string' || sub === '') throw Denied.of.jwt_subject

  // Oathkeeper: the first present of scp, scope, scopes is removed and re-set as `scp` (a list).
  const scopes = grantedScopes(claims)
  let removed: string | undefined
  for (const k of ['scp', 'scope', 'scopes']) {
    if (Object.hasOwn(claims, k) && claims[k] !== undefined && claims[k] !== null) {
      removed = k
      break
    }
  }
  // Copied key by key rather than spread-then-`delete`: a `delete` turns the object into a slow
  // dictionary, and every request copies this object (`s.extra = { ...v.extra }`).
  const extra: Record<string, unknown> = {}
  for (const k of Object.keys(claims)) {
    if (k === removed) continue
    if (k === '__proto__') Object.defineProperty(extra, k, { value: claims[k], enumerable: true, writable: true, configurable: true })
    else extra[k] = claims[k]
  }
  extra['scp'] = scopes
  deepFreeze(extra)
  return Object.freeze({ extra, sub, iss, aud: Object.freeze([...aud]), scopes: Object.freeze([...scopes]), exp, nbf, iat, provider, thumbprint })
}

/** Freezes a JSON value iteratively (no recursion limit for deeply nested claims). */
function deepFreeze(root: object): void {
  const stack: object[] = [root]
  while (stack.length > 0) {
    const o = stack.pop()!
    if (Object.isFrozen(o)) continue
    Object.freeze(o)
    for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) stack.push(v)
  }
}
