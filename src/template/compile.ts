/**
 * Compiles a parsed template into closures over the session (no `eval`, no `new Function`).
 *
 * All name resolution and every check Go's `text/template` would make from the template text alone
 * happen here, once, at rule load: unknown functions, unknown fields of the fixed Oathkeeper structs
 * (`.Subjekt`), wrong argument counts, literals of the wrong type (`upper 1`), arguments to things
 * that are not methods. What only the data can decide (a value under `.Extra` of the wrong type, an
 * index out of range) is checked at render time and reported as a `PipelineError`, like the Go
 * execution error Oathkeeper would return.
 *
 * Field chains on the fixed structs compile to direct property reads (`.Subject` is `s => s.subject`),
 * literal-only calls are folded, plain text is a constant, and `print` of a string is the string:
 * the render path never looks anything up by name except keys under `.Extra` and header names.
 * @module
 */
import type { MatchContext, RequestView, Session } from '../pipeline/types.js'
import { type ErrorSink, runtimeError } from './errors.js'
import { FUNCTIONS, GO_TYPE_NAMES, type ParamType, type StaticType, unknownFunctionReason } from './functions.js'
import type { Command, Node, Operand, Pipe } from './parse.js'
import {
  GoFault,
  HeaderRef,
  MatchCtxRef,
  SessionRef,
  UrlRef,
  ValuesRef,
  canonicalHeaderKey,
  goTypeName,
  isGoMap,
  isNil,
  mapGet,
  parseQuery,
  printAction,
  truth,
  urlHostname,
  urlPath,
  urlPort,
  urlRawPath,
  urlRequestURI,
  urlString,
} from './values.js'

const EMPTY: readonly string[] = Object.freeze([])

type Ev = (s: Session) => unknown
type Render = (s: Session) => string

/** A compiled expression. */
interface Expr {
  readonly type: StaticType
  readonly ev: Ev
  /** Set when the value is known at compile time (a literal, or a call folded from literals). */
  readonly konst: { readonly value: unknown } | undefined
  /** A pipeline or function result: Go has taken it out of its interface, so nil is an "invalid value". */
  readonly computed: boolean
  /** Whether evaluating it can throw a GoFault (decides whether the renderer needs a try/catch). */
  readonly mayFault: boolean
}

/** The deepest `if` nesting (counting `else if`) accepted. */
export const MAX_IF_DEPTH = 100

// ---------------------------------------------------------------------------------------------
// Members of the fixed Oathkeeper types

interface Method<R> {
  readonly params: readonly ParamType[]
  call(raw: R, ...args: unknown[]): unknown
  /** Specialisation for literal arguments (e.g. lower-casing a header name once). */
  bind?(...args: unknown[]): (raw: R) => unknown
}
interface Member<R> {
  readonly type: StaticType
  get?(raw: R): unknown
  readonly method?: Method<R>
}

const noArgs = <R>(call: (raw: R) => unknown): Method<R> => ({ params: [], call })

/**
 * `raw` representations: session → Session, matchctx → MatchContext, url → RequestView,
 * header → ReadonlyMap (lower-case names), values → ValuesRef.
 */
