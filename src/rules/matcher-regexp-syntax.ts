/**
 * The `regexp` matching strategy's group syntax: translates the text inside one `<...>` of a rule
 * pattern from Go RE2 syntax (what Oathkeeper documents) into a JavaScript RegExp source with the
 * same meaning, and refuses what cannot be matched in linear time or has no JS equivalent.
 *
 * Differences between RE2 and JS (non-`u` mode) that are translated rather than refused:
 * - `.` becomes `[^\n]` (JS `.` also excludes `\r`, U+2028, U+2029; RE2 only `\n`);
 * - `\s` / `\S` become RE2's ASCII set `[\t\n\f\r ]` (JS `\s` also has `\v` and Unicode spaces);
 * - `\A` / `\z` become `^` / `$` (JS without the `m` flag has no "before final newline" `$`);
 * - `\x{…}`, octal `\123`, `\a` and `[[:alpha:]]`-style POSIX classes become JS escapes/ranges;
 * - `(?P<name>…)` becomes `(?<name>…)`;
 * - `{` that does not start a valid repetition, and a leading `]` in a class, are literals (RE2);
 * - counted repetitions of capture-free atoms are unrolled (`x{2,4}` → `xx(?:x(?:x)?)?`),
 *   because V8's linear engine only accepts repetitions of up to 16 copies.
 *
 * Refused, with a message saying why: lookaround and backreferences (they need backtracking),
 * inline flags such as `(?i)` (V8's linear engine has no case-insensitive mode), Unicode classes
 * `\p{…}` (they need the `u` flag, which the linear engine lacks), atomic groups, comments,
 * `\C`, and repetition counts above 1 000 (RE2's own limit).
 *
 * Known remaining difference: matching works on UTF-16 code units, so `.` or `[^/]` consumes half
 * of a character outside the Basic Multilingual Plane where RE2 consumes the whole rune. Request
 * URLs are canonicalised (non-ASCII percent-encoded) before matching, so this does not arise there.
 * @module
 */
import { PatternError } from './matcher-errors.js'

/** A group translated to JS: its source (without the surrounding capture parens) and captures. */
export interface TranslatedGroup {
  readonly source: string
  /** Capture groups inside the group's own regexp (the `<...>` capture itself not included). */
  readonly captures: number
  /** Unbounded repetitions (`*`, `+`, `{n,}`): they bound the linear engine's worst case. */
  readonly unbounded: number
}

/** Escapes every character that is special anywhere in a JS RegExp (outside a class). */
export function quoteRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')
}

/** Translates one group's RE2 source; throws {@link PatternError} naming the problem. */
export function translateRegexpGroup(source: string): TranslatedGroup {
  return new Translator(source).run()
}

/**
 * The finite set of literal strings a group matches, when it is that simple (`http|https`,
 * `https?`, `(?:api|www)`, `v1`), else `undefined`. Used only to widen the matcher's prefix
 * index; at most `limit` strings.
 */
export function regexpLiteralAlternatives(source: string, limit: number): string[] | undefined {
  let body = source
  const wrapped = /^\((?:\?:)?([^()]*)\)$/.exec(body)
  if (wrapped !== null) body = wrapped[1] ?? ''
  if (body.endsWith('?') && !body.includes('|')) {
    // `https?`: the optional last character must be a plain letter or digit.
    const last = body.charAt(body.length - 2)
    const base = literalText(body.slice(0, -2))
    const escaped = body.charAt(body.length - 3) === '\\'
    if (!/^[A-Za-z0-9]$/.test(last) || escaped || base === undefined) return undefined
    return [base, base + last]
  }
  const parts = body.split('|')
  if (parts.length > limit) return undefined
  const alternatives: string[] = []
  for (const part of parts) {
    const text = literalText(part)
    if (text === undefined) return undefined
    alternatives.push(text)
  }
  return alternatives
}

