/**
 * `CheckRequest` → {@link RequestView}: the one place that reads the request attributes Envoy
 * sends and turns them into the normalised, immutable view every later stage uses (invariants I3
 * and I4 of security.md). Bad input is a denial, never a crash: every problem throws a
 * `PipelineError('ERR_BAD_REQUEST', reason, message)` whose message names the offending field and
 * never quotes its value.
 *
 * Where each field comes from, and nothing else:
 * - `method` ← `attributes.request.http.method`: an RFC 9110 token, stored upper-case.
 * - `scheme` ← `attributes.request.http.scheme`: `http` or `https` (any case); missing is a bad
 *   request (Envoy always sends `:scheme`).
 * - `host` ← `attributes.request.http.host` only — never the `:authority`, `host` or
 *   `x-forwarded-*` entries of the header map: lower-cased, one trailing `.` removed, the scheme's
 *   default port removed; letters, digits, `-`, `.`, `_` or a bracketed IPv6 literal, plus an
 *   optional port 1–65535 without leading zeros.
 * - `path`, `query` ← `attributes.request.http.path` through {@link canonicalizeTarget}.
 * - `headers` ← `headers` (Envoy's merged map), or `header_map` when Envoy runs with
 *   `encode_raw_headers` (raw bytes decoded as UTF-8, invalid sequences become U+FFFD; repeated
 *   names joined with `,` exactly as Envoy merges the map form). Names are lower-cased, values
 *   containing NUL, CR or LF are rejected, and count and size are capped. Pseudo-headers stay in
 *   the map for templates; decisions never read them.
 * - `sourceIp` ← `attributes.source.address.socketAddress.address`.
 * - `contextExtensions` ← `attributes.contextExtensions` (a frozen, null-prototype copy).
 * @module
 */
import { isIPv6 } from 'node:net'
import type { CheckRequest } from '../gen/envoy/service/auth/v3/external_auth.js'
import type {
  AttributeContext,
  AttributeContext_HttpRequest,
} from '../gen/envoy/service/auth/v3/attribute_context.js'
import type { HeaderValue } from '../gen/envoy/config/core/v3/base.js'
import { PipelineError } from '../pipeline/errors.js'
import type { RequestView } from '../pipeline/types.js'
import { canonicalizeTarget, TARGET_REJECTION_MESSAGES, type TargetRejection } from './canonical.js'

/** Size limits on the header part of a request; exceeding one is a bad request. */
export interface HeaderLimits {
  /** Most header entries (raw entries for `header_map`, distinct names for `headers`). */
  readonly maxCount: number
  /** Most header bytes: names plus values (UTF-16 code units for the map form). */
  readonly maxBytes: number
}

/** Above Envoy's defaults (100 headers, `max_request_headers_kb` 60 KiB): only abuse hits them. */
export const DEFAULT_HEADER_LIMITS: HeaderLimits = Object.freeze({
  maxCount: 256,
  maxBytes: 64 * 1024,
})

/** Longest host name accepted, without port (RFC 1035 names are at most 253 characters). */
export const MAX_HOST_LENGTH = 255

/** Longest method accepted (the longest registered method, `UPDATEREDIRECTREF`, has 17). */
export const MAX_METHOD_LENGTH = 64

/**
 * Builds the request view of one Check, or throws a `PipelineError` with code `ERR_BAD_REQUEST`.
 *
 * @example
 * const view = toRequestView(CheckRequest.fromJSON(json))
 * ruleSet.matcher.match(view.method, matchUrl(view))
 */
export function toRequestView(
  req: CheckRequest,
  limits: HeaderLimits = DEFAULT_HEADER_LIMITS,
): RequestView {
  const attrs = req.attributes
  const http = attrs?.request?.http
  if (attrs === undefined || http === undefined) throw badRequest('missing_http_attributes')

  // Decoded messages always carry '' for absent strings; `?? ''` also covers hand-built objects.
  const method = readMethod(http.method ?? '')
  const scheme = readScheme(http.scheme ?? '')
  const host = readHost(http.host ?? '', scheme)
  const target = canonicalizeTarget(http.path ?? '')
  if (!target.ok) throw badPath(target.reason)
  const headers = readHeaders(http, limits)

  const view: RequestView = {
    id: http.id ?? '',
    method,
    scheme,
    host,
    path: target.path,
    query: target.query,
    headers,
    sourceIp: readSourceIp(attrs),
    contextExtensions: copyExtensions(attrs.contextExtensions),
  }
  return Object.freeze(view)
}