const MEMBERS: Partial<Record<StaticType, Readonly<Record<string, Member<never>>>>> = {
  session: {
    Subject: { type: 'string', get: (s: Session) => s.subject },
    Extra: { type: 'map', get: (s: Session) => s.extra },
    Header: { type: 'header', get: (s: Session) => s.header },
    MatchContext: { type: 'matchctx', get: (s: Session) => s.matchContext },
  } satisfies Record<string, Member<Session>>,
  matchctx: {
    RegexpCaptureGroups: { type: 'strings', get: (mc: MatchContext) => mc.regexpCaptureGroups },
    URL: { type: 'url', get: (mc: MatchContext) => mc.request },
    Method: { type: 'string', get: (mc: MatchContext) => mc.request.method },
    Header: { type: 'header', get: (mc: MatchContext) => mc.request.headers },
  } satisfies Record<string, Member<MatchContext>>,
  url: {
    Scheme: { type: 'string', get: (r: RequestView) => r.scheme },
    Host: { type: 'string', get: (r: RequestView) => r.host },
    Path: { type: 'string', get: urlPath },
    RawQuery: { type: 'string', get: (r: RequestView) => r.query },
    RawPath: { type: 'string', get: urlRawPath },
    // Envoy never sends these parts; Go's fields are the zero values.
    Opaque: { type: 'string', get: () => '' },
    Fragment: { type: 'string', get: () => '' },
    RawFragment: { type: 'string', get: () => '' },
    ForceQuery: { type: 'bool', get: () => false },
    OmitHost: { type: 'bool', get: () => false },
    IsAbs: { type: 'bool', method: noArgs((r: RequestView) => r.scheme !== '') },
    Redacted: { type: 'string', method: noArgs(urlString) },
    String: { type: 'string', method: noArgs(urlString) },
    EscapedPath: { type: 'string', method: noArgs((r: RequestView) => r.path) },
    Hostname: { type: 'string', method: noArgs(urlHostname) },
    Port: { type: 'string', method: noArgs(urlPort) },
    RequestURI: { type: 'string', method: noArgs(urlRequestURI) },
    Query: { type: 'values', method: noArgs((r: RequestView) => parseQuery(r.query)) },
  } satisfies Record<string, Member<RequestView>>,
  header: {
    Get: {
      type: 'string',
      method: {
        params: ['string'],
        call: (h: ReadonlyMap<string, string>, name: unknown) => h.get((name as string).toLowerCase()) ?? '',
        bind: (name: unknown) => {
          const key = (name as string).toLowerCase()
          return (h: ReadonlyMap<string, string>) => h.get(key) ?? ''
        },
      },
    },
  } satisfies Record<string, Member<ReadonlyMap<string, string>>>,
  values: {
    Get: {
      type: 'string',
      method: { params: ['string'], call: (v: ValuesRef, key: unknown) => v.map.get(key as string)?.[0] ?? '' },
    },
  } satisfies Record<string, Member<ValuesRef>>,
}

/** Members that exist in Go but are deliberately not offered. */
const UNSUPPORTED_MEMBERS: Partial<Record<StaticType, ReadonlySet<string>>> = {
  session: new Set(['SetHeader', 'Copy']),
  url: new Set(
    'User EscapedFragment JoinPath Parse ResolveReference MarshalBinary UnmarshalBinary AppendBinary'.split(
      ' ',
    ),
  ),
  header: new Set(['Add', 'Set', 'Del', 'Values', 'Write', 'WriteSubset', 'Clone']),
  values: new Set(['Set', 'Add', 'Del', 'Has', 'Encode']),
}

function box(type: StaticType, raw: Ev): Ev {
  switch (type) {
    case 'session':
      return (s) => new SessionRef(raw(s) as Session)
    case 'matchctx':
      return (s) => new MatchCtxRef(raw(s) as MatchContext)
    case 'url':
      return (s) => new UrlRef(raw(s) as RequestView)
    case 'header':
      return (s) => new HeaderRef(raw(s) as ReadonlyMap<string, string>)
    default:
      return raw
  }
}

function unbox(type: StaticType, ev: Ev): Ev {
  switch (type) {
    case 'session':
      return (s) => (ev(s) as SessionRef).s
    case 'matchctx':
      return (s) => (ev(s) as MatchCtxRef).mc
    case 'url':
      return (s) => (ev(s) as UrlRef).req
    case 'header':
      return (s) => (ev(s) as HeaderRef).map
    default:
      return ev
  }
}

/** Records the position of the innermost node a GoFault passes through. */
function guard(pos: number, ev: Ev): Ev {
  return (s) => {
    try {
      return ev(s)
    } catch (e) {
      if (e instanceof GoFault && e.pos === undefined) e.pos = pos
      throw e
    }
  }
}

function konst(type: StaticType, value: unknown): Expr {
  return { type, ev: () => value, konst: { value }, computed: false, mayFault: false }
}

function describeOperand(op: Operand): string {
  switch (op.t) {
    case 'string':
      return JSON.stringify(op.value)
    case 'number':
      return op.num.text
    case 'bool':
      return String(op.value)
    case 'nil':
      return 'nil'
    case 'dot':
      return '.'
    case 'field':
      return `.${op.fields.join('.')}`
    case 'ident':
      return op.name
    case 'chain':
      return `(…).${op.fields.join('.')}`
    case 'pipe':
      return '(…)'
  }
}

