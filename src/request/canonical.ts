/**
 * Request-target canonicalisation (security.md §3.3, invariant I4): turns the raw
 * `attributes.request.http.path` Envoy sends (path + query, never decoded) into the one canonical
 * path the rule matcher sees, or rejects it. Anything an upstream could read differently from us
 * (encoded `/` `\` `?` `#` `%`, backslashes, control characters, `//`, dot segments above the
 * root, malformed or non-UTF-8 escapes) is rejected, never repaired.
 *
 * The algorithm, in one left-to-right pass with no regular expressions and no `URL` parsing
 * (WHATWG `URL` resolves `//host`, `\` and `%2e` itself, security.md §3.2):
 *
 * 1. Reject an empty target, a target longer than {@link MAX_TARGET_LENGTH}, one that does not
 *    start with `/` (absolute-form `http://…`, authority-form, `*`, `admin/x`), and any raw `\`,
 *    `#`, control character, space, DEL or non-ASCII character anywhere in the target (clients
 *    percent-encode non-ASCII; Envoy passes the bytes through).
 * 2. Split once at the first `?`; the query is returned verbatim and never matched.
 * 3. Percent-escapes in the path: malformed ones (`%`, `%4`, `%zz`) are rejected; `%2F %5C %3F %23
 *    %25` and every encoded control character (`%00`–`%1F`, `%7F`) are rejected in any case;
 *    escapes of unreserved characters (ALPHA DIGIT `-` `.` `_` `~`) are decoded (RFC 3986
 *    §6.2.2.2, so `%61dmin` is `admin` and `%2e%2e` is `..`); every other escape is kept with
 *    upper-case hex. Escaped bytes ≥ 0x80 must form valid UTF-8 (no overlong forms, surrogates or
 *    code points above U+10FFFF) and stay encoded.
 * 4. Dot segments are removed (RFC 3986 §5.2.4); a `..` that would climb above `/` is rejected.
 *
 * Decisions beyond the RFC (kept in the README):
 * - `//` anywhere in the path is rejected (`double_slash`): upstreams disagree on whether it is an
 *   empty segment, a merged slash or (at the start) an authority.
 * - A trailing slash is removed (`/api/` → `/api`, root stays `/`), like the `path.Clean` that
 *   Oathkeeper applies before matching, so rules port over unchanged.
 * - `;` is an ordinary character of its segment (`/admin;x=1` stays as is, so it does not match a
 *   rule for `/admin`), except that a segment whose part before the first `;` is `.` or `..`
 *   (`..;/admin`, Tomcat's path-parameter traversal) is rejected.
 * - Case is preserved: `/ADMIN` and `/admin` are different paths, as they are for most upstreams.
 * @module
 */

/** Longest request target (path + query) accepted, in UTF-16 code units (= bytes: ASCII only). */
export const MAX_TARGET_LENGTH = 8192

/** Why a request target was rejected: a stable, bounded id for logs, metrics and tests. */
export type TargetRejection =
  | 'empty_target'
  | 'too_long'
  | 'absolute_form'
  | 'not_origin_form'
  | 'double_slash'
  | 'backslash'
  | 'fragment'
  | 'control_character'
  | 'non_ascii'
  | 'malformed_escape'
  | 'invalid_utf8'
  | 'encoded_slash'
  | 'encoded_backslash'
  | 'encoded_nul'
  | 'encoded_control_character'
  | 'encoded_fragment'
  | 'encoded_query'
  | 'encoded_percent'
  | 'dot_segment_above_root'
  | 'dot_segment_parameter'

export type CanonicalTarget =
  | { readonly ok: true; readonly path: string; readonly query: string }
  | { readonly ok: false; readonly reason: TargetRejection }

