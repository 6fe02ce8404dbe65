/**
 * What the two OAuth2 authenticators (`oauth2_introspection`, `oauth2_client_credentials`) share:
 *
 * - the **client-credentials grant** (RFC 6749 §4.4) against a token endpoint, as Oathkeeper does it
 *   through golang.org/x/oauth2/clientcredentials: `POST token_url`, form body
 *   `grant_type=client_credentials[&scope=…][&audience=…]`, client id and secret form-encoded in an
 *   HTTP Basic `Authorization` header (RFC 6749 §2.3.1), any 2xx with a non-empty `access_token`
 *   is a grant. The outcome is classified, not mapped: a rejected grant means "bad client
 *   credentials" to `oauth2_client_credentials` (401) but "Portcullis is misconfigured" to
 *   `pre_authorization` (503);
 * - `PreAuthorizedToken`: the bearer token `oauth2_introspection` presents to the introspection
 *   endpoint (`pre_authorization`), fetched once, reused until shortly before it expires, with
 *   concurrent refreshes coalesced into one grant. The client secret lives only in the precomputed
 *   `Authorization` header of the grant; it is never in a cache key, a log line or an error;
 * - `CredentialLookup`: a credential check through the handler's `AuthCache` when `cache.enabled`,
 *   else through a bare coalescer (so 1 000 concurrent requests with one token cost one upstream
 *   call even without a cache);
 * - the config pieces (`HttpUrlSchema`, `ScopeTokenSchema`, `RetrySchema`) and the mapping of
 *   outbound failures to denials (`upstreamUnavailable`, `tooManyRequests`).
 * @module
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { CacheAbortError, type AuthCache, type LoadResult } from '../../../cache/index.js'
import { DurationSchema } from '../../../config/duration.js'
import { OutboundError, type HttpClient, type OutboundResponse } from '../../../http/client.js'
import { PipelineError } from '../../errors.js'

// ---------------------------------------------------------------------------------------------
// Configuration pieces

/**
 * An absolute `http:`/`https:` endpoint URL from configuration: no userinfo (credentials belong in
 * headers or `client_secret`), no fragment, and not a link-local address (cloud metadata services
 * live at 169.254.169.254 / fe80::, security.md §2.2 "SSRF via configurable jwksUri").
 */
export const HttpUrlSchema = z.string().check((ctx) => {
  const fail = (message: string): void => void ctx.issues.push({ code: 'custom', input: ctx.value, message })
  let url: URL
  try {
    url = new URL(ctx.value)
  } catch {
    fail('must be an absolute http(s) URL')
    return
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`must be an http(s) URL, got ${url.protocol}`)
  else if (url.username !== '' || url.password !== '') fail('must not carry credentials (userinfo); use the handler\'s credential settings')
  else if (url.hash !== '') fail('must not have a fragment')
  else if (isLinkLocal(url.hostname)) fail('must not point to a link-local address (cloud metadata endpoints)')
})

function isLinkLocal(hostname: string): boolean {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
  if (isIP(host) === 4) return host.startsWith('169.254.')
  if (isIP(host) === 6) return /^fe[89ab][0-9a-f]?:/i.test(host)
  return false
}

/**
 * One OAuth2 scope (RFC 6749 §3.3 scope-token): non-empty, no whitespace. A configured
 * `"read write"` would silently become two scopes on the wire; it is rejected at load instead.
 */
export const ScopeTokenSchema = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be one scope: printable ASCII without spaces, quotes or backslashes')

/**
 * Oathkeeper's `retry{max_delay, give_up_after}`: accepted so rules port unchanged, and not used.
 * Every outbound call is bounded by the process-wide `outbound.timeout` (default 150 ms, inside
 * Envoy's ext_authz deadline) and retried per `outbound.retry` (capped, budgeted). Oathkeeper's own
 * values were never what they claimed: `max_delay` was multiplied into a ≈28 h timeout, and the
 * introspection client ignores both (oathkeeper.md §5 "Timeout bug"); `give_up_after`'s 1 s default
 * is five times Envoy's whole deadline.
 */
export const RetrySchema = z.strictObject({
  max_delay: DurationSchema.optional(),
  give_up_after: DurationSchema.optional(),
})

// ---------------------------------------------------------------------------------------------
// Failure mapping

