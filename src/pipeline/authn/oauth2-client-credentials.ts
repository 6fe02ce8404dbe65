/**
 * Authenticator `oauth2_client_credentials` (Oathkeeper
 * `pipeline/authn/authenticator_oauth2_client_credentials.go`): a client presents its OAuth2
 * client id and secret as HTTP Basic credentials; they are valid if the configured token endpoint
 * grants them a token (client-credentials grant, RFC 6749 §4.4, with `required_scope` as `scope`).
 * The subject is the client id. The granted token is not used, and not kept.
 *
 * **Responsibility.** Responsible whenever the request has `Authorization: Basic …` (scheme
 * case-insensitive); other schemes and no header are not ours. The user and password are
 * `url.QueryUnescape`d as in Oathkeeper (`+` is a space). Where Oathkeeper's `r.BasicAuth()`
 * quietly declares itself not responsible for a malformed value, this is a 401
 * (`malformed_basic_credentials`): non-canonical base64, no `:`, invalid UTF-8 or percent
 * escapes, an empty client id, several credentials merged into one header (A48).
 *
 * **Outcomes** (Oathkeeper's table, fail closed):
 * | token endpoint | result | cached |
 * |---|---|---|
 * | 2xx with an `access_token` | success, subject = client id | positive, until `min(cache.ttl, expires_in)` |
 * | 400 / 401 / 403 (RFC 6749 §5.2 errors: `invalid_client`, …) | 401 `invalid_client_credentials` | negative, `cache.negative_ttl` |
 * | other 4xx (404, 405, …) | 401 `token_endpoint_rejected` (Oathkeeper: 404 → 404) | no |
 * | 2xx with an empty or missing `access_token` | 401 `empty_access_token` | no |
 * | 429 | 429, with `Retry-After` / `X-Ratelimit-*` passed on | no |
 * | 5xx, 3xx (never followed), a body that is not a token response | 503 (Oathkeeper: 500 / 503 / 504 as received) | no |
 * | transport error, timeout, reset, body over the cap | 503 `upstream_<kind>` | no |
 *
 * **Cache** (`cache.enabled`, default false as Oathkeeper, so a rotated secret stops working at
 * once; concurrent identical requests share one grant either way). Key:
 * `credentialKey(process salt, token_url, scopes, client_id, client_secret)`: a digest, never the
 * secret (Oathkeeper's key held `client_id:client_secret` in plain text), salted with 32 random
 * bytes per process so a heap dump does not allow offline guessing of weak secrets. Value: a shared
 * constant: only "these credentials were granted a token", not the token. Oathkeeper never caches
 * failures; here a definitive rejection is cached for `negative_ttl`, so a client retrying with a
 * wrong secret costs the token endpoint one call per window. (This does not slow down guessing
 * *different* secrets: every guess is a new key. Rate limiting belongs in front of Portcullis.)
 * Oathkeeper's `cache.max_tokens` (items) is accepted as `max_entries`.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { cacheConfigSchema, cacheName, cacheOptionsFrom, credentialKey, type LoadResult } from '../../cache/index.js'
import { MAX_TOKEN_LENGTH } from './shared/token.js'
import { PipelineError } from '../errors.js'
import { defineHandler, NOT_RESPONSIBLE } from '../types.js'
import {
  basicAuthorization,
  CredentialLookup,
  grantBody,
  HttpUrlSchema,
  requestClientCredentialsToken,
  RetrySchema,
  ScopeTokenSchema,
} from './shared/client-credentials-token.js'

const ID = 'oauth2_client_credentials'

/** Oathkeeper's `cache` block, whose `max_tokens` (an item count) maps onto our `max_entries`. */
const ClientCredentialsCacheSchema = z.preprocess((raw, ctx) => {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.hasOwn(raw, 'max_tokens')) return raw
  const { max_tokens: maxTokens, ...rest } = raw as Record<string, unknown>
  if (Object.hasOwn(rest, 'max_entries')) {
    ctx.issues.push({ code: 'custom', input: raw, path: ['max_tokens'], message: 'set either max_tokens (Oathkeeper) or max_entries, not both' })
    return rest
  }
  if (!Number.isSafeInteger(maxTokens) || (maxTokens as number) < 1) {
    ctx.issues.push({ code: 'custom', input: maxTokens, path: ['max_tokens'], message: 'must be a positive integer (an entry count)' })
    return rest
  }
  return { ...rest, max_entries: maxTokens }
}, cacheConfigSchema({ enabled: false }))

