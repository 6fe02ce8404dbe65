/**
 * The template function table: Oathkeeper's `print` and `printIndex`, the Go `text/template`
 * builtins rule files use (`index`, `len`, `not`, `and`, `or`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`,
 * `urlquery`) and the sprig functions rule files use (`default`, `quote`, `upper`, `lower`, `trim`,
 * `join`, `toJson`, `b64enc`). Each entry carries its Go signature, which compile.ts uses for the
 * arity and argument-type checks Go performs when it calls a function.
 *
 * Implementations receive already type-checked arguments and throw {@link GoFault} for Go runtime
 * errors ("index out of range: 5").
 * @module
 */
import {
  GoFault,
  HeaderRef,
  SessionRef,
  UrlRef,
  ValuesRef,
  canonicalHeaderKey,
  compareGoStrings,
  formatValue,
  goQuote,
  goToLower,
  goToUpper,
  goTrimSpace,
  goTypeName,
  isGoMap,
  isNil,
  mapGet,
  queryEscape,
  sprintPrintable,
  strval,
  toGoJson,
  truth,
  utf8Length,
} from './values.js'

/** What the compiler knows about a value's Go type before rendering. */
export type StaticType =
  | 'session' // *authn.AuthenticationSession
  | 'matchctx' // authn.MatchContext
  | 'url' // *url.URL
  | 'header' // http.Header
  | 'values' // url.Values
  | 'string'
  | 'strings' // []string
  | 'bool'
  | 'int'
  | 'float' // float64
  | 'map' // map[string]interface{}
  | 'any' // interface{}: known only at render time

export const GO_TYPE_NAMES: Readonly<Record<StaticType, string>> = {
  session: '*authn.AuthenticationSession',
  matchctx: 'authn.MatchContext',
  url: '*url.URL',
  header: 'http.Header',
  values: 'url.Values',
  string: 'string',
  strings: '[]string',
  bool: 'bool',
  int: 'int',
  float: 'float64',
  map: 'map[string]interface {}',
  any: 'interface {}',
}

/**
 * Go parameter types, as far as they matter to text/template's argument handling:
 * `any` is `interface{}`, `value` is a builtin's `reflect.Value` (accepts anything but a nil literal),
 * `string` and `int` must be exactly that.
 */
export type ParamType = 'any' | 'value' | 'string' | 'int'

export interface FuncSpec {
  readonly params: readonly ParamType[]
  /** Element type of a trailing `...` parameter. */
  readonly variadic?: ParamType
  readonly result: StaticType
  /** `and` / `or` evaluate their arguments lazily; compile.ts handles them itself. */
  readonly lazy?: 'and' | 'or'
  readonly call: (...args: unknown[]) => unknown
}

// ---------------------------------------------------------------------------------------------
// Builtins (text/template funcs.go)

const EMPTY_STRINGS: readonly string[] = Object.freeze([])

function indexArg(k: unknown, len: number): number {
  if (typeof k !== 'bigint') {
    if (isNil(k)) throw new GoFault('cannot index slice/array with nil')
    throw new GoFault(`cannot index slice/array with type ${goTypeName(k)}`)
  }
  if (k < 0n || k > BigInt(len)) throw new GoFault(`index out of range: ${k}`)
  return Number(k)
}

function mapKey(k: unknown): string {
  if (typeof k === 'string') return k
  if (isNil(k)) throw new GoFault('value is nil; should be of type string')
  throw new GoFault(`value has type ${goTypeName(k)}; should be string`)
}

/** Go `index item i...`: slices and strings by int (a string yields a byte), maps by string key. */
function index(item: unknown, ...keys: unknown[]): unknown {
  if (isNil(item)) throw new GoFault('index of untyped nil')
  for (const k of keys) {
    if (isNil(item)) throw new GoFault('index of nil pointer')
    if (typeof item === 'string') {
      const bytes = Buffer.from(item, 'utf8')
      const x = indexArg(k, bytes.length)
      if (x === bytes.length) throw new GoFault(`index out of range: ${x}`)
      item = BigInt(bytes[x] as number)
    } else if (Array.isArray(item)) {
      const x = indexArg(k, item.length)
      if (x === item.length) throw new GoFault(`index out of range: ${x}`)
      item = item[x]
    } else if (item instanceof HeaderRef) {
      // http.Header keys are canonical: only the canonical spelling of a name finds it.
      const key = mapKey(k)
      const v = canonicalHeaderKey(key) === key ? item.map.get(key.toLowerCase()) : undefined
      item = v === undefined ? EMPTY_STRINGS : [v]
    } else if (item instanceof ValuesRef) {
      item = item.map.get(mapKey(k)) ?? EMPTY_STRINGS
    } else if (isGoMap(item)) {
      item = mapGet(item, mapKey(k))
    } else {
      throw new GoFault(`can't index item of type ${goTypeName(item)}`)
    }
  }
  return item
}