/** The literal a regexp fragment stands for, if it has no metacharacters (escaped punctuation ok). */
function literalText(fragment: string): string | undefined {
  let text = ''
  for (let i = 0; i < fragment.length; i++) {
    const c = fragment.charAt(i)
    if (c === '\\') {
      const next = fragment.charAt(++i)
      if (!isAsciiPunctuation(next)) return undefined
      text += next
    } else if ('.^$*+?()[]{}|'.includes(c)) {
      return undefined
    } else {
      text += c
    }
  }
  return text
}

/** Repetition counts above this are an error in RE2, and so here. */
const MAX_REPEAT = 1000

/**
 * Longest JS source a pattern may translate to; checked while unrolling, before any string is
 * built, so `((a{1000}){1000}){1000}` fails fast instead of allocating gigabytes.
 */
export const MAX_TRANSLATED_LENGTH = 16_384

/** The RE2 (ASCII) meaning of `\s`, for use inside a JS class. */
const RE2_SPACE_CLASS = '\\t\\n\\f\\r '
/** Everything but RE2's `\s`, as JS class ranges over UTF-16 code units. */
const RE2_NON_SPACE_CLASS = '\\x00-\\x08\\x0B\\x0E-\\x1F\\x21-\\uFFFF'

/** `[[:name:]]` classes of RE2, as JS class contents. */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
}

const WHY_BACKTRACKING =
  'they need a backtracking regexp engine, which one crafted URL can stall for seconds'

/** A syntactic unit a quantifier can apply to, as a slice of the output built so far. */
interface Atom {
  readonly start: number
  readonly hasCaptures: boolean
}

interface OpenGroup {
  readonly start: number
  readonly capturesBefore: number
  readonly capturing: boolean
}

/** Single-pass RE2 → JS translator over one group's source. */
class Translator {
  private pos = 0
  private out = ''
  private captures = 0
  private unbounded = 0
  private readonly open: OpenGroup[] = []
  /** The atom a following quantifier applies to, or undefined if there is none. */
  private atom: Atom | undefined
  /** Whether the previous token was a quantifier (RE2 rejects `a**`, `a{2}+`; JS reads `aa+`). */
  private afterQuantifier = false

  constructor(private readonly src: string) {}

  run(): TranslatedGroup {
    while (this.pos < this.src.length) this.step()
    if (this.open.length > 0) throw new PatternError('missing ")": a "(" is never closed')
    return { source: this.out, captures: this.captures, unbounded: this.unbounded }
  }

  private step(): void {
    const c = this.src.charAt(this.pos)
    const afterQuantifier = this.afterQuantifier
    this.afterQuantifier = false
    switch (c) {
      case '\\':
        this.escape()
        return
      case '[':
        this.charClass()
        return
      case '(':
        this.openGroup()
        return
      case ')':
        this.closeGroup()
        return
      case '{':
        this.brace(afterQuantifier)
        return
      case '*':
      case '+':
      case '?':
        this.quantifier(c, afterQuantifier)
        return
      case '.':
        this.emitAtom('[^\\n]')
        this.pos++
        return
      case '^':
      case '$':
      case '|':
        this.out += c
        this.pos++
        this.atom = undefined
        return
      case '}':
      case ']':
        this.emitAtom(`\\${c}`)
        this.pos++
        return
      default:
        this.literal()
    }
  }

  /** A plain character; a surrogate pair stays one atom so a quantifier repeats all of it. */
  private literal(): void {
    const code = this.src.charCodeAt(this.pos)
    const next = this.src.charCodeAt(this.pos + 1)
    if (code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      this.emitAtom(`(?:${this.src.slice(this.pos, this.pos + 2)})`)
      this.pos += 2
      return
    }
    this.emitAtom(quoteRegExp(this.src.charAt(this.pos)))
    this.pos++
  }

  private emitAtom(text: string, hasCaptures = false): void {
    this.atom = { start: this.out.length, hasCaptures }
    this.out += text
  }

  private emitAssertion(text: string): void {
    this.out += text
    this.atom = undefined
  }

