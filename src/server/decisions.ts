/**
 * Oathkeeper's decisions API (`/decisions`, `/decisions/*`, any method; oathkeeper.md §3) on top of
 * the same pipeline the gRPC Check uses: a forwarded HTTP request → CheckRequest →
 * {@link toRequestView} → `decide()` → an HTTP answer. Building a CheckRequest and handing it to
 * `toRequestView` keeps one canonicalisation and validation code path for both transports.
 *
 * **The request decided on** is rebuilt as Oathkeeper does, with three differences (marked ≠):
 * - method = `X-Forwarded-Method`, else the request's method;
 * - scheme = `X-Forwarded-Proto`, else `http` (this server has no TLS listener);
 * - host = `X-Forwarded-Host`, else the `Host` header (port kept unless it is the default);
 * - path and query = `X-Forwarded-Uri`, **query included** (≠: Oathkeeper drops that query and
 *   uses the decisions request's own, so nginx and Traefik lose it), else the request path after
 *   `/decisions` (`/decisions` alone is `/`) plus the request's query. When both are given they must
 *   agree: a decisions path beyond `/decisions` (or a query on it) must equal `/decisions` +
 *   `X-Forwarded-Uri`, otherwise 400 (≠: this stops a client-sent `X-Forwarded-Uri` that an
 *   over-broad Envoy `allowed_headers` lets through from overriding the path Envoy checks);
 * - the source address (error handlers' `when.request.remote_ip`) = the last `X-Forwarded-For`
 *   entry from a trusted proxy (the address that proxy saw), else the TCP peer.
 *
 * **Trust** (≠: Oathkeeper trusts these headers from anyone). `X-Forwarded-*` and `Forwarded`
 * headers are honoured only when the TCP peer is in `serve.api.trusted_proxies`. From any other
 * peer, a request carrying one of them is refused with **403** (`untrusted_forwarded_headers`): the
 * request is well formed, the sender is just not allowed to describe another request. Ignoring the
 * headers instead would decide on the wrong request (the auth server's own URL) without anyone
 * noticing. A request without them is decided on as received.
 *
 * **Bad input** never crashes: a repeated `X-Forwarded-Method/-Proto/-Host/-Uri` or `Host`, a
 * scheme other than http/https, an invalid method, host or target (the checks of
 * `toRequestView`, messages naming the header) → 400 `ERR_BAD_REQUEST`.
 *
 * **Answers.** Allow → `200`, empty body, every session header (mutator output) as a response
 * header; the managed identity headers the rule does not set (plus client look-alikes such as
 * `x_user`) are listed in `x-envoy-auth-headers-to-remove: a, b`, which Envoy's `http_service`
 * applies (nginx ignores it; its recipe overwrites instead, see test/helpers/nginx.ts). Deny →
 * the error handler's status, headers and body, exactly as the gRPC denied_response carries them.
 * @module
 */
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http'
import { isIP } from 'node:net'
import type { CheckRequest, CheckResponse } from '../gen/envoy/service/auth/v3/external_auth.js'
import { SocketAddress_Protocol } from '../gen/envoy/config/core/v3/address.js'
import type { HeaderValue } from '../gen/envoy/config/core/v3/base.js'
import { asPipelineError, PipelineError } from '../pipeline/errors.js'
import type { Decision } from '../pipeline/run.js'
import type { DeniedHttp, RequestView } from '../pipeline/types.js'
import { TARGET_REJECTION_MESSAGES, type TargetRejection } from '../request/canonical.js'
import { DEFAULT_HEADER_LIMITS, toRequestView, type HeaderLimits } from '../request/view.js'
import { STATUS } from './status.js'
import { unmapIpv4, type TrustedProxies } from './http-api-config.js'

/** The route prefix, Oathkeeper's. */
export const DECISIONS_PATH = '/decisions'

/** Envoy `http_service` reads this response header of an allow and removes the listed headers. */
export const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove'

/** Is `path` (no query) the decisions route: `/decisions` or `/decisions/…`? */
export function isDecisionsPath(path: string): boolean {
  return path.startsWith(DECISIONS_PATH) && (path.length === DECISIONS_PATH.length || path.charCodeAt(DECISIONS_PATH.length) === 0x2f)
}