export const OAuth2ClientCredentialsConfig = z.strictObject({
  /** The OAuth2 token endpoint; required. */
  token_url: HttpUrlSchema,
  /** Sent as the grant's `scope`. */
  required_scope: z.array(ScopeTokenSchema).default([]),
  /** Accepted for compatibility, not used: see `RetrySchema`. */
  retry: RetrySchema.optional(),
  cache: ClientCredentialsCacheSchema.prefault({}),
})
export type OAuth2ClientCredentialsConfig = z.infer<typeof OAuth2ClientCredentialsConfig>

/** What a positive entry holds: nothing about the client but that it was granted a token. */
const GRANTED = Object.freeze({ ok: true as const })
type Granted = typeof GRANTED

/**
 * Per-process salt of the cache keys. Keys never leave the process (caches are in memory), so a
 * fresh salt per start costs nothing and makes a key useless for guessing the secret behind it.
 */
const KEY_SALT = randomBytes(32).toString('base64')

const MALFORMED = new PipelineError('ERR_UNAUTHENTICATED', 'malformed_basic_credentials', 'The Basic credentials are malformed')
const INVALID = new PipelineError('ERR_UNAUTHENTICATED', 'invalid_client_credentials', 'Access credentials are invalid')

/** Canonical, padded base64 (Go's `base64.StdEncoding`, which `r.BasicAuth()` uses). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const UTF8 = new TextDecoder('utf-8', { fatal: true })

export const oauth2ClientCredentials = defineHandler('authn', ID, OAuth2ClientCredentialsConfig, (cfg, deps) => {
  const url = new URL(cfg.token_url)
  const urlPart = url.href
  const body = grantBody(cfg.required_scope)
  const scopePart = cfg.required_scope.join(' ')
  const now = deps.now
  const log = deps.log.child({ handler: ID })

  const cache = cfg.cache.enabled
    ? deps.caches.create<Granted>(cacheOptionsFrom(cacheName(ID, { cache: cfg.cache }), cfg.cache))
    : undefined
  const lookup = new CredentialLookup<Granted>(cache)

  /** One grant; shared by every request with the same credentials, so it takes no caller signal. */
  async function grant(clientId: string, clientSecret: string): Promise<LoadResult<Granted>> {
    const started = now()
    const out = await requestClientCredentialsToken(deps.http, url, body, basicAuthorization(clientId, clientSecret))
    switch (out.kind) {
      case 'granted':
        return {
          kind: 'positive',
          value: GRANTED,
          sizeBytes: 0,
          ...(out.expiresInMs === undefined ? {} : { expiresAtMs: started + out.expiresInMs }),
        }
      case 'rejected':
        if (out.definitive) return { kind: 'negative', reason: 'invalid_client_credentials' }
        log.debug({ reason: 'token_endpoint_rejected', status: out.status }, 'token endpoint refused the grant')
        throw new PipelineError('ERR_UNAUTHENTICATED', 'token_endpoint_rejected', 'Access credentials are invalid')
      case 'empty_token':
        throw new PipelineError('ERR_UNAUTHENTICATED', 'empty_access_token', 'Access credentials are invalid')
      case 'rate_limited':
      case 'unavailable':
        log.debug({ reason: out.error.reason }, 'client credentials grant failed')
        throw out.error
    }
  }

  return {
    async authenticate(req, s, signal) {
      const authorization = req.headers.get('authorization')
      // Only Basic credentials are ours: other schemes belong to other authenticators.
      if (authorization === undefined || authorization.length < 6 || authorization.slice(0, 6).toLowerCase() !== 'basic ') {
        return NOT_RESPONSIBLE
      }
      const { clientId, clientSecret } = parseBasic(authorization.slice(6))
      const key = credentialKey(KEY_SALT, urlPart, scopePart, clientId, clientSecret)
      const r = await lookup.lookup(key, () => grant(clientId, clientSecret), signal)
      if (r.kind === 'negative') throw INVALID
      s.subject = clientId
      return undefined
    },
  }
})

/** Decodes `base64(user:password)` and query-unescapes both halves; throws 401 on anything malformed. */
function parseBasic(encoded: string): { clientId: string; clientSecret: string } {
  const b64 = encoded.trim()
  if (b64.length > MAX_TOKEN_LENGTH || !BASE64.test(b64)) throw MALFORMED
  let decoded: string
  try {
    decoded = UTF8.decode(Buffer.from(b64, 'base64'))
  } catch {
    throw MALFORMED
  }
  const colon = decoded.indexOf(':')
  if (colon < 0) throw MALFORMED
  const clientId = queryUnescape(decoded.slice(0, colon))
  const clientSecret = queryUnescape(decoded.slice(colon + 1))
  if (clientId === '') throw MALFORMED
  return { clientId, clientSecret }
}

/** Go's `url.QueryUnescape`: `+` is a space, `%XX` escapes must be valid (and, here, valid UTF-8). */
function queryUnescape(s: string): string {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '))
  } catch {
    throw MALFORMED
  }
}