  private escape(): void {
    const e = this.src.charAt(this.pos + 1)
    this.pos += 2
    switch (e) {
      case '':
        throw new PatternError('trailing backslash at the end of the group')
      case 'A':
        return this.emitAssertion('^')
      case 'z':
        return this.emitAssertion('$')
      case 'b':
      case 'B':
        return this.emitAssertion(`\\${e}`)
      case 'd':
      case 'D':
      case 'w':
      case 'W':
      case 'f':
      case 'n':
      case 'r':
      case 't':
      case 'v':
        return this.emitAtom(`\\${e}`)
      case 's':
        return this.emitAtom(`[${RE2_SPACE_CLASS}]`)
      case 'S':
        return this.emitAtom(`[^${RE2_SPACE_CLASS}]`)
      case 'Q':
        return this.quotedLiteral()
      default:
        break
    }
    const code = this.codePointEscape(e)
    if (code !== undefined) {
      this.emitCodePoint(code)
      return
    }
    if (isAsciiPunctuation(e)) return this.emitAtom(`\\${e}`)
    throw new PatternError(this.unsupportedEscape(e))
  }

  /** `\Q...\E`: everything up to `\E` (or the end) is literal. */
  private quotedLiteral(): void {
    const end = this.src.indexOf('\\E', this.pos)
    const text = this.src.slice(this.pos, end === -1 ? this.src.length : end)
    this.pos = end === -1 ? this.src.length : end + 2
    // Like RE2, a quantifier after `\Q..\E` applies to the last character only.
    for (const ch of text) this.emitAtom(ch.length === 2 ? `(?:${ch})` : quoteRegExp(ch))
  }

  /**
   * Escapes that denote one character: `\a`, `\x7F`, `\x{10FFFF}`, octal `\0`, `\012`, `\123`
   * (RE2) and `\u0041` (accepted for .NET/regexp2 compatibility, which Oathkeeper really uses).
   * `this.pos` is just past the escape letter; it is advanced past any digits consumed.
   */
  private codePointEscape(e: string): number | undefined {
    const rest = this.src.slice(this.pos)
    if (e === 'a') return 0x07
    if (e === 'x') {
      const m = /^(?:\{([0-9A-Fa-f]{1,8})\}|([0-9A-Fa-f]{2}))/.exec(rest)
      if (m === null) throw new PatternError('invalid hex escape: use \\xHH or \\x{HHHH}')
      this.pos += m[0].length
      const code = parseInt(m[1] ?? m[2] ?? '', 16)
      if (code > 0x10ffff) throw new PatternError(`invalid hex escape \\x{${m[1]}}: beyond U+10FFFF`)
      return code
    }
    if (e === 'u') {
      const m = /^[0-9A-Fa-f]{4}/.exec(rest)
      if (m === null) throw new PatternError('invalid \\u escape: use \\uHHHH')
      this.pos += 4
      return parseInt(m[0], 16)
    }
    if (e >= '0' && e <= '7') {
      const more = /^[0-7]{0,2}/.exec(rest)?.[0] ?? ''
      // RE2: a single non-zero digit is a backreference, which it does not support either.
      if (e !== '0' && more === '') return undefined
      this.pos += more.length
      return parseInt(e + more, 8)
    }
    return undefined
  }

  private emitCodePoint(code: number): void {
    if (code > 0xffff) {
      this.emitAtom(`(?:${String.fromCodePoint(code)})`)
    } else {
      this.emitAtom(`\\u${code.toString(16).padStart(4, '0')}`)
    }
  }

  private unsupportedEscape(e: string): string {
    if (/^[1-9]$/.test(e) || e === 'k') {
      return `backreferences such as "\\${e}" are not supported: ${WHY_BACKTRACKING}`
    }
    if (e === 'p' || e === 'P') {
      return `Unicode character classes such as "\\${e}{…}" are not supported; use explicit ranges`
    }
    if (e === 'C') return '"\\C" (any byte) is not supported'
    if (e === 'Z') return '"\\Z" is not RE2 syntax; use "\\z" or "$"'
    return `invalid escape "\\${e}"`
  }