/** What the decisions handler needs from an incoming request (node:http `IncomingMessage` fields). */
export interface DecisionRequest {
  /** `req.method`. */
  readonly method: string
  /** `req.url`: origin-form target starting with `/decisions`. */
  readonly url: string
  /** `req.rawHeaders`: name, value, name, value… as received (values are latin1-decoded bytes). */
  readonly rawHeaders: readonly string[]
  /** `req.socket.remoteAddress`: the TCP peer. */
  readonly peer: string | undefined
}

/** The HTTP answer written back to the proxy. */
export interface HttpAnswer {
  readonly status: number
  readonly headers: readonly (readonly [string, string])[]
  readonly body: string
}

// ---------------------------------------------------------------------------------------------
// Request → RequestView

const FORWARDED_METHOD = 'x-forwarded-method'
const FORWARDED_PROTO = 'x-forwarded-proto'
const FORWARDED_HOST = 'x-forwarded-host'
const FORWARDED_URI = 'x-forwarded-uri'
const FORWARDED_FOR = 'x-forwarded-for'

/** Longest x-request-id copied into the view (Envoy's are 36-character UUIDs). */
const MAX_REQUEST_ID = 128

const EMPTY_BYTES = Buffer.alloc(0)
const NON_ASCII = /[^\x00-\x7f]/

/** Where each part of the request came from, for error messages. */
interface Sources {
  readonly method: string
  readonly scheme: string
  readonly host: string
  readonly target: string
}

/**
 * Rebuilds the request to decide on, or throws a PipelineError: `ERR_FORBIDDEN`
 * (`untrusted_forwarded_headers`) or `ERR_BAD_REQUEST`.
 */
export function toDecisionView(
  req: DecisionRequest,
  trusted: TrustedProxies,
  limits: HeaderLimits = DEFAULT_HEADER_LIMITS,
): RequestView {
  const raw = req.rawHeaders
  let method: string | undefined
  let proto: string | undefined
  let fHost: string | undefined
  let uri: string | undefined
  let host: string | undefined
  let forwardedFor: string | undefined
  let requestId = ''
  let forwarded = false
  let duplicate: string | undefined
  const headers: HeaderValue[] = []

  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name.startsWith('x-forwarded-') || name === 'forwarded') {
      forwarded = true
      // The four headers that describe the request are consumed here; they are not request headers
      // of the original request, so they stay out of the view (as Envoy's CheckRequest has none).
      if (name === FORWARDED_METHOD) {
        if (method !== undefined) duplicate ??= 'X-Forwarded-Method'
        method = value
        continue
      }
      if (name === FORWARDED_PROTO) {
        if (proto !== undefined) duplicate ??= 'X-Forwarded-Proto'
        proto = value
        continue
      }
      if (name === FORWARDED_HOST) {
        if (fHost !== undefined) duplicate ??= 'X-Forwarded-Host'
        fHost = value
        continue
      }
      if (name === FORWARDED_URI) {
        if (uri !== undefined) duplicate ??= 'X-Forwarded-Uri'
        uri = value
        continue
      }
      if (name === FORWARDED_FOR) forwardedFor = forwardedFor === undefined ? value : `${forwardedFor},${value}`
    } else if (name === 'host') {
      // Envoy's CheckRequest carries the host as :authority (added below), never as `host`.
      if (host !== undefined) duplicate ??= 'Host'
      host = value
      continue
    } else if (name === 'x-request-id') {
      requestId = value.length <= MAX_REQUEST_ID ? value : ''
    }
    headers.push(headerValue(name, value))
  }

  if (forwarded && !trusted(req.peer)) {
    throw new PipelineError(
      'ERR_FORBIDDEN',
      'untrusted_forwarded_headers',
      'X-Forwarded-* and Forwarded headers are only accepted from trusted proxies (serve.api.trusted_proxies)',
    )
  }
  if (duplicate !== undefined) {
    throw new PipelineError('ERR_BAD_REQUEST', 'duplicate_header', `${duplicate}: the header is repeated`)
  }

  const target = decisionTarget(req.url, uri)
  const src: Sources = {
    method: method !== undefined ? 'X-Forwarded-Method' : 'request method',
    scheme: 'X-Forwarded-Proto',
    host: fHost !== undefined ? 'X-Forwarded-Host' : 'Host header',
    target: uri !== undefined ? 'X-Forwarded-Uri' : 'request path',
  }
  const m = method ?? req.method
  const scheme = proto ?? 'http'
  const authority = fHost ?? host ?? ''
  // Pseudo-headers as Envoy puts them into a CheckRequest, so templates see the same map.
  headers.push(
    headerValue(':authority', authority),
    headerValue(':method', m),
    headerValue(':path', target),
    headerValue(':scheme', scheme),
  )

  const check: CheckRequest = {
    attributes: {
      source: { address: { socketAddress: socketAddress(sourceOf(req.peer, forwarded, forwardedFor)) }, service: '', labels: {}, principal: '', certificate: '' },
      request: {
        http: {
          id: requestId,
          method: m,
          headers: {},
          headerMap: { headers },
          path: target,
          host: authority,
          scheme,
          query: '',
          fragment: '',
          size: 0,
          protocol: 'HTTP/1.1',
          body: '',
          rawBody: EMPTY_BYTES,
        },
      },
      contextExtensions: {},
    },
  }
  try {
    return toRequestView(check, limits)
  } catch (err) {
    throw rephrase(err, src)
  }
}

