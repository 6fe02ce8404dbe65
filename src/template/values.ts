/**
 * The Go value model templates compute with, and Go's ways of turning values into text:
 * `fmt`'s `%v` and `%q`, `encoding/json`, `net/url` escaping, truthiness.
 *
 * Representation of Go values in JavaScript:
 * - `undefined` / `null`: nil (an untyped nil, or a nil `interface{}` from a missing map key);
 * - `string`; `number` is a float64 (every JSON number is one in Go); `bigint` is an int (template
 *   integer literals, `len`); `boolean`;
 * - arrays are slices (`[]interface{}` from JSON, `[]string` for capture groups);
 * - plain objects are `map[string]interface{}` (`.Extra` and what it holds);
 * - the Oathkeeper types are the `*Ref` classes below. They are boxed only when such a value flows
 *   somewhere dynamic (`{{ .Header }}`, `toJson .`); field chains on them are resolved at compile time.
 *
 * Everything here runs at render time and is written for that: no regex construction, no parsing
 * beyond what the function asked for (e.g. `URL.Query` parses the raw query, as Go's does).
 * @module
 */
import type { MatchContext, RequestView, Session } from '../pipeline/types.js'

/** Base of the boxed Oathkeeper types, so one `instanceof` tells them from JSON values. */
export abstract class GoRef {}
/** Go `http.Header`: our maps hold lower-case names and one (joined) value per name. */
export class HeaderRef extends GoRef {
  constructor(readonly map: ReadonlyMap<string, string>) {
    super()
  }
}
/** Go `*url.URL` of the request (`.MatchContext.URL`). */
export class UrlRef extends GoRef {
  constructor(readonly req: RequestView) {
    super()
  }
}
/** Go `url.Values` (`.MatchContext.URL.Query`). */
export class ValuesRef extends GoRef {
  constructor(readonly map: ReadonlyMap<string, readonly string[]>) {
    super()
  }
}
/** Go `*authn.AuthenticationSession` (`.` and `$`). */
export class SessionRef extends GoRef {
  constructor(readonly s: Session) {
    super()
  }
}
/** Go `authn.MatchContext` (`.MatchContext`). */
export class MatchCtxRef extends GoRef {
  constructor(readonly mc: MatchContext) {
    super()
  }
}

/**
 * A Go runtime fault raised by a helper. compile.ts records the position of the template node it
 * came from (the first enclosing node that catches it) and turns it into a PipelineError.
 */
export class GoFault extends Error {
  pos: number | undefined
}

/** Nesting deeper than this in a printed or JSON-encoded value is a render error, not a stack overflow. */
export const MAX_VALUE_DEPTH = 256

export function isNil(v: unknown): v is null | undefined {
  return v === undefined || v === null
}

/** A Go `map[string]interface{}`: any object that is neither a slice nor a boxed Oathkeeper type. */
export function isGoMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoRef)
}

/** Own-property lookup on a Go map, so `.Extra.constructor` or `__proto__` never reach the prototype. */
export function mapGet(m: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(m, key) ? m[key] : undefined
}

/** Go's name for the dynamic type of `v`, for error messages. */
export function goTypeName(v: unknown): string {
  if (isNil(v)) return 'nil'
  switch (typeof v) {
    case 'string':
      return 'string'
    case 'number':
      return 'float64'
    case 'bigint':
      return 'int'
    case 'boolean':
      return 'bool'
  }
  if (Array.isArray(v)) return '[]interface {}'
  if (v instanceof HeaderRef) return 'http.Header'
  if (v instanceof UrlRef) return '*url.URL'
  if (v instanceof ValuesRef) return 'url.Values'
  if (v instanceof SessionRef) return '*authn.AuthenticationSession'
  if (v instanceof MatchCtxRef) return 'authn.MatchContext'
  return 'map[string]interface {}'
}

/** Go's `if` truth: false for nil, false, 0, and empty strings, slices and maps. */
export function truth(v: unknown): boolean {
  if (isNil(v)) return false
  switch (typeof v) {
    case 'string':
      return v.length > 0
    case 'boolean':
      return v
    case 'number':
      return v !== 0
    case 'bigint':
      return v !== 0n
  }
  if (Array.isArray(v)) return v.length > 0
  if (v instanceof HeaderRef) return v.map.size > 0
  if (v instanceof ValuesRef) return v.map.size > 0
  if (v instanceof GoRef) return true // a non-nil pointer or a struct
  for (const k in v as object) if (Object.hasOwn(v as object, k)) return true
  return false
}