/** A 503 denial for a dependency that failed; `what` names it for the (client-safe) message. */
export function upstreamUnavailable(reason: string, what: string, cause?: unknown): PipelineError {
  return new PipelineError('ERR_UPSTREAM_UNAVAILABLE', reason, `The ${what} is unavailable`, cause === undefined ? undefined : { cause })
}

/** An `OutboundError` (timeout, reset, …) as a 503 denial with reason `upstream_<kind>`. */
export function fromOutboundError(err: OutboundError, what: string): PipelineError {
  return upstreamUnavailable(`upstream_${err.kind}`, what, err)
}

/** Response headers a 429 passes on to the client (Oathkeeper's `ErrTooManyRequests` list). */
const RATE_LIMIT_HEADERS = [
  ['retry-after', 'Retry-After'],
  ['x-ratelimit-limit', 'X-Ratelimit-Limit'],
  ['x-ratelimit-remaining', 'X-Ratelimit-Remaining'],
  ['x-ratelimit-reset', 'X-Ratelimit-Reset'],
  ['x-ratelimit-type', 'X-Ratelimit-Type'],
] as const

/** A header value worth passing on: short, printable ASCII (a delay in seconds or an HTTP date). */
const SAFE_HEADER_VALUE = /^[\x20-\x7e]{1,128}$/

/** A 429 denial carrying the upstream's `Retry-After` / `X-Ratelimit-*` headers (when sane). */
export function tooManyRequests(res: OutboundResponse, reason: string, what: string): PipelineError {
  const headers: (readonly [string, string])[] = []
  for (const [from, to] of RATE_LIMIT_HEADERS) {
    const value = res.headers[from]?.trim()
    if (value !== undefined && SAFE_HEADER_VALUE.test(value)) headers.push([to, value])
  }
  return new PipelineError('ERR_TOO_MANY_REQUESTS', reason, `The ${what} is rate limiting requests`, { headers })
}

// ---------------------------------------------------------------------------------------------
// The client-credentials grant

const FORM = 'application/x-www-form-urlencoded'

/** `application/x-www-form-urlencoded` encoding of one value (space → `+`, as Go's QueryEscape). */
export function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1)
}

/** The grant's form body; built once per configuration. */
export function grantBody(scopes: readonly string[], audience = ''): string {
  const p = new URLSearchParams({ grant_type: 'client_credentials' })
  if (scopes.length > 0) p.set('scope', scopes.join(' '))
  if (audience !== '') p.set('audience', audience)
  return p.toString()
}