/** Where a field chain starts. `raw` undefined means the session itself. */
interface ChainBase {
  readonly type: StaticType
  readonly raw: Ev | undefined
  readonly computed: boolean
  readonly mayFault: boolean
}
const SESSION_BASE: ChainBase = { type: 'session', raw: undefined, computed: false, mayFault: false }

export class Compiler {
  private ifDepth = 0

  constructor(private readonly err: ErrorSink) {}

  // -------------------------------------------------------------------------------------------
  // Nodes

  /** Compiles a node list to a renderer. */
  nodes(nodes: readonly Node[]): { render: Render; constant: string | undefined; mayFault: boolean } {
    const parts: (string | Render)[] = []
    let mayFault = false
    const pushText = (t: string): void => {
      const last = parts.length - 1
      if (last >= 0 && typeof parts[last] === 'string') parts[last] += t
      else if (t !== '') parts.push(t)
    }
    for (const node of nodes) {
      switch (node.t) {
        case 'text':
          pushText(node.text)
          break
        case 'action': {
          const e = this.pipe(node.pipe)
          if (e.konst !== undefined) {
            pushText(printAction(e.konst.value))
            break
          }
          if (e.type === 'string') {
            mayFault ||= e.mayFault
            parts.push(e.ev as Render)
          } else {
            // Printing a dynamic value can fault too (the nesting limit).
            mayFault = true
            const ev = e.ev
            parts.push(guard(node.pos, (s) => printAction(ev(s))) as Render)
          }
          break
        }
        case 'if': {
          if (++this.ifDepth > MAX_IF_DEPTH) this.err.unsupported(`more than ${MAX_IF_DEPTH} nested {{if}} actions`, node.pos)
          const cond = this.pipe(node.pipe)
          const thenPart = this.nodes(node.then)
          const elsePart = this.nodes(node.else ?? [])
          this.ifDepth--
          if (cond.konst !== undefined) {
            const taken = truth(cond.konst.value) ? thenPart : elsePart
            if (taken.constant !== undefined) {
              pushText(taken.constant)
              break
            }
            parts.push(taken.render)
            mayFault ||= taken.mayFault
            break
          }
          mayFault ||= cond.mayFault || thenPart.mayFault || elsePart.mayFault
          const test = truthTest(cond)
          const t = thenPart.render
          const f = elsePart.render
          parts.push((s) => (test(s) ? t(s) : f(s)))
          break
        }
      }
    }
    return { ...join(parts), mayFault }
  }

  // -------------------------------------------------------------------------------------------
  // Pipelines and commands

  pipe(pipe: Pipe): Expr {
    let cur: Expr | undefined
    for (const cmd of pipe.cmds) cur = this.command(cmd, cur)
    // The parser guarantees at least one command.
    return { ...(cur as Expr), computed: true }
  }

  private command(cmd: Command, final: Expr | undefined): Expr {
    const [head, ...rest] = cmd.args as [Operand, ...Operand[]]
    switch (head.t) {
      case 'field':
        return this.chain(SESSION_BASE, head.fields, head.pos, rest, final)
      case 'chain':
        return this.chain(this.chainBase(head.base), head.fields, head.pos, rest, final)
      case 'ident':
        return this.call(head.name, head.pos, rest, final)
      case 'nil':
        return this.err.invalid('nil is not a command', head.pos)
    }
    if (rest.length > 0 || final !== undefined) {
      this.err.invalid(`can't give argument to non-function ${describeOperand(head)}`, head.pos)
    }
    return this.operand(head)
  }

