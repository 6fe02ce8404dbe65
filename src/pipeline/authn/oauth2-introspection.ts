/**
 * Authenticator `oauth2_introspection` (Oathkeeper `pipeline/authn/authenticator_oauth2_introspection.go`,
 * RFC 7662): asks the configured introspection endpoint whether a bearer token is active, then
 * checks the answer against the rule (token use, expiry, audience, issuer, scopes).
 *
 * **Responsibility.** Not responsible (the next authenticator runs) when there is no token at
 * `token_from` (default `Authorization: Bearer`) or it does not start with `prefix`: that is how
 * several token types share one header (Oathkeeper). An ambiguous or over-long credential is a 401.
 *
 * **The call.** `POST introspection_url`, `Content-Type: application/x-www-form-urlencoded`,
 * `Accept: application/json`, body `token=<token>` (the whole token, prefix included) plus, when
 * `scope_strategy` is `none`, `scope=<required_scope joined by spaces>` (possibly empty) so the
 * server enforces the scopes, as Oathkeeper does. Also `introspection_request_headers` (static),
 * `X-Forwarded-Host: <request host>` with `preserve_host`, and `Authorization: Bearer <token>` from
 * a client-credentials grant with `pre_authorization` (client-credentials-token.ts). The call is
 * retryable (introspection has no side effects) and bounded by `outbound.timeout`.
 *
 * **Outcomes** (fail closed; security.md A38, A39):
 * | endpoint answer | result | cached |
 * |---|---|---|
 * | transport error, timeout, reset, body over the cap | 503 `upstream_<kind>` | no |
 * | 429 | 429, with `Retry-After` / `X-Ratelimit-*` passed on | no |
 * | any other non-200 (3xx: redirects are not followed; 4xx: the endpoint refused *us*; 5xx) | 503 `introspection_bad_status` (Oathkeeper: 500) | no |
 * | 200 whose body is not a JSON object (HTML login page, garbage) | 503 `introspection_malformed` (an IdP fault, not the token's) | no |
 * | `active: false` | 401 `token_inactive` | negative |
 * | `active` anything but the boolean `true` (`"true"`, `1`, missing) or a claim of the wrong type (`exp: "…"`, `aud: 5`, `ext: []`) | 401 `introspection_invalid_response` | no |
 * | active, but `sub` missing or empty | 401 `no_subject` (Oathkeeper authenticates as subject "") | negative |
 * | active | checks below | positive, until `min(cache.ttl, exp)` |
 *
 * **Checks, on every request, cached or not** (CVE-2021-32701), in Oathkeeper's order:
 * `token_use` present and not `access_token`, or `token_type` naming a refresh or ID token → 403;
 * `exp` passed → 401 `token_expired`; an entry of `target_audience` missing from `aud` → 403;
 * `iss` not in `trusted_issuers` (when set) → 403; a `required_scope` not granted by `scope` under
 * `scope_strategy` (`exact` | `hierarchic` | `wildcard`; `none` leaves it to the server) → 403.
 * Success: subject `sub`; extra = `ext` plus `username`, `client_id`, `scope` (strings, "" when
 * absent) and `aud` when non-empty (Oathkeeper's session).
 *
 * **Cache** (`cache.enabled`, default false as Oathkeeper: without it a revoked token is refused on
 * its next request; with it, up to `cache.ttl` later). What is cached is the endpoint's answer,
 * validated for shape but never for the rule: positive (active) and negative (inactive, no subject)
 * results, in one bounded `AuthCache` per cache configuration, so rules with the same cache
 * settings share entries and each applies its own checks. The key is
 * `credentialKey(token, introspection_url, context, forwarded host)`, where `context` holds every
 * other input the answer depends on: the `scope` parameter (strategy `none` only), the static
 * request headers, and the `pre_authorization` client (`token_url`, `client_id`, `audience`,
 * `scope`; never the secret). Oathkeeper keyed by token alone, then by token and URL
 * (CVE-2026-33496), and disabled caching for strategy `none` with required scopes because the
 * server-enforced scopes were not in its key; they are in ours, so that case is cached too.
 * Concurrent requests with one token share one call whether or not the cache is enabled
 * (security.md A40); a failed call is shared by its waiters and never cached (A39).
 * @module
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { cacheConfigSchema, cacheName, cacheOptionsFrom, credentialKey, estimateBytes, type LoadResult } from '../../cache/index.js'
import { OutboundError, type OutboundResponse } from '../../http/client.js'
import { PipelineError } from '../errors.js'
import { defineHandler, NOT_RESPONSIBLE } from '../types.js'
import {
  CredentialLookup,
  formEncode,
  fromOutboundError,
  HttpUrlSchema,
  PreAuthorizedToken,
  RetrySchema,
  ScopeTokenSchema,
  tooManyRequests,
  upstreamUnavailable,
} from './shared/client-credentials-token.js'
import { SCOPE_MATCHERS, ScopeStrategySchema, type ScopeMatcher } from './shared/scope.js'
import { tokenExtractor, TokenFromSchema } from './shared/token.js'

const ID = 'oauth2_introspection'
const WHAT = 'token introspection endpoint'

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** Headers the call sets itself or that would break the HTTP request. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
])

const PreAuthorizationSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    client_id: z.string().default(''),
    client_secret: z.string().default(''),
    token_url: HttpUrlSchema.optional(),
    audience: z.string().default(''),
    scope: z.array(ScopeTokenSchema).default([]),
  })
  .check((ctx) => {
    const v = ctx.value
    if (!v.enabled) return
    const need = (key: 'client_id' | 'client_secret' | 'token_url'): void => {
      if (v[key] === undefined || v[key] === '') {
        ctx.issues.push({ code: 'custom', input: v, path: [key], message: `is required when pre_authorization is enabled` })
      }
    }
    need('client_id')
    need('client_secret')
    need('token_url')
  })

export const OAuth2IntrospectionConfig = z
  .strictObject({
    /** The RFC 7662 endpoint; required. */
    introspection_url: HttpUrlSchema,
    scope_strategy: ScopeStrategySchema.default('none'),
    required_scope: z.array(ScopeTokenSchema).default([]),
    /** Every one of these must be in the token's `aud`. */
    target_audience: z.array(z.string().min(1)).default([]),
    /** When non-empty, the token's `iss` must be one of these. */
    trusted_issuers: z.array(z.string().min(1)).default([]),
    /** Only tokens starting with this are ours (not responsible otherwise). */
    prefix: z.string().default(''),
    token_from: TokenFromSchema.optional(),
    /** Send `X-Forwarded-Host: <request host>` to the introspection endpoint. */
    preserve_host: z.boolean().default(false),
    /** Static headers for the introspection call (e.g. `Authorization: Basic …` for the endpoint). */
    introspection_request_headers: z
      .record(z.string().regex(HEADER_NAME, 'must be an HTTP header name'), z.string().regex(HEADER_VALUE, 'must not contain control characters'))
      .default({}),
    pre_authorization: PreAuthorizationSchema.optional(),
    /** Accepted for compatibility, not used: see `RetrySchema`. */
    retry: RetrySchema.optional(),
    cache: cacheConfigSchema({ enabled: false }).prefault({}),
  })
  .check((ctx) => {
    const v = ctx.value
    const seen = new Set<string>()
    for (const name of Object.keys(v.introspection_request_headers)) {
      const lower = name.toLowerCase()
      const path = ['introspection_request_headers', name]
      const issue = (message: string): void => void ctx.issues.push({ code: 'custom', input: v, path, message })
      if (seen.has(lower)) issue('is set twice (header names are case-insensitive)')
      seen.add(lower)
      if (RESERVED_HEADERS.has(lower)) issue('is set by Portcullis itself and cannot be configured')
      if (lower === 'authorization' && v.pre_authorization?.enabled === true) issue('conflicts with pre_authorization, which sets Authorization')
      if (lower === 'x-forwarded-host' && v.preserve_host) issue('conflicts with preserve_host, which sets X-Forwarded-Host')
    }
  })