/** Go `len`: bytes of a string, elements of a slice or map. */
function length(item: unknown): bigint {
  if (isNil(item)) throw new GoFault('len of nil pointer')
  if (typeof item === 'string') return BigInt(utf8Length(item))
  if (Array.isArray(item)) return BigInt(item.length)
  if (item instanceof HeaderRef || item instanceof ValuesRef) return BigInt(item.map.size)
  if (isGoMap(item)) return BigInt(Object.keys(item).length)
  throw new GoFault(`len of type ${goTypeName(item)}`)
}

type BasicKind = 'bool' | 'int' | 'float' | 'string' | 'invalid'
function basicKind(v: unknown): BasicKind {
  switch (typeof v) {
    case 'boolean':
      return 'bool'
    case 'bigint':
      return 'int'
    case 'number':
      return 'float'
    case 'string':
      return 'string'
    default:
      return 'invalid'
  }
}

/** Pointer-like identity for the non-basic values Go can compare with `==`. */
function sameReference(a: unknown, b: unknown): boolean | undefined {
  if (a instanceof UrlRef && b instanceof UrlRef) return a.req === b.req
  if (a instanceof SessionRef && b instanceof SessionRef) return a.s === b.s
  return undefined
}

/** Go `eq arg1 arg2...`: true when arg1 equals any of the others; basic kinds only. */
function eq(a: unknown, ...rest: unknown[]): boolean {
  if (rest.length === 0) throw new GoFault('missing argument for comparison')
  const k1 = basicKind(a)
  for (const b of rest) {
    const k2 = basicKind(b)
    let t = false
    if (k1 !== k2) {
      if (!isNil(a) && !isNil(b)) throw new GoFault(`incompatible types for comparison: ${goTypeName(a)} and ${goTypeName(b)}`)
    } else if (k1 !== 'invalid') {
      t = a === b
    } else if (isNil(a) || isNil(b)) {
      t = isNil(a) && isNil(b)
    } else {
      const same = sameReference(a, b)
      if (same === undefined) {
        if (goTypeName(a) === goTypeName(b)) throw new GoFault(`non-comparable type ${goTypeName(a)}`)
        throw new GoFault(`non-comparable types ${goTypeName(a)} and ${goTypeName(b)}`)
      }
      t = same
    }
    if (t) return true
  }
  return false
}

/** Go `lt`: ints, floats and strings (byte order) of the same kind only. */
function lt(a: unknown, b: unknown): boolean {
  const k1 = basicKind(a)
  const k2 = basicKind(b)
  if (k1 === 'invalid' || k2 === 'invalid') throw new GoFault('invalid type for comparison')
  if (k1 !== k2) throw new GoFault(`incompatible types for comparison: ${goTypeName(a)} and ${goTypeName(b)}`)
  switch (k1) {
    case 'bool':
      throw new GoFault('invalid type for comparison')
    case 'string':
      return compareGoStrings(a as string, b as string) < 0
    default:
      return (a as number | bigint) < (b as number | bigint)
  }
}
function le(a: unknown, b: unknown): boolean {
  return lt(a, b) || eq(a, b)
}

// ---------------------------------------------------------------------------------------------
// Oathkeeper x/template.go

/** Oathkeeper's `print`: one argument, "" for nil, otherwise `fmt.Sprintf("%v", i)`. */
function print(v: unknown): string {
  if (isNil(v)) return ''
  if (typeof v === 'string') return v
  return formatValue(v)
}

/** Oathkeeper's `printIndex list i`: `%v` of a slice element, "" for nil / non-slices / i ≥ len. */
function printIndex(list: unknown, i: unknown): string {
  if (isNil(list) || !Array.isArray(list)) return ''
  const x = Number(i as bigint)
  if (x < 0) throw new GoFault('reflect: slice index out of range')
  if (x >= list.length) return ''
  return formatValue(list[x])
}

// ---------------------------------------------------------------------------------------------
// sprig v3

/** sprig `default DEFAULT VALUE`: VALUE unless it is empty (nil, "", 0, false, empty list or map). */
function dfault(d: unknown, ...given: unknown[]): unknown {
  if (given.length === 0 || !truth(given[0])) return d
  return given[0]
}

/** sprig `strslice`: the string form of each non-nil element; a non-list becomes one element. */
function strslice(v: unknown): string[] {
  if (isNil(v)) return []
  if (Array.isArray(v)) {
    const out: string[] = []
    for (const x of v) if (!isNil(x)) out.push(strval(x))
    return out
  }
  return [strval(v)]
}

function quote(...args: unknown[]): string {
  let out = ''
  for (const a of args) {
    if (isNil(a)) continue
    out += (out === '' ? '' : ' ') + goQuote(strval(a))
  }
  return out
}

/** Go's `urlquery`: one string as-is, otherwise `fmt.Sprint` of the printable values; then QueryEscape. */
function urlquery(...args: unknown[]): string {
  const s = args.length === 1 && typeof args[0] === 'string' ? args[0] : sprintPrintable(args)
  return queryEscape(s)
}

