/**
 * Where an authenticator finds its credential: Oathkeeper's `token_from`
 * (`{header}` | `{query_parameter}` | `{cookie}`, default `Authorization: Bearer`), made strict:
 * an ambiguous credential (two cookies or query parameters of that name, a merged
 * `Authorization: Bearer a, Bearer b`, whitespace inside a token) or an over-long one is rejected
 * before any parsing (security.md A31, A48, A49).
 * @module
 */
import { z } from 'zod'
import { PipelineError } from '../../errors.js'
import type { RequestView } from '../../types.js'

/** Longest credential accepted; checked before splitting or decoding anything. */
export const MAX_TOKEN_LENGTH = 16 * 1024

export const TokenFromSchema = z.union([
  z.strictObject({ header: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name') }),
  z.strictObject({ query_parameter: z.string().min(1) }),
  z.strictObject({ cookie: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a cookie name') }),
])
export type TokenFrom = z.infer<typeof TokenFromSchema>

/** Returns the credential, `undefined` when absent (→ not responsible), or throws 401 when ambiguous. */
export type TokenExtractor = (req: RequestView) => string | undefined

const AMBIGUOUS = (where: string): PipelineError =>
  new PipelineError('ERR_UNAUTHENTICATED', 'ambiguous_credential', `The credential in ${where} is ambiguous or malformed`)
const TOO_LONG = new PipelineError('ERR_UNAUTHENTICATED', 'credential_too_long', 'The credential is too long')

/** Builds the extractor once, at rule load. */
export function tokenExtractor(from: TokenFrom | undefined): TokenExtractor {
  if (from === undefined || ('header' in from && from.header.toLowerCase() === 'authorization')) {
    return (req) => bearer(req.headers.get('authorization'))
  }
  if ('header' in from) {
    const name = from.header.toLowerCase()
    return (req) => plain(req.headers.get(name), `header ${from.header}`)
  }
  if ('cookie' in from) {
    const name = from.cookie
    return (req) => cookie(req.headers.get('cookie'), name)
  }
  const param = from.query_parameter
  return (req) => queryParam(req.query, param)
}

/** `Authorization: Bearer <token>`, scheme case-insensitive; other schemes are not ours. */
function bearer(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  if (value.length > MAX_TOKEN_LENGTH + 7) throw TOO_LONG
  if (value.length < 7 || value.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
  const token = value.slice(7).trim()
  if (token === '') return undefined
  if (/[\s,]/.test(token)) throw AMBIGUOUS('the Authorization header')
  return token
}

function plain(value: string | undefined, where: string): string | undefined {
  if (value === undefined) return undefined
  const token = value.trim()
  if (token === '') return undefined
  if (token.length > MAX_TOKEN_LENGTH) throw TOO_LONG
  if (/[\s,]/.test(token)) throw AMBIGUOUS(where)
  return token
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  if (header.length > 64 * 1024) throw TOO_LONG
  let found: string | undefined
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=')
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue
    if (found !== undefined) throw AMBIGUOUS(`cookie ${name}`)
    found = part.slice(eq + 1).trim()
  }
  if (found === undefined || found === '') return undefined
  if (found.length > MAX_TOKEN_LENGTH) throw TOO_LONG
  return found
}

function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined
  if (query.length > 64 * 1024) throw TOO_LONG
  let values: string[]
  try {
    values = new URLSearchParams(query).getAll(name)
  } catch {
    throw AMBIGUOUS(`query parameter ${name}`)
  }
  if (values.length > 1) throw AMBIGUOUS(`query parameter ${name}`)
  return plain(values[0], `query parameter ${name}`)
}

/** Parses the `Cookie` header into name → value, rejecting duplicates (for cookie_session). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (header === undefined || header === '') return out
  if (header.length > 64 * 1024) throw TOO_LONG
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    if (name === '') continue
    if (out.has(name)) throw AMBIGUOUS(`cookie ${name}`)
    out.set(name, part.slice(eq + 1).trim())
  }
  return out
}
