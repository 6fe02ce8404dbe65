/**
 * The `glob` matching strategy's group syntax: translates the text inside one `<...>` of a rule
 * pattern from gobwas/glob syntax (what Oathkeeper uses, compiled with separators `.` and `/`)
 * into a JavaScript RegExp source without capture groups.
 *
 * | glob        | meaning                                            | JS            |
 * |-------------|----------------------------------------------------|---------------|
 * | `*`         | any run of characters other than `.` and `/`       | `[^./]*`      |
 * | `**`        | any run of characters                              | `[^]*`        |
 * | `?`         | one character other than `.` and `/`               | `[^./]`       |
 * | `[abc]`     | one of the listed characters (`,` is a literal)    | `[abc]`       |
 * | `[a-z]`     | one character in the range                         | `[a-z]`       |
 * | `[!abc]`, `[!a-z]` | one character not listed (may be a separator) | `[^abc]`   |
 * | `{a,b*}`    | one of the alternatives, each itself a glob        | `(?:a\|b[^./]*)` |
 * | `\x`        | the literal `x`                                    |               |
 * | anything else, incl. `\|`, `,` and `}` outside `{}` | literal           |               |
 *
 * As in gobwas/glob, a class is either one range or a list of characters, never both
 * (`[a-z0-9]` is an error, `[ab-c]` is the list `a`, `b`, `-`, `c`).
 *
 * Deliberate difference from Oathkeeper: gobwas/glob lets `*` and `?` match separators when they
 * appear inside `{...}` (Oathkeeper issue #963: `<{,????*}>` matches `123/4`). Here `*` and `?`
 * never match `.` or `/`, inside alternatives or not.
 * @module
 */
import { PatternError } from './matcher-errors.js'
import { quoteRegExp } from './matcher-regexp-syntax.js'

const ANY = '[^./]*'
const SUPER = '[^]*'
const SINGLE = '[^./]'
const META = /[*?[\]{}\\]/

/** A group translated to JS: its source (no capture groups) and its `*`/`**` count. */
export interface TranslatedGlob {
  readonly source: string
  /** Unbounded wildcards (`*`, `**`): they bound the linear engine's worst case. */
  readonly unbounded: number
}

/** Translates one group's glob source to a JS RegExp source. */
export function translateGlobGroup(source: string): TranslatedGlob {
  const parser = new GlobParser(source)
  return { source: parser.sequence(false), unbounded: parser.unbounded }
}

/**
 * The finite set of literal strings a group matches, when it is that simple (`api`,
 * `{http,https}`), else `undefined`. Used only to widen the matcher's prefix index.
 */
export function globLiteralAlternatives(source: string, limit: number): string[] | undefined {
  if (!META.test(source)) return [source]
  const m = /^\{([^*?[\]{}\\]*)\}$/.exec(source)
  if (m === null) return undefined
  const alternatives = (m[1] ?? '').split(',')
  return alternatives.length <= limit ? alternatives : undefined
}

class GlobParser {
  private pos = 0
  unbounded = 0

  constructor(private readonly src: string) {}

  /** Parses up to the end, or inside `{...}` up to the next unescaped `,` or `}`. */
  sequence(inAlternatives: boolean): string {
    let out = ''
    for (;;) {
      const c = this.src.charAt(this.pos)
      if (c === '') {
        if (inAlternatives) throw new PatternError('missing "}": a "{" alternatives list is never closed')
        return out
      }
      if (inAlternatives && (c === ',' || c === '}')) return out
      switch (c) {
        case '*':
          this.unbounded++
          if (this.src.charAt(this.pos + 1) === '*') {
            out += SUPER
            this.pos += 2
          } else {
            out += ANY
            this.pos++
          }
          break
        case '?':
          out += SINGLE
          this.pos++
          break
        case '[':
          out += this.charClass()
          break
        case '{':
          out += this.alternatives()
          break
        case '\\': {
          const next = this.src.charAt(this.pos + 1)
          if (next === '') throw new PatternError('trailing backslash at the end of the group')
          out += quoteRegExp(next)
          this.pos += 2
          break
        }
        default:
          out += quoteRegExp(c)
          this.pos++
      }
    }
  }

  private alternatives(): string {
    this.pos++ // {
    const options = [this.sequence(true)]
    while (this.src.charAt(this.pos) === ',') {
      this.pos++
      options.push(this.sequence(true))
    }
    this.pos++ // } (sequence(true) only returns at "," or "}", or throws at the end)
    return `(?:${options.join('|')})`
  }

  /** `[abc]`, `[a-z]`, `[!abc]`, `[!a-z]`, exactly as gobwas/glob lexes them. */
  private charClass(): string {
    this.pos++ // [
    let negated = false
    if (this.src.charAt(this.pos) === '!') {
      negated = true
      this.pos++
    }
    const open = negated ? '[^' : '['
    const lo = this.src.charAt(this.pos)
    if (lo !== '' && lo !== ']' && this.src.charAt(this.pos + 1) === '-') {
      const hi = this.src.charAt(this.pos + 2)
      if (hi === '' || hi === ']') throw new PatternError(`incomplete character range "[${negated ? '!' : ''}${lo}-"`)
      if (this.src.charAt(this.pos + 3) !== ']') {
        throw new PatternError('a glob character class is one range like [a-z] or a list like [abc], not both')
      }
      if (hi < lo) throw new PatternError(`invalid character range "${lo}-${hi}": "${hi}" sorts before "${lo}"`)
      this.pos += 4
      return `${open}${quoteClassChar(lo)}-${quoteClassChar(hi)}]`
    }
    let list = ''
    for (;;) {
      const c = this.src.charAt(this.pos)
      if (c === '') throw new PatternError('missing closing "]" of a character class')
      if (c === ']') break
      if (c === '\\') {
        const next = this.src.charAt(this.pos + 1)
        if (next === '') throw new PatternError('missing closing "]" of a character class')
        list += quoteClassChar(next)
        this.pos += 2
      } else {
        list += quoteClassChar(c)
        this.pos++
      }
    }
    this.pos++ // ]
    if (list === '') throw new PatternError('empty character class "[]"')
    return `${open}${list}]`
  }
}

function quoteClassChar(c: string): string {
  return /[\\\]^[-]/.test(c) ? `\\${c}` : c
}