/** Go's byte-wise string order (UTF-8 order is code point order; fix up UTF-16 surrogates). */
export function compareGoStrings(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x !== y) {
      x = x >= 0xd800 ? (x <= 0xdfff ? x + 0x2000 : x - 0x800) : x
      y = y >= 0xd800 ? (y <= 0xdfff ? y + 0x2000 : y - 0x800) : y
      return x - y
    }
  }
  return a.length - b.length
}

function sortedKeys(keys: Iterable<string>): string[] {
  return [...keys].sort(compareGoStrings)
}

// ---------------------------------------------------------------------------------------------
// fmt: %v

/** `strconv.FormatFloat(v, 'g', -1, 64)`, which is what `%v` prints for a float64. */
export function formatFloat(v: number): string {
  if (v === 0) return Object.is(v, -0) ? '-0' : '0'
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'
  // toExponential() without digits gives the shortest round-tripping digits, as Go's 'g', -1 does.
  const e = Math.abs(v).toExponential()
  const at = e.indexOf('e')
  const digits = e[1] === '.' ? (e[0] as string) + e.slice(2, at) : e.slice(0, at)
  const exp = Number(e.slice(at + 1))
  const sign = v < 0 ? '-' : ''
  // Shortest formatting switches to %e when the exponent is < -4 or >= 6 (strconv's eprec).
  if (exp < -4 || exp >= 6) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
    const ae = Math.abs(exp)
    return `${sign}${mant}e${exp < 0 ? '-' : '+'}${ae < 10 ? '0' : ''}${ae}`
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`
  if (digits.length <= exp + 1) return sign + digits + '0'.repeat(exp + 1 - digits.length)
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`
}

function headerEntries(map: ReadonlyMap<string, string>): [string, string][] {
  const out: [string, string][] = []
  for (const [k, v] of map) out.push([canonicalHeaderKey(k), v])
  out.sort((a, b) => compareGoStrings(a[0], b[0]))
  return out
}

/**
 * `fmt.Sprint(v)` for one operand, i.e. `%v`. `depth` counts nesting; nil prints `<nil>` (callers
 * special-case top-level nil). A `SessionRef` prints as Go prints the pointer: `&{…}` at the top,
 * `{…}` when `deref` (text/template's own printing dereferences pointers first).
 */
export function formatValue(v: unknown, depth = 0, deref = false): string {
  if (depth > MAX_VALUE_DEPTH) throw new GoFault(`value nested more than ${MAX_VALUE_DEPTH} levels deep`)
  if (isNil(v)) return '<nil>'
  switch (typeof v) {
    case 'string':
      return v
    case 'number':
      return formatFloat(v)
    case 'bigint':
    case 'boolean':
      return String(v)
  }
  if (Array.isArray(v)) {
    let out = '['
    for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ' ') + formatValue(v[i], depth + 1)
    return `${out}]`
  }
  if (v instanceof HeaderRef) return `map[${headerEntries(v.map).map(([k, x]) => `${k}:[${x}]`).join(' ')}]`
  if (v instanceof ValuesRef) {
    return `map[${sortedKeys(v.map.keys())
      .map((k) => `${k}:[${(v.map.get(k) ?? []).join(' ')}]`)
      .join(' ')}]`
  }
  if (v instanceof UrlRef) return urlString(v.req)
  if (v instanceof SessionRef) {
    const s = v.s
    const body = [
      s.subject,
      formatValue(s.extra, depth + 1),
      formatValue(new HeaderRef(s.header), depth + 1),
      formatValue(new MatchCtxRef(s.matchContext), depth + 1),
    ].join(' ')
    return `${depth === 0 && !deref ? '&' : ''}{${body}}`
  }
  if (v instanceof MatchCtxRef) {
    const mc = v.mc
    const body = [
      formatValue(mc.regexpCaptureGroups, depth + 1),
      urlString(mc.request),
      mc.request.method,
      formatValue(new HeaderRef(mc.request.headers), depth + 1),
    ].join(' ')
    return `{${body}}`
  }
  const m = v as Record<string, unknown>
  let out = 'map['
  let first = true
  for (const k of sortedKeys(Object.keys(m))) {
    out += `${first ? '' : ' '}${k}:${formatValue(m[k], depth + 1)}`
    first = false
  }
  return `${out}]`
}