/** The raw target (path + query) to decide on; see the module comment. */
function decisionTarget(url: string, forwardedUri: string | undefined): string {
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  const suffix = path.slice(DECISIONS_PATH.length)
  if (forwardedUri !== undefined) {
    // `/decisions` (with or without its own query, which is ignored) + X-Forwarded-Uri: nginx,
    // Traefik. `/decisions<uri>` + the same X-Forwarded-Uri: nginx `proxy_pass …/decisions$request_uri`.
    if (suffix !== '' && url !== DECISIONS_PATH + forwardedUri) {
      throw new PipelineError(
        'ERR_BAD_REQUEST',
        'conflicting_forwarded_uri',
        'X-Forwarded-Uri: differs from the path after /decisions; send one of them, or the same target in both',
      )
    }
    return forwardedUri
  }
  const rest = suffix === '' ? '/' : suffix
  return q < 0 ? rest : rest + url.slice(q)
}

function headerValue(key: string, value: string): HeaderValue {
  // node:http decodes header bytes as latin1; Envoy hands them over as UTF-8 (invalid sequences
  // become U+FFFD in the view either way).
  if (NON_ASCII.test(value)) return { key, value: '', rawValue: Buffer.from(value, 'latin1') }
  return { key, value, rawValue: EMPTY_BYTES }
}

function sourceOf(peer: string | undefined, forwarded: boolean, forwardedFor: string | undefined): string {
  if (forwarded) {
    // Only reached for trusted peers. The last entry is the address the nearest proxy saw; the
    // ones before it were written by the client or by proxies we know nothing about.
    if (forwardedFor === undefined) return ''
    const last = forwardedFor.slice(forwardedFor.lastIndexOf(',') + 1).trim()
    return isIP(last) !== 0 ? unmapIpv4(last) : ''
  }
  return peer === undefined ? '' : unmapIpv4(peer)
}

function socketAddress(address: string): {
  protocol: SocketAddress_Protocol
  address: string
  resolverName: string
  ipv4Compat: boolean
} {
  return { protocol: SocketAddress_Protocol.TCP, address, resolverName: '', ipv4Compat: false }
}

const METHOD_MESSAGES: Readonly<Record<string, string>> = {
  missing_method: 'is missing',
  invalid_method: 'not an HTTP method token',
}
const SCHEME_MESSAGES: Readonly<Record<string, string>> = {
  missing_scheme: 'is empty',
  invalid_scheme: 'only http and https are allowed',
}
const HOST_MESSAGES: Readonly<Record<string, string>> = {
  missing_host: 'is missing',
  invalid_host: 'not a valid host name or IP literal',
  invalid_port: 'invalid port',
  host_too_long: 'host name too long',
}
const HEADER_MESSAGES: Readonly<Record<string, string>> = {
  too_many_headers: 'too many headers',
  headers_too_large: 'headers too large',
  invalid_header_name: 'invalid header name',
  invalid_header_value: 'a header value contains NUL, CR or LF',
}

/**
 * toRequestView's messages name CheckRequest fields; here they name the header or part of the
 * request the value came from. Reasons are kept (stable ids for logs and metrics).
 */