  /** An operand used as a value (a function argument, or a command without arguments). */
  private operand(op: Operand): Expr {
    switch (op.t) {
      case 'dot':
        return { type: 'session', ev: (s) => new SessionRef(s), konst: undefined, computed: false, mayFault: false }
      case 'field':
        return this.chain(SESSION_BASE, op.fields, op.pos, [], undefined)
      case 'chain':
        return this.chain(this.chainBase(op.base), op.fields, op.pos, [], undefined)
      case 'pipe':
        return this.pipe(op.pipe)
      case 'ident':
        return this.call(op.name, op.pos, [], undefined)
      case 'string':
        return konst('string', op.value)
      case 'number':
        return op.num.floatSyntax || op.num.int === undefined ? konst('float', op.num.float) : konst('int', op.num.int)
      case 'bool':
        return konst('bool', op.value)
      case 'nil':
        return this.err.invalid('nil is not a command', op.pos)
    }
  }

  private chainBase(op: Operand): ChainBase {
    const e = this.operand(op)
    return { type: e.type, raw: unbox(e.type, e.ev), computed: op.t === 'pipe' || op.t === 'ident', mayFault: e.mayFault }
  }

  // -------------------------------------------------------------------------------------------
  // Field chains and methods

  private chain(
    base: ChainBase,
    fields: readonly string[],
    pos: number,
    args: readonly Operand[],
    final: Expr | undefined,
  ): Expr {
    let type = base.type
    let raw = base.raw
    let mayFault = base.mayFault
    // Only a computed (dug-out) nil is Go's invalid value, on which field access yields nil again.
    const nilIsInvalid = base.computed
    const then = (f: (x: never) => unknown): void => {
      const prev = raw
      const g = f as (x: unknown) => unknown
      raw = prev === undefined ? (g as Ev) : (s) => g(prev(s))
    }
    for (let k = 0; k < fields.length; k++) {
      const name = fields[k] as string
      const last = k === fields.length - 1
      const hasArgs = last && (args.length > 0 || final !== undefined)
      if (type === 'map' || type === 'any') {
        // Everything from here on is a map lookup decided at render time.
        const names = fields.slice(k)
        if (args.length > 0 || final !== undefined) {
          this.err.invalid(`${fields[fields.length - 1] as string} is not a method but has arguments`, pos)
        }
        const prev = raw as Ev
        if (type === 'map' && names.length === 1 && !nilIsInvalid) {
          then((m: Record<string, unknown>) => mapGet(m, name))
        } else {
          // Go: a nil map element is a nil interface, and a field of it is an error; but a nil
          // pipeline result is an invalid value, and every field of it is invalid again.
          const invalidOk = nilIsInvalid
          raw = guard(pos, (s) => {
            let v = prev(s)
            if (invalidOk && isNil(v)) return undefined
            for (const n of names) v = dynamicField(v, n)
            return v
          })
          mayFault = true
        }
        type = 'any'
        break
      }
      const table = MEMBERS[type]
      if (table === undefined) this.err.invalid(`can't evaluate field ${name} in type ${GO_TYPE_NAMES[type]}`, pos)
      const member = Object.hasOwn(table, name) ? (table[name] as Member<unknown>) : undefined
      if (member === undefined) {
        if (UNSUPPORTED_MEMBERS[type]?.has(name)) this.err.unsupported(`${GO_TYPE_NAMES[type]}.${name}`, pos)
        if (type === 'header') {
          // A key of the map itself (a []string). Go's http.Header keys are canonical, so
          // `.Authorization` finds the header and `.authorization` does not.
          if (hasArgs) this.err.invalid(`${name} is not a method but has arguments`, pos)
          const canonical = canonicalHeaderKey(name) === name
          const key = name.toLowerCase()
          then((h: ReadonlyMap<string, string>) => {
            const v = canonical ? h.get(key) : undefined
            return v === undefined ? EMPTY : [v]
          })
          type = 'strings'
          continue
        }
        if (type === 'values') {
          if (hasArgs) this.err.invalid(`${name} is not a method but has arguments`, pos)
          then((v: ValuesRef) => v.map.get(name) ?? EMPTY)
          type = 'strings'
          continue
        }
        const known = Object.keys(table).join(', ')
        this.err.invalid(`unknown field ${JSON.stringify(name)} in type ${GO_TYPE_NAMES[type]} (known: ${known})`, pos)
      }
      const { get, method } = member
      if (get !== undefined) {
        if (hasArgs) this.err.invalid(`${name} has arguments but cannot be invoked as function`, pos)
        then(get)
      } else if (method !== undefined) {
        const argExprs = this.args(name, method.params, undefined, last ? args : [], last ? final : undefined, pos)
        const prev = raw
        const self: Ev = prev ?? ((s) => s)
        if (argExprs.length === 0) {
          then((x: unknown) => method.call(x))
        } else if (method.bind !== undefined && argExprs.every((a) => a.konst !== undefined)) {
          then(method.bind(...argExprs.map((a) => (a.konst as { value: unknown }).value)))
        } else if (argExprs.length === 1) {
          const a0 = (argExprs[0] as Expr).ev
          raw = (s) => method.call(self(s), a0(s))
        } else {
          const evs = argExprs.map((a) => a.ev)
          raw = (s) => method.call(self(s), ...evs.map((e) => e(s)))
        }
        if (argExprs.some((a) => a.mayFault)) {
          mayFault = true
          raw = guard(pos, raw as Ev)
        }
      }
      type = member.type
    }
    return { type, ev: box(type, raw ?? ((s) => s)), konst: undefined, computed: false, mayFault }
  }