export type OAuth2IntrospectionConfig = z.infer<typeof OAuth2IntrospectionConfig>

/**
 * An active token as the introspection endpoint described it: its raw claims, type-checked and
 * normalised, never judged against a rule. Shared by every request that hits it: frozen.
 */
interface Introspection {
  readonly sub: string
  /** `exp` in epoch ms. */
  readonly expMs: number | undefined
  readonly aud: readonly string[]
  readonly iss: string | undefined
  /** Granted scopes (`scope` split on spaces). */
  readonly scopes: readonly string[]
  readonly tokenUse: string | undefined
  readonly tokenType: string | undefined
  /** The session's `extra`, built once: `ext` + `username`, `client_id`, `scope`, `aud`. Deep-frozen. */
  readonly extra: Readonly<Record<string, unknown>>
}

/** `token_type` values that name something other than an access token. */
const NOT_ACCESS_TOKEN_TYPES: ReadonlySet<string> = new Set(['refresh_token', 'refresh', 'id_token'])

const INACTIVE = new PipelineError('ERR_UNAUTHENTICATED', 'token_inactive', 'Access credentials are invalid')

export const oauth2Introspection = defineHandler('authn', ID, OAuth2IntrospectionConfig, (cfg, deps) => {
  const extract = tokenExtractor(cfg.token_from)
  const prefix = cfg.prefix
  const url = new URL(cfg.introspection_url)
  const preserveHost = cfg.preserve_host
  const now = deps.now
  const log = deps.log.child({ handler: ID })

  const strategy = cfg.scope_strategy
  const matchScope: ScopeMatcher | undefined = strategy === 'none' ? undefined : SCOPE_MATCHERS[strategy]
  const requiredScopes = cfg.required_scope
  // Strategy `none`: the server enforces the scopes we send (always sent, possibly empty).
  const scopeParam = strategy === 'none' ? `&scope=${formEncode(requiredScopes.join(' '))}` : ''
  const audiences = cfg.target_audience
  const trustedIssuers = cfg.trusted_issuers.length === 0 ? undefined : new Set(cfg.trusted_issuers)

  const staticHeaders: Record<string, string> = {}
  for (const [name, value] of Object.entries(cfg.introspection_request_headers)) staticHeaders[name.toLowerCase()] = value
  staticHeaders['content-type'] = 'application/x-www-form-urlencoded'
  staticHeaders['accept'] = 'application/json'

  const pre = cfg.pre_authorization?.enabled === true ? cfg.pre_authorization : undefined
  const preAuth =
    pre === undefined
      ? undefined
      : new PreAuthorizedToken(
          deps.http,
          { tokenUrl: new URL(pre.token_url!), clientId: pre.client_id, clientSecret: pre.client_secret, audience: pre.audience, scopes: pre.scope },
          now,
        )

  // Every input of the call besides the token, URL and host, as one key part. The static headers
  // may hold a credential (Basic auth to the endpoint): only their digest goes into the key.
  const keyContext = JSON.stringify([
    strategy === 'none' ? `scope=${requiredScopes.join(' ')}` : '-',
    createHash('sha256').update(JSON.stringify(Object.entries(staticHeaders).sort())).digest('base64url'),
    pre === undefined ? '-' : [new URL(pre.token_url!).href, pre.client_id, pre.audience, pre.scope.join(' ')],
  ])
  const urlPart = url.href

  const cache = cfg.cache.enabled
    ? deps.caches.create<Introspection>(cacheOptionsFrom(cacheName(ID, { cache: cfg.cache }), cfg.cache))
    : undefined
  const lookup = new CredentialLookup<Introspection>(cache)

  /** One introspection call; shared by every request waiting on this key, so it takes no caller signal. */
  async function introspect(token: string, host: string): Promise<LoadResult<Introspection>> {
    const headers = { ...staticHeaders }
    if (preserveHost) headers['x-forwarded-host'] = host
    let bearer: string | undefined
    if (preAuth !== undefined) {
      bearer = await preAuth.token()
      headers['authorization'] = `Bearer ${bearer}`
    }
    let res: OutboundResponse
    try {
      res = await deps.http.request({ url, method: 'POST', headers, body: `token=${formEncode(token)}${scopeParam}`, retryable: true })
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err
      log.debug({ reason: `upstream_${err.kind}`, origin: err.origin }, 'introspection call failed')
      throw fromOutboundError(err, WHAT)
    }
    if (res.status === 429) throw tooManyRequests(res, 'introspection_rate_limited', WHAT)
    if (res.status !== 200) {
      // 401/403: the endpoint refused Portcullis's own token; fetch a new one next time.
      if (bearer !== undefined && (res.status === 401 || res.status === 403)) preAuth?.invalidate(bearer)
      log.debug({ reason: 'introspection_bad_status', status: res.status }, 'introspection call failed')
      throw upstreamUnavailable('introspection_bad_status', WHAT)
    }
    let body: unknown
    try {
      body = res.json()
    } catch {
      body = undefined
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      log.debug({ reason: 'introspection_malformed' }, 'introspection response is not a JSON object')
      throw upstreamUnavailable('introspection_malformed', WHAT)
    }
    return readIntrospection(body as Record<string, unknown>)
  }

  return {
    async authenticate(req, s, signal) {
      const token = extract(req)
      // No token here, or not one of ours: let the next authenticator try (Oathkeeper's prefix).
      if (token === undefined || !token.startsWith(prefix)) return NOT_RESPONSIBLE
      const host = preserveHost ? req.host : ''
      const key = credentialKey(token, urlPart, keyContext, host)
      const r = await lookup.lookup(key, () => introspect(token, host), signal)
      if (r.kind === 'negative') {
        throw r.reason === 'token_inactive' ? INACTIVE : new PipelineError('ERR_UNAUTHENTICATED', r.reason, 'Access credentials are invalid')
      }
      const t = r.value

      // Rule checks: on every request, cached or not.
      if ((t.tokenUse !== undefined && t.tokenUse !== '' && t.tokenUse !== 'access_token') || (t.tokenType !== undefined && NOT_ACCESS_TOKEN_TYPES.has(t.tokenType.toLowerCase()))) {
        throw new PipelineError('ERR_FORBIDDEN', 'token_use_not_access_token', 'The introspected token is not an access token')
      }
      if (t.expMs !== undefined && now() >= t.expMs) {
        throw new PipelineError('ERR_UNAUTHENTICATED', 'token_expired', 'The access token has expired')
      }
      for (const a of audiences) {
        if (!t.aud.includes(a)) throw new PipelineError('ERR_FORBIDDEN', 'audience_mismatch', 'The token is not intended for this audience')
      }
      if (trustedIssuers !== undefined && (t.iss === undefined || !trustedIssuers.has(t.iss))) {
        throw new PipelineError('ERR_FORBIDDEN', 'untrusted_issuer', 'The token was not issued by a trusted issuer')
      }
      if (matchScope !== undefined) {
        for (const scope of requiredScopes) {
          if (!matchScope(t.scopes, scope)) throw new PipelineError('ERR_FORBIDDEN', 'missing_scope', 'The token lacks a required scope')
        }
      }

      s.subject = t.sub
      s.extra = { ...t.extra }
      return undefined
    },
  }
})