function rephrase(err: unknown, src: Sources): PipelineError {
  const e = asPipelineError(err)
  if (e.code !== 'ERR_BAD_REQUEST') return e
  const r = e.reason
  const text =
    r in METHOD_MESSAGES ? `${src.method}: ${METHOD_MESSAGES[r]}`
    : r in SCHEME_MESSAGES ? `${src.scheme}: ${SCHEME_MESSAGES[r]}`
    : r in HOST_MESSAGES ? `${src.host}: ${HOST_MESSAGES[r]}`
    : r in HEADER_MESSAGES ? `request headers: ${HEADER_MESSAGES[r]}`
    : r in TARGET_REJECTION_MESSAGES ? `${src.target}: ${TARGET_REJECTION_MESSAGES[r as TargetRejection]}`
    : undefined
  return text === undefined ? e : new PipelineError('ERR_BAD_REQUEST', r, text)
}

// ---------------------------------------------------------------------------------------------
// Decision → HTTP answer

/**
 * Headers that describe this HTTP message rather than the decision. A session may never carry
 * them (the `header` mutator rejects them at load; an allow that has one anyway is answered 500),
 * and they are dropped from denials (the server frames the body itself).
 */
const FRAMING = new Set([
  'connection',
  'content-length',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** The one Decision → HTTP mapping. Never throws; a header that cannot be sent becomes a 500. */
export function toHttpAnswer(d: Decision): HttpAnswer {
  if (d.kind === 'deny') return deniedAnswer(d.http)
  const headers: (readonly [string, string])[] = []
  try {
    for (const [name, value] of d.session.header) {
      if (FRAMING.has(name) || name === HEADERS_TO_REMOVE) throw new Error(`header ${name} cannot be sent`)
      headers.push(checked(name, value))
    }
    if (d.removeHeaders.length > 0) headers.push(checked(HEADERS_TO_REMOVE, d.removeHeaders.join(', ')))
  } catch (err) {
    return errorAnswer(
      new PipelineError('ERR_INTERNAL', 'invalid_header_value', 'A mutator produced a header that cannot be sent over HTTP', { cause: err }),
    )
  }
  return { status: 200, headers, body: '' }
}

function deniedAnswer(http: DeniedHttp): HttpAnswer {
  const headers: (readonly [string, string])[] = []
  try {
    for (const [name, value] of http.headers) {
      const lower = name.toLowerCase()
      if (!FRAMING.has(lower)) headers.push(checked(lower, value))
    }
  } catch (err) {
    return errorAnswer(new PipelineError('ERR_INTERNAL', 'invalid_header_value', 'An error handler produced an invalid header', { cause: err }))
  }
  // Envoy and nginx read only 2xx as allow; a denial must never be one.
  if (http.status < 300 || http.status > 599 || !Number.isInteger(http.status)) {
    return errorAnswer(new PipelineError('ERR_INTERNAL', 'invalid_denial_status', 'An error handler produced a non-error status'))
  }
  return { status: http.status, headers, body: http.body }
}

/** Validates a header for node:http; non-ASCII values go out as their UTF-8 bytes (as over gRPC). */
function checked(name: string, value: string): readonly [string, string] {
  validateHeaderName(name)
  const wire = NON_ASCII.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value
  validateHeaderValue(name, wire)
  return [name, wire]
}

/**
 * The HTTP answer of a denied CheckResponse built outside the pipeline (the memory guard's shed
 * response), so both transports answer alike. Anything that is not a denial becomes a 500.
 */
export function fromDeniedCheckResponse(r: CheckResponse): HttpAnswer {
  const d = r.deniedResponse
  if (d === undefined || r.status?.code === 0) {
    return errorAnswer(new PipelineError('ERR_INTERNAL', 'invalid_denial', 'Expected a denied response'))
  }
  const headers: (readonly [string, string])[] = []
  for (const h of d.headers) if (h.header !== undefined) headers.push([h.header.key, h.header.value])
  return deniedAnswer({ status: d.status?.code ?? 403, headers, body: d.body })
}

const JSON_CONTENT_TYPE = ['content-type', 'application/json; charset=utf-8'] as const

/**
 * A denial built without any error handler, for failures outside the pipeline: untrusted or
 * malformed forwarded headers (the message is a fixed string naming the header, never its value),
 * no rule set loaded, faults. Internal faults get a generic message.
 */
export function errorAnswer(err: unknown): HttpAnswer {
  const e = asPipelineError(err)
  const status = STATUS[e.code].http
  const error: Record<string, string | number> = { code: status, status: STATUS_CODES[status] ?? 'Error', reason: e.reason }
  error['message'] = status === 400 || status === 403 ? e.message : 'The request could not be authorized'
  return { status, headers: [JSON_CONTENT_TYPE], body: JSON.stringify({ error }) }
}