/** The string rule patterns are matched against: `scheme://host/canonical-path`, no query. */
export function matchUrl(view: RequestView): string {
  return `${view.scheme}://${view.host}${view.path}`
}

// ---------------------------------------------------------------------------------------------
// Fields.

function readMethod(raw: string): string {
  const n = raw.length
  if (n === 0) throw badRequest('missing_method')
  if (n > MAX_METHOD_LENGTH) throw badRequest('invalid_method')
  let lower = false
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i)
    if (TCHAR[c] !== 1) throw badRequest('invalid_method') // undefined for non-ASCII
    if (c >= 0x61 && c <= 0x7a) lower = true
  }
  // Validated as ASCII first: String#toUpperCase maps some non-ASCII letters (ſ, ı) to ASCII.
  return lower ? raw.toUpperCase() : raw
}

function readScheme(raw: string): string {
  if (raw === 'https' || raw === 'http') return raw
  if (raw.length === 0) throw badRequest('missing_scheme')
  const lower = raw.toLowerCase()
  if (lower === 'https' || lower === 'http') return lower
  throw badRequest('invalid_scheme')
}

/** Host [ ":" port ] → lower-case host without trailing dot and without the default port. */
function readHost(raw: string, scheme: string): string {
  const n = raw.length
  if (n === 0) throw badRequest('missing_host')
  // Name, one trailing dot, ":65535".
  if (n > MAX_HOST_LENGTH + 7) throw badRequest('host_too_long')

  let nameEnd: number // end of the host name (exclusive), before any ':' port
  let upper = false
  if (raw.charCodeAt(0) === 0x5b /* [ */) {
    nameEnd = raw.indexOf(']') + 1
    if (nameEnd === 0 || nameEnd === 2) throw badRequest('invalid_host')
    for (let i = 1; i < nameEnd - 1; i++) {
      const c = raw.charCodeAt(i)
      if (IPV6_CHAR[c] !== 1) throw badRequest('invalid_host') // also rules out zone ids (%)
      if (c >= 0x41 && c <= 0x46) upper = true
    }
    if (!isIPv6(raw.slice(1, nameEnd - 1))) throw badRequest('invalid_host')
    if (nameEnd < n && raw.charCodeAt(nameEnd) !== 0x3a) throw badRequest('invalid_host')
  } else {
    nameEnd = n
    let labelStart = 0
    for (let i = 0; i < n; i++) {
      const c = raw.charCodeAt(i)
      if (c === 0x3a /* : */) {
        nameEnd = i
        break
      }
      if (c === 0x2e /* . */) {
        if (i === labelStart) throw badRequest('invalid_host') // leading dot or ".."
        labelStart = i + 1
        continue
      }
      // Also rules out ",", "@", "/", "\", "%", whitespace and non-ASCII.
      if (HOST_CHAR[c] !== 1) throw badRequest('invalid_host')
      if (c >= 0x41 && c <= 0x5a) upper = true
    }
    if (nameEnd === 0) throw badRequest('invalid_host')
  }

  // One trailing dot (the absolute form of a DNS name) is dropped; ".." was rejected above.
  const dotted = raw.charCodeAt(nameEnd - 1) === 0x2e
  const name = dotted ? nameEnd - 1 : nameEnd
  if (name > MAX_HOST_LENGTH) throw badRequest('host_too_long')

  let keepPort = false
  if (nameEnd < n) {
    const port = readPort(raw, nameEnd + 1)
    keepPort = port !== (scheme === 'https' ? 443 : 80)
  }
  if (!upper && !dotted && (keepPort || nameEnd === n)) return raw
  const host = raw.slice(0, name)
  const lowered = upper ? host.toLowerCase() : host
  return keepPort ? lowered + raw.slice(nameEnd) : lowered
}

