/**
 * The remote session check shared by `cookie_session` and `bearer_token` (Oathkeeper
 * `forwardRequestToSessionStore` / `PrepareRequest`): send the request's credential to a session
 * endpoint (e.g. Ory Kratos `/sessions/whoami`) and take the subject and extra from its JSON answer.
 *
 * **The outbound call**, built once at load as far as possible (`createSessionCheck`):
 * - URL: `check_session_url`, parsed and validated at load (http(s), no userinfo, no fragment).
 *   `preserve_path: false` (Oathkeeper's default) replaces its path with the request's canonical
 *   path; `preserve_query: true` (default) keeps its own query, `false` replaces it with the
 *   request's query. With both preserved the same `URL` object serves every request; otherwise
 *   one is built per request from the precomputed origin and the request's path/query.
 * - Method: `force_method`, `GET` (default) or `POST`. **Deviation:** Oathkeeper forwards the
 *   client's method unless `force_method` is set; a session endpoint that answers a client-chosen
 *   `OPTIONS`/`DELETE` differently could then flip the decision (security.md §2.1, A43).
 * - Headers, in this order, later ones overwriting: `accept: application/json`; the request's
 *   values of the credential's carrier header(s) (`cookie` for cookie_session, the `token_from`
 *   header for bearer_token) and of every `forward_http_headers` entry that is present; the static
 *   `additional_headers`; `x-forwarded-host: <request host>` when `preserve_host`. Nothing else:
 *   no other client header, never a body. Hop-by-hop/framing names (`host`, `connection`,
 *   `content-length`, …) are rejected at load, and so is an `additional_headers` entry that would
 *   overwrite the credential.
 * - Deadline and body cap: the outbound client's (`outbound.timeout`, `max_response_bytes`), or
 *   the handler's `timeout`. Redirects are never followed.
 *
 * **The answer** (fail closed; Oathkeeper's codes in brackets where they differ):
 * | session endpoint | result |
 * |---|---|
 * | 200, JSON object, non-empty string without control characters at `subject_from` | success: `subject`; `extra` = the object at `extra_from`, `{}` if absent or not an object |
 * | 200 with `{}`, an empty/absent/non-string subject, HTML, invalid JSON, a non-object | 401 `invalid_session_response` / `invalid_subject` [Oathkeeper: success with subject "" or 403] |
 * | 401, 403 | 401 `session_invalid` (cacheable negative) |
 * | 3xx (not followed) | 401 `session_check_redirect` |
 * | 429 | 429 `upstream_rate_limited`, copying `Retry-After` and `X-RateLimit-*` |
 * | 5xx | 503 `upstream_server_error` [Oathkeeper: 401] |
 * | any other status | 401 `session_check_rejected` |
 * | timeout, connect/reset, body too large, circuit open, overloaded | 503 `upstream_<kind>` [Oathkeeper: 403, and no timeout at all] |
 *
 * **Cache** (`cache.enabled`, default false, as Oathkeeper, which has no cache here): one
 * `AuthCache` per (handler, config). Key = `credentialKey(method, URL as built, every forwarded
 * header name and value, x-forwarded-host, the extracted credential)`: exactly what the endpoint
 * sees, never the rest of the request (Oathkeeper's hydrator keyed on all request headers and
 * never hit). Positive entries hold the validated `{subject, extra}` for `cache.ttl` (default 10s:
 * the revocation window); 401/403 are cached for `cache.negative_ttl`; nothing else is cached.
 * Concurrent identical checks share one call. The shared call does not use any one caller's
 * AbortSignal (a cancelled Check stops waiting; the call finishes within its own deadline).
 * @module
 */
import { z } from 'zod'
import { DurationSchema } from '../../../config/duration.js'
import {
  cacheConfigSchema,
  cacheName,
  cacheOptionsFrom,
  CacheAbortError,
  credentialKey,
  estimateBytes,
  type AuthCache,
  type LoadResult,
} from '../../../cache/index.js'
import { OutboundError, type OutboundResponse } from '../../../http/client.js'
import { PipelineError } from '../../errors.js'
import type { HandlerDeps, RequestView, Session } from '../../types.js'

/** RFC 9110 `token`: the characters of a header field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Header names that may be neither forwarded nor set: framing and connection-level headers (the
 * outbound client owns them; undici rejects several) and `host` (use `preserve_host`).
 */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'content-length',
  'http2-settings',
])

const FORBIDDEN_VALUE_CHARS = /[\0\r\n]/

/** The GJSON subset we accept: `@this`, or dot-separated plain keys / array indexes. */
const JSON_PATH = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/
const THIS = '@this'
const DIGITS = /^(?:0|[1-9][0-9]{0,8})$/