  private openGroup(): void {
    const rest = this.src.slice(this.pos)
    const start = this.out.length
    if (!rest.startsWith('(?')) {
      this.captures++
      this.open.push({ start, capturesBefore: this.captures - 1, capturing: true })
      this.out += '('
      this.pos++
      return
    }
    if (rest.startsWith('(?:')) {
      this.open.push({ start, capturesBefore: this.captures, capturing: false })
      this.out += '(?:'
      this.pos += 3
      return
    }
    const named = /^\(\?P?<([^>=!]*)>/.exec(rest)
    if (named !== null) {
      const name = named[1] ?? ''
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new PatternError(`invalid capture group name "${name}": use letters, digits and "_", not starting with a digit`)
      }
      this.captures++
      this.open.push({ start, capturesBefore: this.captures - 1, capturing: true })
      this.out += `(?<${name}>`
      this.pos += named[0].length
      return
    }
    throw new PatternError(this.unsupportedGroup(rest))
  }

  private unsupportedGroup(rest: string): string {
    if (/^\(\?(?:=|!)/.test(rest)) {
      return `lookahead assertions such as "${rest.slice(0, 3)}" are not supported: ${WHY_BACKTRACKING}`
    }
    if (/^\(\?<(?:=|!)/.test(rest)) {
      return `lookbehind assertions such as "${rest.slice(0, 4)}" are not supported: ${WHY_BACKTRACKING}`
    }
    if (/^\(\?P[=>]/.test(rest)) {
      return `backreferences such as "${rest.slice(0, 4)}" are not supported: ${WHY_BACKTRACKING}`
    }
    if (rest.startsWith('(?>')) return `atomic groups "(?>" are not supported`
    if (rest.startsWith('(?#')) return `comments "(?#" are not supported`
    const flags = /^\(\?[A-Za-z-]*[):]/.exec(rest)
    if (flags !== null) {
      return `inline flags such as "${flags[0]}" are not supported (the linear-time engine has no case-insensitive mode); spell cases out, e.g. [Aa]`
    }
    return `unsupported group syntax "${rest.slice(0, 3)}"`
  }

  private closeGroup(): void {
    const group = this.open.pop()
    if (group === undefined) throw new PatternError('unbalanced parenthesis: ")" without a matching "("')
    this.out += ')'
    this.pos++
    this.atom = {
      start: group.start,
      hasCaptures: group.capturing || this.captures > group.capturesBefore,
    }
  }

  /** `*`, `+` or `?`, optionally followed by the lazy `?`. */
  private quantifier(op: string, afterQuantifier: boolean): void {
    if (this.atom === undefined) throw new PatternError(missingArgument(op, afterQuantifier))
    this.pos++
    const lazy = this.src.charAt(this.pos) === '?'
    if (lazy) this.pos++
    this.out += lazy ? `${op}?` : op
    if (op !== '?') this.unbounded++
    this.atom = undefined
    this.afterQuantifier = true
  }

  /** `{n}`, `{n,}`, `{n,m}` (optionally lazy) is a repetition; any other `{` is a literal (RE2). */
  private brace(afterQuantifier: boolean): void {
    const m = /^\{(\d+)(?:(,)(\d*))?\}(\??)/.exec(this.src.slice(this.pos))
    if (m === null) {
      this.emitAtom('\\{')
      this.pos++
      return
    }
    const [text, minText = '', comma, maxText, lazy] = m
    const min = Number(minText)
    const max = comma === undefined ? min : maxText === '' || maxText === undefined ? Infinity : Number(maxText)
    const shown = text.replace(/\?$/, '')
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) {
      throw new PatternError(`repetition count in "${shown}" is above ${MAX_REPEAT}`)
    }
    if (max < min) throw new PatternError(`invalid repetition "${shown}": maximum below minimum`)
    const atom = this.atom
    if (atom === undefined) throw new PatternError(missingArgument(shown, afterQuantifier))
    this.pos += text.length
    this.atom = undefined
    this.afterQuantifier = true
    if (max === Infinity) this.unbounded++
    if (atom.hasCaptures) {
      // Copies of a capture group would renumber the groups; V8 decides whether it is linear.
      this.out += text
      return
    }
    const body = this.out.slice(atom.start)
    const copies = max === Infinity ? min + 1 : max
    if (atom.start + copies * (body.length + 6) > MAX_TRANSLATED_LENGTH) {
      throw new PatternError(
        `repetition "${shown}" expands to more than ${MAX_TRANSLATED_LENGTH} characters of regexp; use a smaller count`,
      )
    }
    this.out = this.out.slice(0, atom.start) + unroll(body, min, max, lazy === '?')
  }

  private charClass(): void {
    this.pos++
    let out = '['
    if (this.src.charAt(this.pos) === '^') {
      out += '^'
      this.pos++
    }
    let first = true
    for (;;) {
      const c = this.src.charAt(this.pos)
      if (c === '') throw new PatternError('missing closing "]" of a character class')
      if (c === ']' && !first) break
      first = false
      if (c === '[' && this.src.charAt(this.pos + 1) === ':') {
        out += this.posixClass()
      } else if (c === '\\') {
        out += this.classEscape()
      } else if (c === '[' || c === ']' || c === '^') {
        out += `\\${c}`
        this.pos++
      } else {
        const code = this.src.charCodeAt(this.pos)
        if (code >= 0xd800 && code <= 0xdbff) {
          throw new PatternError('characters outside the Basic Multilingual Plane are not supported in a character class')
        }
        out += c
        this.pos++
      }
    }
    this.pos++
    this.emitAtom(`${out}]`)
  }

  private posixClass(): string {
    const m = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.pos))
    if (m === null) {
      // RE2 treats a "[:" that is not a POSIX class as a literal "[" followed by ":".
      this.pos++
      return '\\['
    }
    const ranges = POSIX_CLASSES[m[2] ?? '']
    if (ranges === undefined) throw new PatternError(`unknown POSIX class "${m[0]}"`)
    if (m[1] === '^') throw new PatternError(`negated POSIX classes such as "${m[0]}" are not supported; negate the whole class instead`)
    this.pos += m[0].length
    return ranges
  }