const INVALID = (): PipelineError =>
  new PipelineError('ERR_UNAUTHENTICATED', 'introspection_invalid_response', 'The token introspection response is invalid')

/**
 * Validates the shape of an RFC 7662 response (not against any rule). `active: false` and a
 * missing subject are definitive negatives; anything type-invalid throws 401 (never cached).
 */
function readIntrospection(b: Record<string, unknown>): LoadResult<Introspection> {
  const active = b['active']
  if (active === false) return { kind: 'negative', reason: 'token_inactive' }
  // Strictly the boolean: `"false"`, `"true"`, `1` are all truthy or ambiguous in JS (A38).
  if (active !== true) throw INVALID()

  const exp = b['exp']
  if (exp !== undefined && exp !== null && (typeof exp !== 'number' || !Number.isFinite(exp))) throw INVALID()
  const expMs = typeof exp === 'number' ? exp * 1000 : undefined
  if (expMs !== undefined && !Number.isFinite(expMs)) throw INVALID()

  const aud = b['aud']
  let audList: readonly string[] = []
  if (typeof aud === 'string') audList = aud === '' ? [] : [aud]
  else if (Array.isArray(aud)) {
    if (!aud.every((a): a is string => typeof a === 'string')) throw INVALID()
    audList = aud
  } else if (aud !== undefined && aud !== null) throw INVALID()

  const scope = b['scope']
  let scopes: readonly string[] = []
  let scopeString = ''
  if (typeof scope === 'string') {
    scopeString = scope
    scopes = scope.split(' ').filter((x) => x !== '')
  } else if (Array.isArray(scope)) {
    if (!scope.every((x): x is string => typeof x === 'string')) throw INVALID()
    scopes = scope.filter((x) => x !== '')
    scopeString = scopes.join(' ')
  } else if (scope !== undefined && scope !== null) throw INVALID()

  const ext = b['ext']
  if (ext !== undefined && ext !== null && (typeof ext !== 'object' || Array.isArray(ext))) throw INVALID()

  const str = (key: string): string | undefined => {
    const v = b[key]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') throw INVALID()
    return v
  }
  const sub = str('sub')
  const iss = str('iss')
  const tokenUse = str('token_use')
  const tokenType = str('token_type')
  const username = str('username') ?? ''
  const clientId = str('client_id') ?? ''

  if (sub === undefined || sub === '') return { kind: 'negative', reason: 'no_subject' }

  // Spread (not Object.assign): a "__proto__" key in `ext` stays an own data property.
  const extra: Record<string, unknown> = { ...(ext as Record<string, unknown> | undefined), username, client_id: clientId, scope: scopeString }
  if (audList.length > 0) extra['aud'] = audList
  const value: Introspection = deepFreeze({ sub, expMs, aud: audList, iss, scopes, tokenUse, tokenType, extra })
  return { kind: 'positive', value, sizeBytes: estimateBytes(value), ...(expMs === undefined ? {} : { expiresAtMs: expMs }) }
}

/** Freezes parsed JSON (plain objects and arrays) iteratively. */
function deepFreeze<T>(root: T): T {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const v = stack.pop()
    if (typeof v !== 'object' || v === null || Object.isFrozen(v)) continue
    Object.freeze(v)
    for (const child of Object.values(v)) stack.push(child)
  }
  return root
}