/** `Basic base64(formEncode(id) ":" formEncode(secret))`, RFC 6749 §2.3.1 (golang.org/x/oauth2's AuthStyleInHeader). */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  return `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`, 'utf8').toString('base64')}`
}

/** What a token endpoint said, classified; the caller decides what it means. */
export type GrantOutcome =
  /** A 2xx with a usable `access_token`; `expiresInMs` from `expires_in` when present and sane. */
  | { readonly kind: 'granted'; readonly accessToken: string; readonly expiresInMs: number | undefined }
  /**
   * A 4xx other than 429. `definitive` for 400/401/403, the statuses RFC 6749 §5.2 uses for
   * `invalid_client`, `invalid_grant`, `invalid_scope`, …: asking again will not change the answer.
   */
  | { readonly kind: 'rejected'; readonly status: number; readonly definitive: boolean }
  /** A 2xx without a non-empty `access_token` (Oathkeeper: 401). */
  | { readonly kind: 'empty_token' }
  /** 429: `error` is the 429 denial with the endpoint's rate-limit headers. */
  | { readonly kind: 'rate_limited'; readonly error: PipelineError }
  /** Transport failure, timeout, 3xx, 5xx, a body that is not a token response. */
  | { readonly kind: 'unavailable'; readonly error: PipelineError }

const TOKEN_ENDPOINT = 'token endpoint'

/**
 * Performs one client-credentials grant. Never throws for anything the endpoint or the network
 * does (see `GrantOutcome`); rethrows only programming errors. `signal` is for callers that wait
 * alone; shared (coalesced) grants pass none and are bounded by `outbound.timeout`.
 */
export async function requestClientCredentialsToken(
  http: HttpClient,
  url: URL,
  body: string,
  authorization: string,
  signal?: AbortSignal,
): Promise<GrantOutcome> {
  let res: OutboundResponse
  try {
    res = await http.request({
      url,
      method: 'POST',
      headers: { 'content-type': FORM, accept: 'application/json', authorization },
      body,
      // Another client_credentials grant only mints another token: safe to repeat.
      retryable: true,
      ...(signal === undefined ? {} : { signal }),
    })
  } catch (err) {
    if (err instanceof OutboundError) return { kind: 'unavailable', error: fromOutboundError(err, TOKEN_ENDPOINT) }
    throw err
  }
  const { status } = res
  if (status === 429) return { kind: 'rate_limited', error: tooManyRequests(res, 'token_endpoint_rate_limited', TOKEN_ENDPOINT) }
  if (status >= 400 && status < 500) return { kind: 'rejected', status, definitive: status === 400 || status === 401 || status === 403 }
  if (status < 200 || status > 299) {
    // 3xx (redirects are never followed), 5xx, 1xx.
    return { kind: 'unavailable', error: upstreamUnavailable('token_endpoint_bad_status', TOKEN_ENDPOINT) }
  }
  const fields = parseTokenResponse(res)
  if (fields === undefined) return { kind: 'unavailable', error: upstreamUnavailable('token_endpoint_malformed', TOKEN_ENDPOINT) }
  const accessToken = fields.get('access_token')
  if (typeof accessToken !== 'string' || accessToken === '') return { kind: 'empty_token' }
  return { kind: 'granted', accessToken, expiresInMs: expiresInMs(fields.get('expires_in')) }
}

/**
 * The fields of a token response: JSON (RFC 6749 §5.1), or form-encoded for the endpoints
 * golang.org/x/oauth2 also accepts (`application/x-www-form-urlencoded`, `text/plain`).
 * `undefined` when the body is neither.
 */
function parseTokenResponse(res: OutboundResponse): ReadonlyMap<string, unknown> | undefined {
  const type = (res.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase()
  if (type === FORM || type === 'text/plain') {
    return new Map(new URLSearchParams(res.body.toString('utf8')))
  }
  let json: unknown
  try {
    json = res.json()
  } catch {
    return undefined
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined
  return new Map(Object.entries(json))
}

/** `expires_in` seconds (a JSON number or a numeric string, as golang.org/x/oauth2) → ms; else undefined. */
function expiresInMs(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,12}$/.test(v) ? Number(v) : NaN
  return Number.isFinite(n) && n > 0 && n < 10 * 365 * 86_400 ? Math.floor(n * 1000) : undefined
}

// ---------------------------------------------------------------------------------------------
// pre_authorization: the bearer token for the introspection endpoint

/** Token lifetime assumed when the endpoint sends no `expires_in`. */
const DEFAULT_TOKEN_LIFETIME_MS = 5 * 60_000
/** Refresh this long before expiry (golang.org/x/oauth2's expiryDelta), at most half the lifetime. */
const REFRESH_MARGIN_MS = 10_000
/** Token characters that can go into an `Authorization: Bearer` header as they are. */
const HEADER_SAFE_TOKEN = /^[\x21-\x7e]+$/

export interface PreAuthorizationSettings {
  readonly tokenUrl: URL
  readonly clientId: string
  readonly clientSecret: string
  readonly audience: string
  readonly scopes: readonly string[]
}

/**
 * One client-credentials token, shared by every introspection call of one handler configuration:
 * fetched on first use, reused until `expires_in − min(10 s, lifetime / 2)` (5 min when the endpoint
 * gives no `expires_in`), refreshed by exactly one grant however many calls need it at once.
 * Failures are not remembered: the next call tries again (the outbound circuit breaker keeps a dead
 * token endpoint from being hammered). Every failure, including a rejected grant or a 429, is a 503
 * to the client: it is Portcullis's own credential that failed, not the client's.
 */
export class PreAuthorizedToken {
  readonly #http: HttpClient
  readonly #url: URL
  readonly #body: string
  /** The only place the client secret is kept (inside the base64 Basic credentials). */
  readonly #authorization: string
  readonly #now: () => number
  #current: { readonly value: string; readonly refreshAtMs: number } | undefined
  #inflight: Promise<string> | undefined

  constructor(http: HttpClient, s: PreAuthorizationSettings, now: () => number) {
    this.#http = http
    this.#url = s.tokenUrl
    this.#body = grantBody(s.scopes, s.audience)
    this.#authorization = basicAuthorization(s.clientId, s.clientSecret)
    this.#now = now
  }

  /** The current token, fetching one if there is none or it is about to expire. Rejects with a 503 PipelineError. */
  token(): Promise<string> {
    const current = this.#current
    if (current !== undefined && this.#now() < current.refreshAtMs) return Promise.resolve(current.value)
    if (this.#inflight !== undefined) return this.#inflight
    const inflight = this.#fetch().finally(() => {
      if (this.#inflight === inflight) this.#inflight = undefined
    })
    this.#inflight = inflight
    return inflight
  }

  /** Forgets `token` (the introspection endpoint refused it), so the next call fetches a new one. */
  invalidate(token: string): void {
    if (this.#current?.value === token) this.#current = undefined
  }

  async #fetch(): Promise<string> {
    const started = this.#now()
    const out = await requestClientCredentialsToken(this.#http, this.#url, this.#body, this.#authorization)
    switch (out.kind) {
      case 'granted': {
        // It goes into an Authorization header as it is: CR/LF or spaces would corrupt the call.
        if (!HEADER_SAFE_TOKEN.test(out.accessToken)) throw upstreamUnavailable('pre_authorization_token_endpoint_malformed', 'introspection endpoint')
        const lifetime = out.expiresInMs ?? DEFAULT_TOKEN_LIFETIME_MS
        const refreshAtMs = started + lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 2)
        this.#current = { value: out.accessToken, refreshAtMs }
        return out.accessToken
      }
      case 'unavailable':
        throw upstreamUnavailable(`pre_authorization_${out.error.reason}`, 'introspection endpoint', out.error)
      case 'rate_limited':
        throw upstreamUnavailable('pre_authorization_rate_limited', 'introspection endpoint')
      case 'rejected':
        throw upstreamUnavailable('pre_authorization_rejected', 'introspection endpoint')
      case 'empty_token':
        throw upstreamUnavailable('pre_authorization_empty_token', 'introspection endpoint')
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cached or coalesced credential checks

/** A credential check's answer, from the cache or from a load. */
export type CheckResult<V> =
  | { readonly kind: 'positive'; readonly value: V; readonly expiresAtMs: number | undefined }
  | { readonly kind: 'negative'; readonly reason: string }

/** Keys the coalescer of an uncached handler tracks at most (as the cache's `maxInflight`). */
const MAX_INFLIGHT = 10_000

/**
 * Runs a credential check through `cache` (bounded, coalescing; see src/cache/auth-cache.ts) or,
 * when the handler's cache is disabled, through a coalescer only: concurrent checks of one key
 * share one `load()`, nothing is kept once it settles. `load()` must carry no caller's signal (it
 * is shared); a caller's `signal` only stops that caller waiting, with a 503 denial.
 */
export class CredentialLookup<V> {
  readonly #cache: AuthCache<V> | undefined
  readonly #inflight = new Map<string, Promise<LoadResult<V>>>()

  constructor(cache: AuthCache<V> | undefined) {
    this.#cache = cache
  }

  async lookup(key: string, load: () => Promise<LoadResult<V>>, signal: AbortSignal): Promise<CheckResult<V>> {
    try {
      if (this.#cache !== undefined) return await this.#cache.lookup(key, load, signal)
      const r = await waitUnlessAborted(this.#coalesced(key, load), signal)
      return r.kind === 'positive' ? { kind: 'positive', value: r.value, expiresAtMs: r.expiresAtMs } : { kind: 'negative', reason: r.reason }
    } catch (err) {
      if (err instanceof CacheAbortError) {
        throw new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'aborted', 'The check was cancelled before the credential was verified')
      }
      throw err
    }
  }

  #coalesced(key: string, load: () => Promise<LoadResult<V>>): Promise<LoadResult<V>> {
    const existing = this.#inflight.get(key)
    if (existing !== undefined) return existing
    const shared = load().finally(() => {
      if (this.#inflight.get(key) === shared) this.#inflight.delete(key)
    })
    // Every caller may have stopped waiting: the shared rejection must not become an unhandled one.
    shared.catch(() => {})
    if (this.#inflight.size < MAX_INFLIGHT) this.#inflight.set(key, shared)
    return shared
  }
}

function waitUnlessAborted<T>(shared: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CacheAbortError(signal.reason))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new CacheAbortError(signal.reason))
    signal.addEventListener('abort', onAbort, { once: true })
    shared.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