/** Subjects are emitted in headers and logs: control characters are never accepted. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/

/** Rate-limit headers copied from a 429 (as Oathkeeper's `ErrTooManyRequests`). */
const RATE_LIMIT_HEADERS = [
  ['retry-after', 'Retry-After'],
  ['x-ratelimit-limit', 'X-RateLimit-Limit'],
  ['x-ratelimit-remaining', 'X-RateLimit-Remaining'],
  ['x-ratelimit-reset', 'X-RateLimit-Reset'],
  ['x-ratelimit-type', 'X-RateLimit-Type'],
] as const
/** A copied header value must be short printable ASCII (it ends up in the denied response). */
const SAFE_COPIED_VALUE = /^[\x20-\x7e]{1,128}$/

/** Defaults of the `cache` block: off (Oathkeeper has no cache here), 10 s revocation window when on. */
export const SESSION_CACHE_DEFAULTS = { enabled: false, ttl: '10s' } as const

const headerName = z
  .string()
  .regex(TOKEN, 'must be an HTTP header name')
  .transform((s) => s.toLowerCase())
  .refine((s) => !RESERVED_HEADERS.has(s), { message: 'this header is connection-level or framing and may not be sent to the session endpoint' })

/** A `subject_from` / `extra_from` path with its default; `""` means the default (as Oathkeeper). */
function jsonPath(def: string, allowThis: boolean) {
  return z
    .string()
    .max(256)
    .default(def)
    .transform((s) => (s === '' ? def : s))
    .refine((s) => (allowThis && s === THIS) || JSON_PATH.test(s), {
      message: allowThis
        ? 'must be "@this" or a dotted path of plain keys (e.g. "identity.id"); other GJSON syntax is not supported'
        : 'must be a dotted path of plain keys (e.g. "identity.id"); other GJSON syntax is not supported',
    })
}

const CheckSessionUrl = z.string().superRefine((s, ctx) => {
  let u: URL
  try {
    u = new URL(s)
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' })
    return
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'must be an http or https URL' })
  if (u.username !== '' || u.password !== '') {
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials (userinfo); use additional_headers' })
  }
  if (s.includes('#')) ctx.addIssue({ code: 'custom', message: 'must not have a fragment' })
})

/**
 * The config keys both handlers share, as a zod shape to spread into each handler's schema
 * (`subject_from` defaults differ: `subject` for cookie_session, `sub` for bearer_token).
 */
export function sessionCheckShape(subjectFromDefault: string) {
  return {
    /** The session endpoint. Required. */
    check_session_url: CheckSessionUrl,
    /** false (default, Oathkeeper): the check URL's path is replaced by the request's path. */
    preserve_path: z.boolean().default(false),
    /** true (default): the check URL keeps its own query; false: the request's query replaces it. */
    preserve_query: z.boolean().default(true),
    /** Send `X-Forwarded-Host: <request host>`. */
    preserve_host: z.boolean().default(false),
    /** `GET` (default; Oathkeeper: the request's method) or `POST`, case-insensitive. */
    force_method: z
      .string()
      .transform((s) => s.toUpperCase())
      .pipe(z.enum(['GET', 'POST'], { message: 'must be GET or POST' }))
      .default('GET'),
    /** Request headers copied to the session check when present (allow-list, case-insensitive). */
    forward_http_headers: z.array(headerName).max(64).default([]),
    /** Static headers set on the session check, after the forwarded ones. */
    additional_headers: z
      .record(z.string(), z.string().refine((v) => !FORBIDDEN_VALUE_CHARS.test(v), 'must not contain NUL, CR or LF'))
      .default({}),
    subject_from: jsonPath(subjectFromDefault, false),
    extra_from: jsonPath('extra', true),
    /** Deadline of the session check (Go duration); default `outbound.timeout`. */
    timeout: DurationSchema.pipe(z.number().min(1, 'timeout must be at least 1ms').max(60_000, 'timeout must be at most 60s')).optional(),
    cache: cacheConfigSchema(SESSION_CACHE_DEFAULTS).prefault({}),
  }
}

const SharedSchema = z.strictObject(sessionCheckShape('subject'))
/** The parsed shared part of both handlers' configs. */
export type SessionCheckConfig = z.output<typeof SharedSchema>

/**
 * Cross-field checks both schemas run (`.check((ctx) => checkSessionCheckConfig(ctx.issues, ctx.value, carriers))`):
 * `additional_headers` names must be valid, not reserved, distinct ignoring case, and must not
 * overwrite a credential carrier (that would authenticate every request as one fixed identity).
 */