export const FUNCTIONS: Readonly<Record<string, FuncSpec>> = {
  print: { params: ['any'], result: 'string', call: print },
  printIndex: { params: ['any', 'int'], result: 'string', call: printIndex },

  index: { params: ['value'], variadic: 'value', result: 'any', call: index },
  len: { params: ['value'], result: 'int', call: length },
  not: { params: ['value'], result: 'bool', call: (v) => !truth(v) },
  and: { params: ['value'], variadic: 'value', result: 'any', lazy: 'and', call: () => undefined },
  or: { params: ['value'], variadic: 'value', result: 'any', lazy: 'or', call: () => undefined },
  eq: { params: ['value'], variadic: 'value', result: 'bool', call: eq },
  ne: { params: ['value', 'value'], result: 'bool', call: (a, b) => !eq(a, b) },
  lt: { params: ['value', 'value'], result: 'bool', call: lt },
  le: { params: ['value', 'value'], result: 'bool', call: le },
  gt: { params: ['value', 'value'], result: 'bool', call: (a, b) => !le(a, b) },
  ge: { params: ['value', 'value'], result: 'bool', call: (a, b) => !lt(a, b) },
  urlquery: { params: [], variadic: 'any', result: 'string', call: urlquery },

  default: { params: ['any'], variadic: 'any', result: 'any', call: dfault },
  quote: { params: [], variadic: 'any', result: 'string', call: quote },
  upper: { params: ['string'], result: 'string', call: (s) => goToUpper(s as string) },
  lower: { params: ['string'], result: 'string', call: (s) => goToLower(s as string) },
  trim: { params: ['string'], result: 'string', call: (s) => goTrimSpace(s as string) },
  join: { params: ['string', 'any'], result: 'string', call: (sep, v) => strslice(v).join(sep as string) },
  toJson: { params: ['any'], result: 'string', call: toGoJson },
  b64enc: { params: ['string'], result: 'string', call: (s) => Buffer.from(s as string, 'utf8').toString('base64') },
}

/** Go builtins Portcullis does not implement (for a precise "unsupported" message). */
const GO_BUILTINS = 'call html js printf println slice'
/** sprig v3.3.0 `TxtFuncMap` names Portcullis does not implement. */
const SPRIG = `abbrev abbrevboth add add1 add1f addf adler32sum ago all any append atoi b32dec b32enc b64dec
  base bcrypt biggest buildCustomCert camelcase cat ceil chunk clean coalesce compact concat contains date
  dateInZone dateModify date_in_zone date_modify decryptAES deepCopy deepEqual derivePassword dict dig dir
  div divf duration durationRound empty encryptAES env expandenv ext fail first float64 floor fromJson
  genCA genCAWithKey genPrivateKey genSelfSignedCert genSelfSignedCertWithKey genSignedCert
  genSignedCertWithKey get getHostByName has hasKey hasPrefix hasSuffix hello htmlDate htmlDateInZone
  htpasswd indent initial initials int int64 isAbs kebabcase keys kindIs kindOf last list max maxf merge
  mergeOverwrite min minf mod mul mulf mustAppend mustChunk mustCompact mustDateModify mustDeepCopy
  mustFirst mustFromJson mustHas mustInitial mustLast mustMerge mustMergeOverwrite mustPrepend
  mustRegexFind mustRegexFindAll mustRegexMatch mustRegexReplaceAll mustRegexReplaceAllLiteral
  mustRegexSplit mustRest mustReverse mustSlice mustToDate mustToJson mustToPrettyJson mustToRawJson
  mustUniq mustWithout must_date_modify nindent nospace now omit osBase osClean osDir osExt osIsAbs pick
  pluck plural prepend randAlpha randAlphaNum randAscii randBytes randInt randNumeric regexFind
  regexFindAll regexMatch regexQuoteMeta regexReplaceAll regexReplaceAllLiteral regexSplit repeat replace
  rest reverse round semver semverCompare seq set sha1sum sha256sum sha512sum shuffle slice snakecase
  sortAlpha split splitList splitn squote sub subf substr swapcase ternary title toDate toDecimal
  toPrettyJson toRawJson toString toStrings trimAll trimPrefix trimSuffix trimall trunc tuple typeIs
  typeIsLike typeOf uniq unixEpoch unset until untilStep untitle urlJoin urlParse uuidv4 values without
  wrap wrapWith`

const KNOWN_ELSEWHERE: ReadonlySet<string> = new Set(`${GO_BUILTINS} ${SPRIG}`.split(/\s+/))

/** Why a function name cannot be used, for the compile error. */
export function unknownFunctionReason(name: string): string {
  if (KNOWN_ELSEWHERE.has(name)) return `function "${name}" is not implemented by Portcullis`
  return `function "${name}" is not defined`
}
