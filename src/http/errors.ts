/**
 * Outbound call failures: one error class with a closed set of `kind`s, and the one function that
 * turns whatever undici or Node throws into it. Callers (JWKS, introspection, session check, token
 * endpoints) switch on `kind` and usually deny with 503 (`ERR_UPSTREAM_UNAVAILABLE`); an HTTP
 * status is never an `OutboundError` (the client resolves for every status, see client.ts).
 *
 * Messages name the method, the origin and the path only: never the query string, userinfo,
 * headers or body, so they can be logged and put in denial reasons as they are. The underlying
 * error is not attached as `cause` (its message is not ours to vouch for); its `code` is kept.
 * @module
 */

/**
 * - `timeout`: the call's overall deadline (headers and body, all attempts) passed.
 * - `connect`: no connection could be made (refused, DNS, connect timeout, TLS handshake).
 * - `reset`: the connection broke after it was made (RST, peer closed before/while responding).
 * - `too_large`: the response body exceeded the call's byte cap; the body was not read further.
 * - `circuit_open`: the origin's breaker is open; nothing was sent.
 * - `overloaded`: too many calls already wait for a connection to this origin; nothing was sent.
 * - `aborted`: the caller's signal fired, or the client is closed.
 * - `protocol`: malformed HTTP, or `json()` on a body that is not JSON.
 */
export type OutboundErrorKind =
  | 'timeout'
  | 'connect'
  | 'reset'
  | 'too_large'
  | 'circuit_open'
  | 'overloaded'
  | 'aborted'
  | 'protocol'

export const OUTBOUND_ERROR_KINDS: readonly OutboundErrorKind[] = [
  'timeout',
  'connect',
  'reset',
  'too_large',
  'circuit_open',
  'overloaded',
  'aborted',
  'protocol',
]

/** A failed outbound call. Safe to log: see the module comment. */
export class OutboundError extends Error {
  readonly kind: OutboundErrorKind
  /** `scheme://host[:port]`, without userinfo. */
  readonly origin: string
  /** The URL path, without the query string. */
  readonly path: string
  /** The code of the underlying error (`ECONNREFUSED`, `UND_ERR_SOCKET`, …), when there was one. */
  readonly code: string | undefined

  constructor(kind: OutboundErrorKind, target: { readonly method: string; readonly origin: string; readonly path: string }, detail: string, code?: string) {
    super(`${target.method} ${target.origin}${target.path}: ${detail}`)
    this.name = 'OutboundError'
    this.kind = kind
    this.origin = target.origin
    this.path = target.path
    this.code = code
  }
}

/** Error codes (Node `code` or undici `code`) → kind. Anything not listed is `protocol`. */
const KIND_BY_CODE: Readonly<Record<string, OutboundErrorKind>> = {
  ECONNREFUSED: 'connect',
  ENOTFOUND: 'connect',
  EAI_AGAIN: 'connect',
  EHOSTUNREACH: 'connect',
  ENETUNREACH: 'connect',
  EADDRNOTAVAIL: 'connect',
  ETIMEDOUT: 'connect',
  UND_ERR_CONNECT_TIMEOUT: 'connect',
  ERR_TLS_CERT_ALTNAME_INVALID: 'connect',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'connect',
  SELF_SIGNED_CERT_IN_CHAIN: 'connect',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'connect',
  CERT_HAS_EXPIRED: 'connect',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  ECONNABORTED: 'reset',
  UND_ERR_SOCKET: 'reset',
  UND_ERR_CLOSED: 'aborted',
  UND_ERR_DESTROYED: 'aborted',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
}

/** Human-readable detail per kind, used when the underlying message is not ours to repeat. */
const DETAIL: Readonly<Record<OutboundErrorKind, string>> = {
  timeout: 'timed out',
  connect: 'connection failed',
  reset: 'connection reset',
  too_large: 'response body too large',
  circuit_open: 'circuit breaker open',
  overloaded: 'too many requests waiting for a connection',
  aborted: 'aborted',
  protocol: 'invalid HTTP response',
}

/** Classifies a thrown value from undici/Node by its `code`; see `KIND_BY_CODE`. */
export function classify(err: unknown): { readonly kind: OutboundErrorKind; readonly code: string | undefined; readonly detail: string } {
  const code = errorCode(err)
  const kind = (code === undefined ? undefined : KIND_BY_CODE[code]) ?? 'protocol'
  return { kind, code, detail: code === undefined ? DETAIL[kind] : `${DETAIL[kind]} (${code})` }
}

/** The default message detail for a kind. */
export function detailOf(kind: OutboundErrorKind): string {
  return DETAIL[kind]
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return code
  // Some connect failures arrive wrapped (AggregateError for happy-eyeballs, `cause` chains).
  const cause = (err as { cause?: unknown }).cause
  if (cause !== undefined && cause !== err) return errorCode(cause)
  const errors = (err as { errors?: unknown }).errors
  if (Array.isArray(errors) && errors.length > 0) return errorCode(errors[0])
  return undefined
}