export function checkSessionCheckConfig(
  issues: z.core.$ZodRawIssue[],
  cfg: Pick<SessionCheckConfig, 'additional_headers'>,
  carriers: readonly string[],
): void {
  const seen = new Set<string>()
  for (const name of Object.keys(cfg.additional_headers)) {
    const at = ['additional_headers', name]
    const lower = name.toLowerCase()
    if (!TOKEN.test(name)) {
      issues.push({ code: 'custom', input: name, path: at, message: 'must be an HTTP header name' })
    } else if (RESERVED_HEADERS.has(lower)) {
      issues.push({ code: 'custom', input: name, path: at, message: 'this header is connection-level or framing and may not be set' })
    } else if (carriers.includes(lower)) {
      issues.push({ code: 'custom', input: name, path: at, message: 'must not overwrite the credential sent to the session endpoint' })
    } else if (seen.has(lower)) {
      issues.push({ code: 'custom', input: name, path: at, message: 'is given twice (header names are case-insensitive)' })
    }
    seen.add(lower)
  }
}

/** What a successful check yields (and what the cache holds). Deep-frozen: cache entries are shared. */
export interface SessionIdentity {
  readonly subject: string
  readonly extra: Readonly<Record<string, unknown>>
}

/** Per-handler facts the shared logic needs. */
export interface SessionCheckOptions {
  readonly handlerId: 'cookie_session' | 'bearer_token'
  /** Lower-case names of the headers carrying the credential: always forwarded when present. */
  readonly carriers: readonly string[]
}

/**
 * Runs the check for a request the handler is responsible for and, on success, sets the session's
 * subject and extra. `credential` is the extracted token or cookie header (part of the cache key).
 * Throws a PipelineError on every failure.
 */
export type SessionCheck = (req: RequestView, s: Session, credential: string, signal: AbortSignal) => Promise<void>

/** Builds the check once, at rule load: URL parts, header plan, JSON paths, cache. */
export function createSessionCheck(cfg: SessionCheckConfig, deps: HandlerDeps, opts: SessionCheckOptions): SessionCheck {
  const base = new URL(cfg.check_session_url)
  const origin = base.origin
  const fixedPath = cfg.preserve_path ? base.pathname : undefined
  const fixedSearch = cfg.preserve_query ? base.search : undefined
  const fixedUrl = fixedPath !== undefined && fixedSearch !== undefined ? base : undefined
  const method = cfg.force_method
  const forwarded = [...new Set([...opts.carriers, ...cfg.forward_http_headers])]
  const additional = Object.entries(cfg.additional_headers).map(([k, v]) => [k.toLowerCase(), v] as const)
  const preserveHost = cfg.preserve_host
  const subjectAt = compileJsonPath(cfg.subject_from)
  const extraAt = compileJsonPath(cfg.extra_from)
  const timeout = cfg.timeout === undefined ? {} : { timeoutMs: cfg.timeout }
  const http = deps.http

  const cache: AuthCache<SessionIdentity> | undefined = cfg.cache.enabled
    ? deps.caches.create<SessionIdentity>(cacheOptionsFrom(cacheName(opts.handlerId, cfg), cfg.cache))
    : undefined

  const urlFor = (req: RequestView): URL => {
    if (fixedUrl !== undefined) return fixedUrl
    const path = fixedPath ?? req.path
    const search = fixedSearch ?? (req.query === '' ? '' : `?${req.query}`)
    return new URL(origin + path + search)
  }

  const interpret = (res: OutboundResponse): LoadResult<SessionIdentity> => {
    const status = res.status
    if (status === 200) {
      const identity = identityOf(res, subjectAt, extraAt)
      return { kind: 'positive', value: identity, sizeBytes: estimateBytes(identity) }
    }
    if (status === 401 || status === 403) return NEGATIVE
    if (status === 429) throw rateLimited(res)
    if (status >= 500) throw new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'upstream_server_error', `The session endpoint failed (HTTP ${status})`)
    if (status >= 300 && status < 400) {
      throw new PipelineError('ERR_UNAUTHENTICATED', 'session_check_redirect', `The session endpoint redirected (HTTP ${status}); redirects are not followed`)
    }
    throw new PipelineError('ERR_UNAUTHENTICATED', 'session_check_rejected', `The session endpoint rejected the session check (HTTP ${status})`)
  }

  return async function sessionCheck(req, s, credential, signal) {
    const url = urlFor(req)
    const headers: Record<string, string> = { accept: 'application/json' }
    const keyParts = cache === undefined ? undefined : [method, url.href, credential]
    for (const name of forwarded) {
      const value = req.headers.get(name)
      if (value === undefined) continue
      headers[name] = value
      keyParts?.push(name, value)
    }
    for (const [name, value] of additional) headers[name] = value
    if (preserveHost) {
      headers['x-forwarded-host'] = req.host
      keyParts?.push('x-forwarded-host', req.host)
    }

    let identity: SessionIdentity
    try {
      if (cache === undefined || keyParts === undefined) {
        const result = interpret(await http.request({ url, method, headers, signal, ...timeout }))
        if (result.kind === 'negative') throw sessionInvalid()
        identity = result.value
      } else {
        // The shared load must not carry this caller's signal: aborting one Check would fail every
        // coalesced waiter. Each caller stops waiting on its own signal; the call has its deadline.
        const found = await cache.lookup(
          credentialKey(...keyParts),
          async () => interpret(await http.request({ url, method, headers, ...timeout })),
          signal,
        )
        if (found.kind === 'negative') throw sessionInvalid()
        identity = found.value
      }
    } catch (err) {
      throw asCheckError(err)
    }
    s.subject = identity.subject
    // A fresh top-level object per request (handlers may add keys); nested values stay frozen.
    s.extra = { ...identity.extra }
  }
}

