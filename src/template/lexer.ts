/**
 * Lexer for the Go `text/template` subset Portcullis compiles (the grammar of Go's
 * `text/template/parse/lex.go`, default `{{` `}}` delimiters). It turns the whole source into a token
 * list once, at load: text runs (already trimmed by `{{- ` / ` -}}` markers), action delimiters,
 * and the words inside actions. Comments `{{/* … *\/}}` are dropped here.
 *
 * Lexical errors are {@link TemplateError}s carrying the offset of the offending action.
 * @module
 */
import type { ErrorSink } from './errors.js'

export type TokenKind =
  | 'text'
  | 'left' // `{{`
  | 'right' // `}}`
  | 'space'
  | 'field' // `.Name`; value is `Name`
  | 'dot' // a lone `.`
  | 'variable' // `$` or `$name`; value includes the `$`
  | 'ident' // function name
  | 'keyword' // if else end range with define template block
  | 'bool'
  | 'nil'
  | 'string' // value is the unquoted text
  | 'number' // value is the literal text
  | 'pipe'
  | 'lparen'
  | 'rparen'
  | 'declare' // :=
  | 'assign' // =
  | 'char' // any other printable ASCII character inside an action, e.g. `,`
  | 'eof'

export interface Token {
  readonly kind: TokenKind
  /** Offset of the token's first character in the source. */
  readonly pos: number
  readonly value: string
}

const KEYWORDS: ReadonlySet<string> = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
])

const ALNUM_RUN = /[\p{L}\p{Nd}_]*/uy
const ALNUM_ONE = /^[\p{L}\p{Nd}_]/u

/** What Go's scanNumber consumes (all of Go's number syntaxes, so that parse.ts can name them). */
const NUMBER = new RegExp(
  String.raw`[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?|0[oO][0-7_]*|0[bB][01_]*` +
    String.raw`|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?`,
  'y',
)

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\n'
}

/** Go's `spaceChars` trimming (`" \t\r\n"`), used by the `{{-` / `-}}` trim markers. */
function trimRightSpace(s: string): string {
  let end = s.length
  while (end > 0 && isSpace(s[end - 1])) end--
  return s.slice(0, end)
}

function leadingSpaceLength(s: string, from: number): number {
  let i = from
  while (i < s.length && isSpace(s[i])) i++
  return i - from
}

/** Unquotes a Go interpreted string literal body (between the quotes), like `strconv.Unquote`. */
function unquote(body: string, pos: number, err: ErrorSink): string {
  if (!body.includes('\\')) return body
  let out = ''
  // \x and octal escapes produce bytes; collect runs of them and decode as UTF-8.
  let bytes: number[] = []
  const flushBytes = (): void => {
    if (bytes.length === 0) return
    try {
      out += new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes))
    } catch {
      err.unsupported('string literal whose \\x or octal escapes are not valid UTF-8', pos)
    }
    bytes = []
  }
  for (let i = 0; i < body.length; i++) {
    const c = body[i]
    if (c !== '\\') {
      flushBytes()
      out += c
      continue
    }
    const e = body[++i]
    const hex = (n: number): number => {
      const digits = body.slice(i + 1, i + 1 + n)
      if (digits.length !== n || !/^[0-9a-fA-F]+$/.test(digits)) err.invalid('bad escape sequence in string literal', pos)
      i += n
      return Number.parseInt(digits, 16)
    }
    switch (e) {
      case 'x':
        bytes.push(hex(2))
        continue
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        const digits = body.slice(i, i + 3)
        if (!/^[0-7]{3}$/.test(digits)) err.invalid('bad octal escape in string literal', pos)
        const v = Number.parseInt(digits, 8)
        if (v > 255) err.invalid('octal escape value > 255 in string literal', pos)
        bytes.push(v)
        i += 2
        continue
      }
    }
    flushBytes()
    switch (e) {
      case 'a':
        out += '\x07'
        break
      case 'b':
        out += '\b'
        break
      case 'f':
        out += '\f'
        break
      case 'n':
        out += '\n'
        break
      case 'r':
        out += '\r'
        break
      case 't':
        out += '\t'
        break
      case 'v':
        out += '\v'
        break
      case '\\':
        out += '\\'
        break
      case '"':
        out += '"'
        break
      case 'u':
      case 'U': {
        const cp = hex(e === 'u' ? 4 : 8)
        if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) err.invalid('escape is not a valid Unicode code point', pos)
        out += String.fromCodePoint(cp)
        break
      }
      default:
        err.invalid('unknown escape sequence in string literal', pos)
    }
  }
  flushBytes()
  return out
}