/** Decimal port 1–65535 from `start` to the end, no sign, no leading zero. */
function readPort(raw: string, start: number): number {
  const n = raw.length
  if (start >= n || n - start > 5 || raw.charCodeAt(start) === 0x30 /* 0 */) {
    throw badRequest('invalid_port')
  }
  let port = 0
  for (let i = start; i < n; i++) {
    const d = raw.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) throw badRequest('invalid_port')
    port = port * 10 + d
  }
  if (port > 65535) throw badRequest('invalid_port')
  return port
}

function readHeaders(
  http: AttributeContext_HttpRequest,
  limits: HeaderLimits,
): ReadonlyMap<string, string> {
  const raw = http.headerMap?.headers
  if (raw !== undefined && raw.length > 0) {
    // Envoy fills exactly one of the two; a request with both is not from Envoy.
    if (hasOwnKeys(http.headers)) throw badRequest('conflicting_header_fields')
    return readRawHeaders(raw, limits)
  }
  return readMergedHeaders(http.headers, limits)
}

/** `headers`: Envoy already lower-cased the names and merged repeated headers with `,`. */
function readMergedHeaders(
  src: { readonly [key: string]: string },
  limits: HeaderLimits,
): Map<string, string> {
  const out = new Map<string, string>()
  let count = 0
  let bytes = 0
  for (const key in src) {
    if (!Object.hasOwn(src, key)) continue
    const value = src[key]!
    if (++count > limits.maxCount) throw badRequest('too_many_headers')
    bytes += key.length + value.length
    if (bytes > limits.maxBytes) throw badRequest('headers_too_large')
    addHeader(out, headerName(key), value)
  }
  return out
}

/** `header_map` (encode_raw_headers): one entry per header line, values as raw bytes. */
function readRawHeaders(src: readonly HeaderValue[], limits: HeaderLimits): Map<string, string> {
  if (src.length > limits.maxCount) throw badRequest('too_many_headers')
  const out = new Map<string, string>()
  let bytes = 0
  for (const h of src) {
    const key = h.key ?? ''
    const rawLength = h.rawValue?.length ?? 0
    // Buffer#toString never throws: invalid UTF-8 becomes U+FFFD (Envoy's map form uses "!").
    const value = rawLength !== 0 ? h.rawValue.toString('utf8') : (h.value ?? '')
    bytes += key.length + (rawLength !== 0 ? rawLength : value.length)
    if (bytes > limits.maxBytes) throw badRequest('headers_too_large')
    addHeader(out, headerName(key), value)
  }
  return out
}

function addHeader(out: Map<string, string>, name: string, value: string): void {
  // indexOf is a native scan: much faster here than a regular expression or a charCodeAt loop.
  if (value.indexOf('\n') !== -1 || value.indexOf('\r') !== -1 || value.indexOf('\0') !== -1) {
    throw badRequest('invalid_header_value')
  }
  const prev = out.get(name)
  out.set(name, prev === undefined ? value : prev + ',' + value)
}

/** Validates a header name (token, or `:` + token for pseudo-headers) and lower-cases it. */
function headerName(key: string): string {
  const n = key.length
  let i = n > 1 && key.charCodeAt(0) === 0x3a /* : */ ? 1 : 0
  if (i === n) throw badRequest('invalid_header_name')
  let upper = false
  for (; i < n; i++) {
    const c = key.charCodeAt(i)
    if (TCHAR[c] !== 1) throw badRequest('invalid_header_name')
    if (c >= 0x41 && c <= 0x5a) upper = true
  }
  // Validated as ASCII first: String#toLowerCase maps the Kelvin sign (U+212A) to "k".
  return upper ? key.toLowerCase() : key
}

function hasOwnKeys(o: object): boolean {
  for (const key in o) if (Object.hasOwn(o, key)) return true
  return false
}