/** Client-safe description of each rejection (never quotes the input). */
export const TARGET_REJECTION_MESSAGES: Readonly<Record<TargetRejection, string>> = Object.freeze({
  empty_target: 'the request target is empty',
  too_long: `the request target is longer than ${MAX_TARGET_LENGTH} characters`,
  absolute_form: 'absolute-form request targets are not allowed',
  not_origin_form: 'the request target must start with "/"',
  double_slash: 'empty path segments ("//") are not allowed',
  backslash: 'backslash is not allowed',
  fragment: 'a fragment ("#") is not allowed',
  control_character: 'control characters and spaces are not allowed',
  non_ascii: 'non-ASCII characters must be percent-encoded',
  malformed_escape: 'malformed percent-escape',
  invalid_utf8: 'percent-escapes do not form valid UTF-8',
  encoded_slash: 'encoded slash is not allowed',
  encoded_backslash: 'encoded backslash is not allowed',
  encoded_nul: 'encoded NUL is not allowed',
  encoded_control_character: 'encoded control characters are not allowed',
  encoded_fragment: 'encoded "#" is not allowed in the path',
  encoded_query: 'encoded "?" is not allowed in the path',
  encoded_percent: 'encoded "%" is not allowed in the path',
  dot_segment_above_root: 'dot segments climb above the root',
  dot_segment_parameter: 'dot segments with parameters (";") are not allowed',
})

/**
 * Canonicalises a raw request target (`attributes.request.http.path`). Pure, never throws, one
 * pass over the input; the returned rejection objects are shared frozen constants.
 *
 * @example
 * canonicalizeTarget('/a/./b/../%63?x=/static/a.css')
 * // → { ok: true, path: '/a/c', query: 'x=/static/a.css' }
 * canonicalizeTarget('/public/..%2Fadmin')
 * // → { ok: false, reason: 'encoded_slash' }
 */
export function canonicalizeTarget(rawPath: string): CanonicalTarget {
  const n = rawPath.length
  if (n === 0) return REJECT.empty_target
  if (n > MAX_TARGET_LENGTH) return REJECT.too_long
  if (rawPath.charCodeAt(0) !== SLASH) return rejectNonOriginForm(rawPath)

  // `out` holds the canonical path only once it differs from the raw prefix (`changed`); until
  // then the raw prefix is the canonical path and nothing is copied.
  let out = ''
  let changed = false
  let segStart = 1 // first index of the current segment
  let decoded: string | null = null // the segment's text up to `runStart`, once it has an escape
  let runStart = 1 // first raw index not yet copied into `decoded`
  let utf8Need = 0 // continuation bytes still expected after an escaped UTF-8 lead byte
  let utf8Lo = 0x80 // allowed range of the next continuation byte
  let utf8Hi = 0xbf
  let i = 1
  let c = 0
  for (; ; i++) {
    c = i < n ? rawPath.charCodeAt(i) : END

    if (c === PERCENT) {
      const hi = hexDigit(rawPath.charCodeAt(i + 1))
      const lo = hexDigit(rawPath.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) return REJECT.malformed_escape
      const b = hi * 16 + lo
      let text: string
      if (utf8Need !== 0) {
        if (b < utf8Lo || b > utf8Hi) return REJECT.invalid_utf8
        utf8Need--
        utf8Lo = 0x80
        utf8Hi = 0xbf
        text = ESCAPED[b]!
      } else if (b >= 0x80) {
        const lead = UTF8_LEAD[b - 0x80]!
        if (lead === 0) return REJECT.invalid_utf8
        utf8Need = lead >> 16
        utf8Lo = (lead >> 8) & 0xff
        utf8Hi = lead & 0xff
        text = ESCAPED[b]!
      } else {
        const action = ESCAPE_ACTION[b]!
        if (action === KEEP) text = ESCAPED[b]!
        else if (action === DECODE) text = String.fromCharCode(b)
        else return REJECTION_BY_CODE[action]!
      }
      decoded = (decoded ?? '') + rawPath.slice(runStart, i) + text
      i += 2
      runStart = i + 1
      continue
    }
    if (utf8Need !== 0) return REJECT.invalid_utf8

    if (c === SLASH || c === QUESTION || c === END) {
      // End of the segment [segStart, i).
      const last = c !== SLASH
      let seg: string | null = null
      let kind: number
      if (decoded !== null) {
        seg = decoded + rawPath.slice(runStart, i)
        decoded = null
        kind = dotKind(seg, 0, seg.length)
        if (!changed) {
          changed = true
          out = rawPath.slice(0, segStart - 1)
        }
      } else {
        kind = dotKind(rawPath, segStart, i)
      }

      if (i === segStart) {
        // Empty segment: `//` inside the path, or the trailing slash (removed unless root).
        if (!last) return REJECT.double_slash
        if (segStart > 1 && !changed) {
          changed = true
          out = rawPath.slice(0, segStart - 1)
        }
      } else if (kind === DOT || kind === DOT_DOT) {
        if (!changed) {
          changed = true
          out = rawPath.slice(0, segStart - 1)
        }
        if (kind === DOT_DOT) {
          if (out.length === 0) return REJECT.dot_segment_above_root
          out = out.slice(0, out.lastIndexOf('/'))
        }
      } else if (kind === DOT_PARAM) {
        return REJECT.dot_segment_parameter
      } else if (changed) {
        out += '/' + (seg ?? rawPath.slice(segStart, i))
      }

      if (last) break
      segStart = runStart = i + 1
      continue
    }

    const cls = c < 0x80 ? RAW_CLASS[c]! : NON_ASCII
    if (cls !== OK) return REJECTION_BY_CODE[cls]!
  }

  // `i` is at the first `?` or at the end.
  let query = ''
  if (c === QUESTION) {
    for (let j = i + 1; j < n; j++) {
      const q = rawPath.charCodeAt(j)
      const cls = q < 0x80 ? RAW_CLASS[q]! : NON_ASCII
      if (cls !== OK) return REJECTION_BY_CODE[cls]!
    }
    query = rawPath.slice(i + 1)
  }
  const path = changed ? (out.length === 0 ? '/' : out) : i === n ? rawPath : rawPath.slice(0, i)
  return { ok: true, path, query }
}