  // -------------------------------------------------------------------------------------------
  // Functions

  private call(name: string, pos: number, argOps: readonly Operand[], final: Expr | undefined): Expr {
    const spec = Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined
    if (spec === undefined) return this.err.unsupported(unknownFunctionReason(name), pos)
    const args = this.args(name, spec.params, spec.variadic, argOps, final, pos)
    const mayFault = true
    if (spec.lazy !== undefined) {
      const isOr = spec.lazy === 'or'
      const fin = final === undefined ? undefined : (args[args.length - 1] as Expr).ev
      const explicit = (final === undefined ? args : args.slice(0, -1)).map((a) => a.ev)
      const ev: Ev = (s) => {
        // The previous pipeline stage has already run when `and`/`or` start.
        const f = fin === undefined ? undefined : fin(s)
        let v: unknown
        for (const a of explicit) {
          v = a(s)
          if (truth(v) === isOr) return v
        }
        return fin === undefined ? v : f
      }
      return { type: 'any', ev: guard(pos, ev), konst: undefined, computed: true, mayFault }
    }
    // Oathkeeper's print of a string is the string itself.
    if (name === 'print' && (args[0] as Expr).type === 'string') return { ...(args[0] as Expr), computed: true }
    if (args.every((a) => a.konst !== undefined)) {
      try {
        const value = spec.call(...args.map((a) => (a.konst as { value: unknown }).value))
        return { ...konst(spec.result, value), computed: true }
      } catch (e) {
        // A call that always fails still fails only if it runs: leave it to render time.
        if (!(e instanceof GoFault)) throw e
      }
    }
    const f = spec.call
    let ev: Ev
    switch (args.length) {
      case 0:
        ev = () => f()
        break
      case 1: {
        const a = (args[0] as Expr).ev
        ev = (s) => f(a(s))
        break
      }
      case 2: {
        const a = (args[0] as Expr).ev
        const b = (args[1] as Expr).ev
        ev = final === undefined ? (s) => f(a(s), b(s)) : (s) => { const y = b(s); return f(a(s), y) }
        break
      }
      default: {
        const evs = args.map((x) => x.ev)
        ev = (s) => f(...evs.map((e) => e(s)))
      }
    }
    return { type: spec.result, ev: guard(pos, ev), konst: undefined, computed: true, mayFault }
  }

  /** Arity and argument types of a call, as text/template's evalCall checks them. */
  private args(
    name: string,
    params: readonly ParamType[],
    variadic: ParamType | undefined,
    argOps: readonly Operand[],
    final: Expr | undefined,
    pos: number,
  ): Expr[] {
    const n = argOps.length + (final === undefined ? 0 : 1)
    const fixed = params.length
    if (variadic === undefined ? n !== fixed : n < fixed) {
      const want = `${variadic === undefined ? '' : 'at least '}${fixed}`
      this.err.invalid(`wrong number of args for ${name}: want ${want} got ${n}`, pos)
    }
    const typeAt = (i: number): ParamType => (i < fixed ? (params[i] as ParamType) : (variadic as ParamType))
    const out = argOps.map((op, i) => this.arg(op, typeAt(i)))
    if (final !== undefined) out.push(this.coerce(final, typeAt(n - 1), pos))
    return out
  }