/** What `{{ pipeline }}` writes: text/template's printValue (`<no value>` for nil). */
export function printAction(v: unknown): string {
  if (typeof v === 'string') return v
  if (isNil(v)) return '<no value>'
  return formatValue(v, 0, true)
}

/**
 * `fmt.Sprint(args...)` after text/template's `printableValue` (as `urlquery` does): nil becomes
 * `<no value>`, and a space separates two operands when neither is a string.
 */
export function sprintPrintable(args: readonly unknown[]): string {
  let out = ''
  let prevString = false
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    const isString = typeof a === 'string' || isNil(a)
    if (i > 0 && !isString && !prevString) out += ' '
    out += isNil(a) ? '<no value>' : formatValue(a, 0, true)
    prevString = isString
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// %q

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
/**
 * Replaces unpaired UTF-16 surrogates with U+FFFD, which is what the string holds in Go after
 * `encoding/json` decoded it (String#toWellFormed is ES2024; the project targets ES2023 libs).
 */
function wellFormed(s: string): string {
  return s.replace(LONE_SURROGATE, '\uFFFD')
}

const PRINTABLE = /[\p{L}\p{M}\p{N}\p{P}\p{S} ]/u

/** `strconv.Quote` (what `%q` does to a string), with Go's definition of printable runes. */
export function goQuote(s: string): string {
  let out = '"'
  for (const ch of wellFormed(s)) {
    const cp = ch.codePointAt(0) as number
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (cp < 0x80 ? cp >= 0x20 && cp < 0x7f : PRINTABLE.test(ch)) out += ch
    else if (cp === 7) out += '\\a'
    else if (cp === 8) out += '\\b'
    else if (cp === 12) out += '\\f'
    else if (cp === 10) out += '\\n'
    else if (cp === 13) out += '\\r'
    else if (cp === 9) out += '\\t'
    else if (cp === 11) out += '\\v'
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, '0')}`
    else out += `\\U${cp.toString(16).padStart(8, '0')}`
  }
  return `${out}"`
}

// ---------------------------------------------------------------------------------------------
// encoding/json