/** Names the kind of non-origin-form target: `scheme:` → absolute-form, anything else generic. */
function rejectNonOriginForm(raw: string): CanonicalTarget {
  // RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) followed by ":".
  if (!isAlpha(raw.charCodeAt(0))) return REJECT.not_origin_form
  const limit = Math.min(raw.length, 64)
  for (let i = 1; i < limit; i++) {
    const c = raw.charCodeAt(i)
    if (c === COLON) return REJECT.absolute_form
    if (!(isAlpha(c) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e)) break
  }
  return REJECT.not_origin_form
}

/** Classifies the segment `s[a, b)`: ordinary, `.`, `..`, or a dot segment with `;` parameters. */
function dotKind(s: string, a: number, b: number): number {
  if (b === a || s.charCodeAt(a) !== DOT_CHAR) return ORDINARY
  if (b - a === 1) return DOT
  const c1 = s.charCodeAt(a + 1)
  if (c1 === SEMICOLON) return DOT_PARAM
  if (c1 !== DOT_CHAR) return ORDINARY
  if (b - a === 2) return DOT_DOT
  return s.charCodeAt(a + 2) === SEMICOLON ? DOT_PARAM : ORDINARY
}

function hexDigit(c: number): number {
  return HEX_VALUE[c] ?? -1 // NaN (past the end) and non-ASCII fall out of the table
}

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
}

// ---------------------------------------------------------------------------------------------
// Tables, built once at load.

const SLASH = 0x2f
const PERCENT = 0x25
const QUESTION = 0x3f
const COLON = 0x3a
const SEMICOLON = 0x3b
const DOT_CHAR = 0x2e
const END = -1

const ORDINARY = 0
const DOT = 1
const DOT_DOT = 2
const DOT_PARAM = 3

function rejection(reason: TargetRejection): CanonicalTarget {
  return Object.freeze({ ok: false as const, reason })
}

const REJECT: Readonly<Record<TargetRejection, CanonicalTarget>> = Object.freeze(
  Object.fromEntries(
    (Object.keys(TARGET_REJECTION_MESSAGES) as TargetRejection[]).map((r) => [r, rejection(r)]),
  ) as Record<TargetRejection, CanonicalTarget>,
)