  /** One argument written in the call: literals are checked against the parameter type here. */
  private arg(op: Operand, type: ParamType): Expr {
    const found = describeOperand(op)
    switch (op.t) {
      case 'string':
        if (type === 'int') this.err.invalid(`expected integer; found ${found}`, op.pos)
        return konst('string', op.value)
      case 'number':
        if (type === 'string') this.err.invalid(`expected string; found ${found}`, op.pos)
        if (type === 'int') {
          if (op.num.int === undefined) this.err.invalid(`expected integer; found ${found}`, op.pos)
          return konst('int', op.num.int)
        }
        return this.operand(op)
      case 'bool':
        if (type === 'string' || type === 'int') {
          this.err.invalid(`expected ${type === 'int' ? 'integer' : 'string'}; found ${found}`, op.pos)
        }
        return konst('bool', op.value)
      case 'nil':
        if (type === 'string' || type === 'int') this.err.invalid(`cannot assign nil to ${type}`, op.pos)
        return konst('any', undefined)
      default:
        return this.coerce(this.operand(op), type, op.pos)
    }
  }

  /** text/template's validateType: a computed value passed to a parameter of `type`. */
  private coerce(e: Expr, type: ParamType, pos: number): Expr {
    if (type === 'any' || type === 'value') return e
    const want: StaticType = type === 'string' ? 'string' : 'int'
    if (e.type === want) return e
    if (e.type !== 'any') {
      this.err.invalid(`wrong type for value; expected ${want}; got ${GO_TYPE_NAMES[e.type]}`, pos)
    }
    const jsType = type === 'string' ? 'string' : 'bigint'
    const ev = e.ev
    const checked: Ev = (s) => {
      const v = ev(s)
      if (typeof v === jsType) return v
      throw new GoFault(
        isNil(v) ? `invalid value; expected ${want}` : `wrong type for value; expected ${want}; got ${goTypeName(v)}`,
      )
    }
    return { type: want, ev: guard(pos, checked), konst: undefined, computed: e.computed, mayFault: true }
  }
}

/** `.name` on a value whose type is known only at render time (under `.Extra`, or a function result). */
function dynamicField(v: unknown, name: string): unknown {
  if (isNil(v)) throw new GoFault(`nil pointer evaluating interface {}.${name}`)
  if (isGoMap(v)) return mapGet(v, name)
  throw new GoFault(`can't evaluate field ${name} in type ${goTypeName(v)}`)
}

function truthTest(e: Expr): (s: Session) => boolean {
  const ev = e.ev
  switch (e.type) {
    case 'string':
      return (s) => ev(s) !== ''
    case 'bool':
      return (s) => ev(s) === true
    default:
      return (s) => truth(ev(s))
  }
}

/** Joins rendered parts; a list of text only is a constant. */
function join(parts: readonly (string | Render)[]): { render: Render; constant: string | undefined } {
  if (parts.length === 0) return { render: () => '', constant: '' }
  if (parts.length === 1) {
    const p = parts[0] as string | Render
    if (typeof p === 'string') return { render: () => p, constant: p }
    return { render: p, constant: undefined }
  }
  if (parts.length === 2) {
    const [a, b] = parts as [string | Render, string | Render]
    if (typeof a === 'string') return { render: (s) => a + (b as Render)(s), constant: undefined }
    if (typeof b === 'string') return { render: (s) => a(s) + b, constant: undefined }
    return { render: (s) => a(s) + b(s), constant: undefined }
  }
  const fns: Render[] = parts.map((p) => (typeof p === 'string' ? () => p : p))
  return {
    render: (s) => {
      let out = ''
      for (const f of fns) out += f(s)
      return out
    },
    constant: undefined,
  }
}

/** Wraps a renderer so Go runtime faults surface as PipelineError with the template position. */
export function withRuntimeErrors(render: Render, err: ErrorSink, fallbackPos: number): Render {
  return (s) => {
    try {
      return render(s)
    } catch (e) {
      if (e instanceof GoFault) throw runtimeError(err.position(e.pos ?? fallbackPos), e.message)
      throw e
    }
  }
}