/** Tokenises `src`. The result always ends with an `eof` token. */
export function lex(src: string, err: ErrorSink): Token[] {
  const tokens: Token[] = []
  let pos = 0
  let trimNext = false
  const emit = (kind: TokenKind, at: number, value = ''): void => {
    tokens.push({ kind, pos: at, value })
  }

  for (;;) {
    const open = src.indexOf('{{', pos)
    let textStart = pos
    if (trimNext) textStart += leadingSpaceLength(src, pos)
    trimNext = false
    if (open < 0) {
      if (textStart < src.length) emit('text', textStart, src.slice(textStart))
      break
    }
    // `{{- ` trims the text before it; the marker is a minus followed by one space character.
    const leftTrim = src[open + 2] === '-' && isSpace(src[open + 3])
    let text = textStart < open ? src.slice(textStart, open) : ''
    if (leftTrim) text = trimRightSpace(text)
    if (text !== '') emit('text', textStart, text)

    let p = open + 2 + (leftTrim ? 2 : 0)
    if (src.startsWith('/*', p)) {
      const close = src.indexOf('*/', p + 2)
      if (close < 0) err.invalid('unclosed comment', open)
      const q = close + 2
      if (isSpace(src[q]) && src.startsWith('-}}', q + 1)) {
        trimNext = true
        pos = q + 4
      } else if (src.startsWith('}}', q)) {
        pos = q + 2
      } else {
        err.invalid('comment ends before closing delimiter', open)
      }
      continue
    }

    emit('left', open)
    let parenDepth = 0
    for (;;) {
      // The closing delimiter, with or without the ` -}}` trim marker.
      const rightTrim = isSpace(src[p]) && src.startsWith('-}}', p + 1)
      if (rightTrim || src.startsWith('}}', p)) {
        if (parenDepth > 0) err.invalid('unclosed left paren', p)
        emit('right', p)
        pos = p + (rightTrim ? 4 : 2)
        trimNext = rightTrim
        break
      }
      if (p >= src.length) err.invalid('unclosed action', open)
      const c = src[p] as string
      const start = p
      if (isSpace(c)) {
        while (isSpace(src[p])) p++
        // The last space before `-}}` belongs to the trim marker ` -}}`; leave it for the check above.
        if (src.startsWith('-}}', p)) p--
        if (p > start) emit('space', start)
        continue
      }
      switch (c) {
        case '=':
          emit('assign', start)
          p++
          continue
        case ':':
          if (src[p + 1] !== '=') err.invalid('expected :=', start)
          emit('declare', start)
          p += 2
          continue
        case '|':
          emit('pipe', start)
          p++
          continue
        case '(':
          emit('lparen', start)
          parenDepth++
          p++
          continue
        case ')':
          parenDepth--
          if (parenDepth < 0) err.invalid('unexpected right paren', start)
          emit('rparen', start)
          p++
          continue
        case '"': {
          let i = p + 1
          for (;;) {
            const d = src[i]
            if (d === undefined || d === '\n') err.invalid('unterminated quoted string', start)
            if (d === '\\') {
              const n = src[i + 1]
              if (n === undefined || n === '\n') err.invalid('unterminated quoted string', start)
              i += 2
              continue
            }
            if (d === '"') break
            i++
          }
          emit('string', start, unquote(src.slice(p + 1, i), start, err))
          p = i + 1
          continue
        }
        case '`': {
          const close = src.indexOf('`', p + 1)
          if (close < 0) err.invalid('unterminated raw quoted string', start)
          // strconv.Unquote drops carriage returns from raw strings.
          emit('string', start, src.slice(p + 1, close).replaceAll('\r', ''))
          p = close + 1
          continue
        }
        case "'":
          err.unsupported('character constants', start)
      }
      if (c === '$' || (c === '.' && !(src[p + 1] !== undefined && src[p + 1]! >= '0' && src[p + 1]! <= '9'))) {
        ALNUM_RUN.lastIndex = p + 1
        ALNUM_RUN.exec(src)
        const end = ALNUM_RUN.lastIndex
        p = end
        checkTerminator(src, p, err)
        if (c === '$') emit('variable', start, src.slice(start, end))
        else if (end === start + 1) emit('dot', start)
        else emit('field', start, src.slice(start + 1, end))
        continue
      }
      if (c === '+' || c === '-' || c === '.' || (c >= '0' && c <= '9')) {
        NUMBER.lastIndex = p
        NUMBER.exec(src)
        const end = NUMBER.lastIndex
        if (end < src.length && ALNUM_ONE.test(src.slice(end, end + 2))) {
          err.invalid(`bad number syntax: ${JSON.stringify(src.slice(start, end + 1))}`, start)
        }
        emit('number', start, src.slice(start, end))
        p = end
        continue
      }
      if (ALNUM_ONE.test(src.slice(p, p + 2))) {
        ALNUM_RUN.lastIndex = p
        ALNUM_RUN.exec(src)
        const end = ALNUM_RUN.lastIndex
        const word = src.slice(p, end)
        p = end
        checkTerminator(src, p, err)
        if (KEYWORDS.has(word)) emit('keyword', start, word)
        else if (word === 'true' || word === 'false') emit('bool', start, word)
        else if (word === 'nil') emit('nil', start, word)
        else emit('ident', start, word)
        continue
      }
      const code = c.charCodeAt(0)
      if (code >= 0x20 && code < 0x7f) {
        emit('char', start, c)
        p++
        continue
      }
      err.invalid(`unrecognized character in action: U+${code.toString(16).toUpperCase().padStart(4, '0')}`, start)
    }
  }
  emit('eof', src.length)
  return tokens
}

/** After a word, Go requires a space, a delimiter, `.`, `,`, `|`, `:`, `(` or `)`. */
function checkTerminator(src: string, p: number, err: ErrorSink): void {
  const c = src[p]
  if (c === undefined || isSpace(c) || '.,|:()'.includes(c) || src.startsWith('}}', p)) return
  const cp = src.codePointAt(p) as number
  err.invalid(`bad character U+${cp.toString(16).toUpperCase().padStart(4, '0')} ${JSON.stringify(String.fromCodePoint(cp))}`, p)
}