function readSourceIp(attrs: AttributeContext): string | undefined {
  const address = attrs.source?.address?.socketAddress?.address
  return address === undefined || address.length === 0 ? undefined : address
}

function copyExtensions(src: { readonly [key: string]: string }): Readonly<Record<string, string>> {
  let copy: Record<string, string> | undefined
  for (const key in src) {
    if (!Object.hasOwn(src, key)) continue
    copy ??= Object.create(null) as Record<string, string>
    copy[key] = src[key]!
  }
  return copy === undefined ? NO_EXTENSIONS : Object.freeze(copy)
}

// ---------------------------------------------------------------------------------------------
// Errors. Messages are fixed strings: they are sent to clients and logged, so they never quote
// the request.

type ViewRejection =
  | 'missing_http_attributes'
  | 'missing_method'
  | 'invalid_method'
  | 'missing_scheme'
  | 'invalid_scheme'
  | 'missing_host'
  | 'invalid_host'
  | 'invalid_port'
  | 'host_too_long'
  | 'conflicting_header_fields'
  | 'too_many_headers'
  | 'headers_too_large'
  | 'invalid_header_name'
  | 'invalid_header_value'

const HTTP = 'attributes.request.http'
const VIEW_MESSAGES: Readonly<Record<ViewRejection, string>> = {
  missing_http_attributes: `${HTTP} is missing`,
  missing_method: `${HTTP}.method is missing`,
  invalid_method: `${HTTP}.method: not an HTTP method token`,
  missing_scheme: `${HTTP}.scheme is missing`,
  invalid_scheme: `${HTTP}.scheme: only http and https are allowed`,
  missing_host: `${HTTP}.host is missing`,
  invalid_host: `${HTTP}.host: not a valid host name or IP literal`,
  invalid_port: `${HTTP}.host: invalid port`,
  host_too_long: `${HTTP}.host: longer than ${MAX_HOST_LENGTH} characters`,
  conflicting_header_fields: `${HTTP}: both headers and header_map are set`,
  too_many_headers: `${HTTP}.headers: too many headers`,
  headers_too_large: `${HTTP}.headers: headers too large`,
  invalid_header_name: `${HTTP}.headers: invalid header name`,
  invalid_header_value: `${HTTP}.headers: header value contains NUL, CR or LF`,
}

const PATH_MESSAGES = Object.fromEntries(
  Object.entries(TARGET_REJECTION_MESSAGES).map(([reason, text]) => [
    reason,
    `${HTTP}.path: ${text}`,
  ]),
) as Readonly<Record<TargetRejection, string>>

function badRequest(reason: ViewRejection): PipelineError {
  return new PipelineError('ERR_BAD_REQUEST', reason, VIEW_MESSAGES[reason])
}

function badPath(reason: TargetRejection): PipelineError {
  return new PipelineError('ERR_BAD_REQUEST', reason, PATH_MESSAGES[reason])
}

// ---------------------------------------------------------------------------------------------
// Tables, built once at load.

const NO_EXTENSIONS: Readonly<Record<string, string>> = Object.freeze(
  Object.create(null) as Record<string, string>,
)

/** RFC 9110 tchar: ALPHA DIGIT ! # $ % & ' * + - . ^ _ ` | ~ */
const TCHAR = new Uint8Array(0x80)
/** Host name characters: ALPHA DIGIT - _ (dots are handled separately). */
const HOST_CHAR = new Uint8Array(0x80)
/** Inside `[…]`: HEXDIG : . */
const IPV6_CHAR = new Uint8Array(0x80)
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = HOST_CHAR[c] = IPV6_CHAR[c] = 1
for (let c = 0x41; c <= 0x5a; c++) {
  TCHAR[c] = HOST_CHAR[c] = 1 // A-Z
  TCHAR[c + 0x20] = HOST_CHAR[c + 0x20] = 1 // a-z
}
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1
HOST_CHAR[0x2d] = HOST_CHAR[0x5f] = 1
for (const ch of 'ABCDEFabcdef:.') IPV6_CHAR[ch.charCodeAt(0)] = 1