const NEGATIVE = { kind: 'negative', reason: 'session_invalid' } as const satisfies LoadResult<never>

const sessionInvalid = (): PipelineError =>
  new PipelineError('ERR_UNAUTHENTICATED', 'session_invalid', 'The session endpoint rejected the credentials')

/** Validates a 200 answer: a JSON object with a usable subject; throws 401 otherwise (not cached). */
function identityOf(res: OutboundResponse, subjectAt: JsonPathGetter, extraAt: JsonPathGetter): SessionIdentity {
  let body: unknown
  try {
    body = res.json()
  } catch {
    throw new PipelineError('ERR_UNAUTHENTICATED', 'invalid_session_response', 'The session endpoint did not answer with JSON')
  }
  if (!isObject(body)) {
    throw new PipelineError('ERR_UNAUTHENTICATED', 'invalid_session_response', 'The session endpoint did not answer with a JSON object')
  }
  const subject = subjectAt(body)
  if (typeof subject !== 'string' || subject === '' || CONTROL_CHARS.test(subject)) {
    throw new PipelineError('ERR_UNAUTHENTICATED', 'invalid_subject', 'The session endpoint answered without a valid subject')
  }
  const extra = extraAt(body)
  return deepFreeze({ subject, extra: isObject(extra) ? extra : {} })
}

function rateLimited(res: OutboundResponse): PipelineError {
  const headers: [string, string][] = []
  for (const [from, to] of RATE_LIMIT_HEADERS) {
    const v = res.headers[from]
    if (v !== undefined && SAFE_COPIED_VALUE.test(v)) headers.push([to, v])
  }
  return new PipelineError('ERR_TOO_MANY_REQUESTS', 'upstream_rate_limited', 'The session endpoint is rate limiting requests', { headers })
}

/** Anything thrown by the check → the PipelineError the pipeline answers with. */
function asCheckError(err: unknown): unknown {
  if (err instanceof PipelineError) return err
  if (err instanceof OutboundError) {
    return new PipelineError('ERR_UPSTREAM_UNAVAILABLE', `upstream_${err.kind}`, `The session endpoint is unavailable (${err.kind})`)
  }
  if (err instanceof CacheAbortError) {
    return new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'upstream_aborted', 'The session check was cancelled')
  }
  return err
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Reads a value out of parsed JSON. */
export type JsonPathGetter = (root: unknown) => unknown

/**
 * Compiles the supported GJSON subset: `@this` (the whole document) or `a.b.c`, where a segment
 * is an own key of an object, or a decimal index into an array. Anything else reads `undefined`;
 * inherited properties (`constructor`, `__proto__`) are never read.
 */
export function compileJsonPath(path: string): JsonPathGetter {
  if (path === THIS) return (root) => root
  const segments = path.split('.').map((key) => ({ key, index: DIGITS.test(key) ? Number(key) : undefined }))
  return (root) => {
    let cur: unknown = root
    for (const { key, index } of segments) {
      if (Array.isArray(cur)) {
        if (index === undefined || index >= cur.length) return undefined
        cur = cur[index]
      } else if (typeof cur === 'object' && cur !== null) {
        if (!Object.hasOwn(cur, key)) return undefined
        cur = (cur as Record<string, unknown>)[key]
      } else {
        return undefined
      }
    }
    return cur
  }
}

/** Freezes `value` and everything reachable from it; iterative, so deep JSON cannot overflow. */
function deepFreeze<T>(value: T): T {
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (typeof v !== 'object' || v === null || Object.isFrozen(v)) continue
    Object.freeze(v)
    for (const child of Object.values(v)) stack.push(child)
  }
  return value
}