const JSON_ESCAPE = /[\u0000-\u001f"\\<>&\u2028\u2029]/g
function jsonEscapeChar(c: string): string {
  switch (c) {
    case '"':
      return '\\"'
    case '\\':
      return '\\\\'
    case '\b':
      return '\\b'
    case '\f':
      return '\\f'
    case '\n':
      return '\\n'
    case '\r':
      return '\\r'
    case '\t':
      return '\\t'
    default:
      return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  }
}

/** Go's JSON string encoding with HTML escaping (`<`, `>`, `&`, U+2028, U+2029 as `\uXXXX`). */
export function jsonString(s: string): string {
  return `"${wellFormed(s).replace(JSON_ESCAPE, jsonEscapeChar)}"`
}

function jsonStringList(list: readonly string[]): string {
  return `[${list.map(jsonString).join(',')}]`
}

/** Thrown for values `json.Marshal` rejects (NaN, ±Inf); sprig's `toJson` then yields "". */
class JsonUnsupported extends Error {}

function jsonValue(v: unknown, depth: number): string {
  if (depth > MAX_VALUE_DEPTH) throw new GoFault(`value nested more than ${MAX_VALUE_DEPTH} levels deep`)
  if (isNil(v)) return 'null'
  switch (typeof v) {
    case 'string':
      return jsonString(v)
    case 'number':
      if (!Number.isFinite(v)) throw new JsonUnsupported()
      // Go's float encoding is ES6 number formatting, except that it keeps the sign of -0.
      return Object.is(v, -0) ? '-0' : String(v)
    case 'bigint':
    case 'boolean':
      return String(v)
  }
  if (Array.isArray(v)) return `[${v.map((x) => jsonValue(x, depth + 1)).join(',')}]`
  if (v instanceof HeaderRef) {
    return `{${headerEntries(v.map)
      .map(([k, x]) => `${jsonString(k)}:${jsonStringList([x])}`)
      .join(',')}}`
  }
  if (v instanceof ValuesRef) {
    return `{${sortedKeys(v.map.keys())
      .map((k) => `${jsonString(k)}:${jsonStringList(v.map.get(k) ?? [])}`)
      .join(',')}}`
  }
  if (v instanceof UrlRef) return urlJson(v.req)
  if (v instanceof SessionRef) {
    const s = v.s
    return (
      `{"subject":${jsonString(s.subject)},"extra":${jsonValue(s.extra, depth + 1)},` +
      `"header":${jsonValue(new HeaderRef(s.header), depth + 1)},` +
      `"match_context":${jsonValue(new MatchCtxRef(s.matchContext), depth + 1)}}`
    )
  }
  if (v instanceof MatchCtxRef) {
    const mc = v.mc
    return (
      `{"regexp_capture_groups":${jsonStringList(mc.regexpCaptureGroups)},"url":${urlJson(mc.request)},` +
      `"method":${jsonString(mc.request.method)},"header":${jsonValue(new HeaderRef(mc.request.headers), depth + 1)}}`
    )
  }
  const m = v as Record<string, unknown>
  return `{${sortedKeys(Object.keys(m))
    .map((k) => `${jsonString(k)}:${jsonValue(m[k], depth + 1)}`)
    .join(',')}}`
}

/** sprig `toJson`: `json.Marshal` with its errors swallowed (an unencodable value yields ""). */
export function toGoJson(v: unknown): string {
  try {
    return jsonValue(v, 0)
  } catch (e) {
    if (e instanceof JsonUnsupported) return ''
    throw e
  }
}

// ---------------------------------------------------------------------------------------------
// net/http, net/url

const TOKEN_CHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** `textproto.CanonicalMIMEHeaderKey` of a lower-case header name (`x-foo` → `X-Foo`). */
export function canonicalHeaderKey(name: string): string {
  if (!TOKEN_CHAR.test(name)) return name
  let out = ''
  let upper = true
  for (const c of name.toLowerCase()) {
    out += upper ? c.toUpperCase() : c
    upper = c === '-'
  }
  return out
}

/** `url.URL.String()` of the request: `scheme://host` + escaped path + `?query` when non-empty. */
export function urlString(req: RequestView): string {
  const path = req.path !== '' && !req.path.startsWith('/') && req.host !== '' ? `/${req.path}` : req.path
  return `${req.scheme}://${req.host}${path}${req.query === '' ? '' : `?${req.query}`}`
}

/** `url.URL.Path`: the decoded path (RequestView.path keeps the escapes of reserved characters). */
export function urlPath(req: RequestView): string {
  if (!req.path.includes('%')) return req.path
  try {
    return decodeURIComponent(req.path)
  } catch {
    return req.path
  }
}

/** `url.URL.RequestURI()`. */
export function urlRequestURI(req: RequestView): string {
  return `${req.path === '' ? '/' : req.path}${req.query === '' ? '' : `?${req.query}`}`
}

function splitHostPort(hostPort: string): [string, string] {
  let host = hostPort
  let port = ''
  const colon = host.lastIndexOf(':')
  if (colon !== -1 && /^:[0-9]*$/.test(host.slice(colon))) {
    port = host.slice(colon + 1)
    host = host.slice(0, colon)
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  return [host, port]
}
/** `url.URL.Hostname()`. */
export function urlHostname(req: RequestView): string {
  return splitHostPort(req.host)[0]
}
/** `url.URL.Port()`. */
export function urlPort(req: RequestView): string {
  return splitHostPort(req.host)[1]
}

/** Go's `escape(s, encodePath)`: what `url.URL.EscapedPath` produces when RawPath is unset. */
function escapePath(p: string): string {
  let out = ''
  for (const b of new TextEncoder().encode(p)) {
    const c = String.fromCharCode(b)
    out += /[A-Za-z0-9\-_.~$&+,/:;=@]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** `url.URL.RawPath`: set only when the path's escaping is not the default one for its decoded form. */
export function urlRawPath(req: RequestView): string {
  return escapePath(urlPath(req)) === req.path ? '' : req.path
}

/** `json.Marshal(*url.URL)`: the struct's exported fields, in Go 1.26's declaration order. */
function urlJson(req: RequestView): string {
  const path = urlPath(req)
  const rawPath = urlRawPath(req)
  return (
    `{"Scheme":${jsonString(req.scheme)},"Opaque":"","User":null,"Host":${jsonString(req.host)},` +
    `"Path":${jsonString(path)},"Fragment":"","RawQuery":${jsonString(req.query)},"RawPath":${jsonString(rawPath)},` +
    `"RawFragment":"","ForceQuery":false,"OmitHost":false}`
  )
}

/** `url.QueryUnescape`; undefined for a malformed escape (ParseQuery then skips the pair). */
function queryUnescape(s: string): string | undefined {
  if (!s.includes('%') && !s.includes('+')) return s
  const bytes: number[] = []
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x25) {
      const h = s.slice(i + 1, i + 3)
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined
      bytes.push(Number.parseInt(h, 16))
      i += 2
    } else if (c === 0x2b) {
      bytes.push(0x20)
    } else {
      for (const b of new TextEncoder().encode(s[i])) bytes.push(b)
    }
  }
  return new TextDecoder().decode(Uint8Array.from(bytes))
}

/** `url.ParseQuery` (pairs with a `;` or a malformed escape are skipped, as Go's `URL.Query()` does). */
export function parseQuery(raw: string): ValuesRef {
  const map = new Map<string, string[]>()
  for (const pair of raw.split('&')) {
    if (pair === '' || pair.includes(';')) continue
    const eq = pair.indexOf('=')
    const key = queryUnescape(eq < 0 ? pair : pair.slice(0, eq))
    const value = queryUnescape(eq < 0 ? '' : pair.slice(eq + 1))
    if (key === undefined || value === undefined) continue
    const list = map.get(key)
    if (list === undefined) map.set(key, [value])
    else list.push(value)
  }
  return new ValuesRef(map)
}

/** `url.QueryEscape`: everything but `A-Za-z0-9-_.~` is %-escaped (UTF-8), space becomes `+`. */
export function queryEscape(s: string): string {
  return encodeURIComponent(wellFormed(s)).replace(/[!'()*]|%20/g, (c) =>
    c === '%20' ? '+' : `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
}

/** sprig's `strval`: strings as-is, Stringers via String(), everything else `%v`. */
export function strval(v: unknown): string {
  if (typeof v === 'string') return v
  return formatValue(v)
}

/** Unicode White_Space, which Go's unicode.IsSpace tests (JavaScript's \s also has U+FEFF). */
const WHITE_SPACE = String.raw`[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]`
const TRIM_SPACE = new RegExp(`^${WHITE_SPACE}+|${WHITE_SPACE}+$`, 'g')
/** Go `strings.TrimSpace`: White_Space at both ends (not U+FEFF, unlike String#trim). */
export function goTrimSpace(s: string): string {
  return s.replace(TRIM_SPACE, '')
}

/**
 * Go `strings.ToUpper` / `ToLower` map rune by rune with Unicode *simple* case mappings; JavaScript
 * uses full mappings (`ß` → `SS`). Map per code point and keep a character whose JS mapping is not
 * a single code point, which is what the simple mapping does for all of them except `İ` → `i`.
 */
export function goToUpper(s: string): string {
  if (/^[\x00-\x7f]*$/.test(s)) return s.toUpperCase()
  let out = ''
  for (const ch of s) {
    const u = ch.toUpperCase()
    out += u.length === ch.length || [...u].length === 1 ? u : ch
  }
  return out
}
export function goToLower(s: string): string {
  if (/^[\x00-\x7f]*$/.test(s)) return s.toLowerCase()
  let out = ''
  for (const ch of s) {
    if (ch === '\u0130') {
      out += 'i'
      continue
    }
    const l = ch.toLowerCase()
    out += l.length === ch.length || [...l].length === 1 ? l : ch
  }
  return out
}

/** Go `len` of a string: its length in UTF-8 bytes. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}