// Character classes / escape actions share one numbering: 0 = fine, 1 = decode (escapes only),
// 2 = keep encoded (escapes only), ≥ 3 = index into REJECTION_BY_CODE.
const OK = 0
const DECODE = 1
const KEEP = 2
const REJECTION_BY_CODE: readonly (CanonicalTarget | undefined)[] = [
  undefined, // OK
  undefined, // DECODE
  undefined, // KEEP
  REJECT.control_character, // 3
  REJECT.non_ascii, // 4
  REJECT.backslash, // 5
  REJECT.fragment, // 6
  REJECT.encoded_slash, // 7
  REJECT.encoded_backslash, // 8
  REJECT.encoded_nul, // 9
  REJECT.encoded_control_character, // 10
  REJECT.encoded_fragment, // 11
  REJECT.encoded_query, // 12
  REJECT.encoded_percent, // 13
]
const NON_ASCII = 4

/** Raw ASCII characters of the target: control characters, space, DEL, `\` and `#` are rejected. */
const RAW_CLASS = new Uint8Array(0x80)
for (let c = 0; c <= 0x20; c++) RAW_CLASS[c] = 3
RAW_CLASS[0x7f] = 3
RAW_CLASS[0x5c] = 5
RAW_CLASS[0x23] = 6

/** What to do with an escaped ASCII byte in the path. */
const ESCAPE_ACTION = new Uint8Array(0x80).fill(KEEP)
for (let c = 0x30; c <= 0x39; c++) ESCAPE_ACTION[c] = DECODE
for (let c = 0x41; c <= 0x5a; c++) ESCAPE_ACTION[c] = DECODE
for (let c = 0x61; c <= 0x7a; c++) ESCAPE_ACTION[c] = DECODE
for (const c of [0x2d, 0x2e, 0x5f, 0x7e]) ESCAPE_ACTION[c] = DECODE // - . _ ~
for (let c = 0x01; c < 0x20; c++) ESCAPE_ACTION[c] = 10
ESCAPE_ACTION[0x7f] = 10
ESCAPE_ACTION[0x00] = 9
ESCAPE_ACTION[0x2f] = 7
ESCAPE_ACTION[0x5c] = 8
ESCAPE_ACTION[0x23] = 11
ESCAPE_ACTION[0x3f] = 12
ESCAPE_ACTION[0x25] = 13

/** `%XX` with upper-case hex for every byte. */
const ESCAPED: readonly string[] = Array.from(
  { length: 256 },
  (_, b) => '%' + b.toString(16).toUpperCase().padStart(2, '0'),
)

/** Hex digit value by char code, -1 for anything else. */
const HEX_VALUE = new Int8Array(0x80).fill(-1)
for (let c = 0; c < 10; c++) HEX_VALUE[0x30 + c] = c
for (let c = 0; c < 6; c++) {
  HEX_VALUE[0x41 + c] = 10 + c
  HEX_VALUE[0x61 + c] = 10 + c
}

/**
 * UTF-8 lead bytes 0x80–0xFF (RFC 3629 §4): `need << 16 | firstContinuationLo << 8 | hi`, or 0
 * when the byte cannot start a sequence (continuation bytes, overlong C0/C1, F5–FF).
 */
const UTF8_LEAD = new Int32Array(0x80)
for (let b = 0xc2; b <= 0xdf; b++) UTF8_LEAD[b - 0x80] = (1 << 16) | (0x80 << 8) | 0xbf
UTF8_LEAD[0xe0 - 0x80] = (2 << 16) | (0xa0 << 8) | 0xbf // no overlong 3-byte forms
for (let b = 0xe1; b <= 0xef; b++) UTF8_LEAD[b - 0x80] = (2 << 16) | (0x80 << 8) | 0xbf
UTF8_LEAD[0xed - 0x80] = (2 << 16) | (0x80 << 8) | 0x9f // no UTF-16 surrogates
UTF8_LEAD[0xf0 - 0x80] = (3 << 16) | (0x90 << 8) | 0xbf // no overlong 4-byte forms
for (let b = 0xf1; b <= 0xf3; b++) UTF8_LEAD[b - 0x80] = (3 << 16) | (0x80 << 8) | 0xbf
UTF8_LEAD[0xf4 - 0x80] = (3 << 16) | (0x80 << 8) | 0x8f // nothing above U+10FFFF