  private classEscape(): string {
    const e = this.src.charAt(this.pos + 1)
    this.pos += 2
    switch (e) {
      case '':
        throw new PatternError('missing closing "]" of a character class')
      case 'd':
      case 'D':
      case 'w':
      case 'W':
      case 'f':
      case 'n':
      case 'r':
      case 't':
      case 'v':
        return `\\${e}`
      case 's':
        return RE2_SPACE_CLASS
      case 'S':
        return RE2_NON_SPACE_CLASS
      default:
        break
    }
    const code = this.codePointEscape(e)
    if (code !== undefined) {
      if (code > 0xffff) {
        throw new PatternError('characters outside the Basic Multilingual Plane are not supported in a character class')
      }
      return `\\u${code.toString(16).padStart(4, '0')}`
    }
    if (isAsciiPunctuation(e)) return `\\${e}`
    throw new PatternError(`${this.unsupportedEscape(e)} inside a character class`)
  }
}

function missingArgument(op: string, afterQuantifier: boolean): string {
  return afterQuantifier
    ? `invalid nested repetition operator "${op}": a repetition cannot be repeated directly; use (?:...)`
    : `repetition operator "${op}" has nothing to repeat`
}

/**
 * `x{min,max}` as copies of `x`: `min` copies, then either `x*` (no maximum) or a nested chain
 * of optional copies `(?:x(?:x)?)?`. The chain is unambiguous, so the backtracking engine never
 * has to try the many ways a flat `x?x?x?` could split the same input.
 */
function unroll(atom: string, min: number, max: number, lazy: boolean): string {
  const optional = lazy ? '??' : '?'
  let out = atom.repeat(min)
  if (max === Infinity) return `${out}${atom}${lazy ? '*?' : '*'}`
  let tail = ''
  for (let i = min; i < max; i++) tail = `(?:${atom}${tail})${optional}`
  out += tail
  return out
}

function isAsciiPunctuation(c: string): boolean {
  return c.length === 1 && /[!-/:-@[-`{-~]/.test(c)
}
