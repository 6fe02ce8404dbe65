/**
 * Parser for the supported Go `text/template` subset: text, `{{ pipeline }}` actions and
 * `{{ if }} … {{ else if }} … {{ else }} … {{ end }}`. The grammar and the error cases follow Go's
 * `text/template/parse/parse.go`; constructs Go accepts but Portcullis does not implement (range,
 * with, define, template, block, variables, declarations, character constants, non-decimal numbers)
 * are rejected here as "unsupported template syntax".
 *
 * Name resolution (functions, fields) and typing happen later, in compile.ts.
 * @module
 */
import type { ErrorSink } from './errors.js'
import type { Token, TokenKind } from './lexer.js'

export type Node = TextNode | ActionNode | IfNode

export interface TextNode {
  readonly t: 'text'
  readonly pos: number
  readonly text: string
}
export interface ActionNode {
  readonly t: 'action'
  readonly pos: number
  readonly pipe: Pipe
}
export interface IfNode {
  readonly t: 'if'
  readonly pos: number
  readonly pipe: Pipe
  readonly then: readonly Node[]
  /** `{{ else if }}` is an `else` list holding a single nested IfNode, as in Go. */
  readonly else: readonly Node[] | undefined
}

export interface Pipe {
  readonly pos: number
  readonly cmds: readonly Command[]
}
export interface Command {
  readonly pos: number
  readonly args: readonly Operand[]
}

export type Operand =
  /** `.` or `$`: the template data (the session). */
  | { readonly t: 'dot'; readonly pos: number }
  /** `.A.B` or `$.A.B`: a field chain on the template data. */
  | { readonly t: 'field'; readonly pos: number; readonly fields: readonly string[] }
  /** A function name. */
  | { readonly t: 'ident'; readonly pos: number; readonly name: string }
  /** `(pipeline).A.B` or `ident.A`: a field chain on a computed value. */
  | { readonly t: 'chain'; readonly pos: number; readonly base: Operand; readonly fields: readonly string[] }
  /** `(pipeline)`. */
  | { readonly t: 'pipe'; readonly pos: number; readonly pipe: Pipe }
  | { readonly t: 'string'; readonly pos: number; readonly value: string }
  | { readonly t: 'number'; readonly pos: number; readonly num: NumberLiteral }
  | { readonly t: 'bool'; readonly pos: number; readonly value: boolean }
  | { readonly t: 'nil'; readonly pos: number }

/** A decimal number literal, classified as Go's parser does. */
export interface NumberLiteral {
  readonly text: string
  /** The value as an int, when the literal denotes an integer that fits int64 (`1`, `1.0`, `1e3`). */
  readonly int: bigint | undefined
  readonly float: number
  /** Written as a float (`.`, `e`): as an untyped constant it becomes a float64, otherwise an int. */
  readonly floatSyntax: boolean
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const DECIMAL_INT = /^[+-]?(?:0|[1-9][0-9]*)$/
const DECIMAL_FLOAT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/

/** The deepest parenthesis nesting accepted (Go allows 10000; rule files need a handful). */
export const MAX_PAREN_DEPTH = 100

function parseNumber(text: string, pos: number, err: ErrorSink): NumberLiteral {
  if (/^[+-]?0[0-9_]+$/.test(text)) err.unsupported(`octal number literal ${text}`, pos)
  if (DECIMAL_INT.test(text)) {
    const int = BigInt(text)
    if (int < INT64_MIN || int > INT64_MAX) err.unsupported(`number ${text} overflows int`, pos)
    return { text, int, float: Number(text), floatSyntax: false }
  }
  if (DECIMAL_FLOAT.test(text)) {
    const float = Number(text)
    if (!Number.isFinite(float)) err.invalid(`number ${text} is out of range`, pos)
    let int: bigint | undefined
    if (Number.isInteger(float) && Math.abs(float) <= Number.MAX_SAFE_INTEGER) int = BigInt(float)
    return { text, int, float, floatSyntax: true }
  }
  if (/^[+-]?(?:0[xXoObB]|0[0-9])|_|i$|[pP]/.test(text) && /[0-9]/.test(text)) {
    err.unsupported(`number literal ${text} (only decimal integers and floats are supported)`, pos)
  }
  return err.invalid(`illegal number syntax: ${JSON.stringify(text)}`, pos)
}

function describe(tok: Token): string {
  switch (tok.kind) {
    case 'eof':
      return 'EOF'
    case 'right':
      return '"}}"'
    case 'left':
      return '"{{"'
    case 'space':
      return 'space'
    case 'string':
      return 'quoted string'
    case 'field':
      return `".${tok.value}"`
    case 'dot':
      return '"."'
    case 'pipe':
      return '"|"'
    case 'lparen':
      return '"("'
    case 'rparen':
      return '")"'
    case 'declare':
      return '":="'
    case 'assign':
      return '"="'
    case 'keyword':
      return `<${tok.value}>`
    default:
      return JSON.stringify(tok.value)
  }
}

/** Parses the token list of one template into a node list. */
export function parse(tokens: readonly Token[], err: ErrorSink): Node[] {
  let i = 0
  let parenDepth = 0
  const peek = (): Token => tokens[i] as Token
  const next = (): Token => tokens[i++] as Token
  const peekNonSpace = (): Token => {
    while (peek().kind === 'space') i++
    return peek()
  }
  const nextNonSpace = (): Token => {
    peekNonSpace()
    return next()
  }
  const expect = (kind: TokenKind, context: string): Token => {
    const tok = nextNonSpace()
    if (tok.kind !== kind) err.invalid(`unexpected ${describe(tok)} in ${context}`, tok.pos)
    return tok
  }

  /** Parses nodes until `{{ else }}`, `{{ else if }}`, `{{ end }}` or EOF; returns what stopped it. */
  function list(inIf: boolean): { nodes: Node[]; stop: 'else' | 'elseif' | 'end' | 'eof'; pos: number } {
    const nodes: Node[] = []
    for (;;) {
      const tok = next()
      if (tok.kind === 'eof') {
        if (inIf) err.invalid('unexpected EOF: missing {{end}}', tok.pos)
        return { nodes, stop: 'eof', pos: tok.pos }
      }
      if (tok.kind === 'text') {
        nodes.push({ t: 'text', pos: tok.pos, text: tok.value })
        continue
      }
      // tok is `{{`
      const first = peekNonSpace()
      if (first.kind === 'keyword') {
        next()
        switch (first.value) {
          case 'if':
            nodes.push(ifNode(first.pos))
            continue
          case 'else': {
            if (!inIf) err.invalid('unexpected {{else}}', first.pos)
            const after = peekNonSpace()
            if (after.kind === 'keyword' && after.value === 'if') {
              next()
              return { nodes, stop: 'elseif', pos: after.pos }
            }
            if (after.kind === 'keyword' && after.value === 'with') err.unsupported('{{else with}}', after.pos)
            expect('right', 'else')
            return { nodes, stop: 'else', pos: first.pos }
          }
          case 'end':
            if (!inIf) err.invalid('unexpected {{end}}', first.pos)
            expect('right', 'end')
            return { nodes, stop: 'end', pos: first.pos }
          default:
            err.unsupported(`{{${first.value}}} actions`, first.pos)
        }
      }
      const pipe = pipeline('command', 'right')
      nodes.push({ t: 'action', pos: tok.pos, pipe })
    }
  }

  /** After `{{ if` (or `{{ else if`): pipeline, `}}`, then the branches up to the shared `{{ end }}`. */
  function ifNode(pos: number): IfNode {
    const pipe = pipeline('if', 'right')
    const thenPart = list(true)
    let elsePart: Node[] | undefined
    if (thenPart.stop === 'elseif') {
      elsePart = [ifNode(thenPart.pos)]
    } else if (thenPart.stop === 'else') {
      const e = list(true)
      if (e.stop === 'else' || e.stop === 'elseif') err.invalid('expected end; found {{else}}', e.pos)
      elsePart = e.nodes
    }
    return { t: 'if', pos, pipe, then: thenPart.nodes, else: elsePart }
  }

  /** Parses `command ('|' command)*` up to (and consuming) the `end` token. */
  function pipeline(context: string, end: 'right' | 'rparen'): Pipe {
    const start = peekNonSpace()
    if (start.kind === 'variable' && start.value !== '$') {
      // `$x := …`, `$x = …` and `$x` itself.
      err.unsupported('variables', start.pos)
    }
    const cmds: Command[] = []
    for (;;) {
      const tok = peekNonSpace()
      if (tok.kind === end) {
        next()
        break
      }
      switch (tok.kind) {
        case 'bool':
        case 'nil':
        case 'dot':
        case 'field':
        case 'ident':
        case 'number':
        case 'string':
        case 'variable':
        case 'lparen':
          cmds.push(command(end))
          continue
        case 'declare':
        case 'assign':
          err.unsupported('variable declarations', tok.pos)
        // falls through (unreachable: unsupported() throws)
        default:
          err.invalid(`unexpected ${describe(tok)} in ${context}`, tok.pos)
      }
    }
    if (cmds.length === 0) err.invalid(`missing value for ${context}`, start.pos)
    // Only the first command of a pipeline can start with a non-executable operand.
    for (let k = 1; k < cmds.length; k++) {
      const head = (cmds[k] as Command).args[0] as Operand
      if (head.t === 'bool' || head.t === 'dot' || head.t === 'nil' || head.t === 'number' || head.t === 'string') {
        err.invalid(`non executable command in pipeline stage ${k + 1}`, head.pos)
      }
    }
    return { pos: start.pos, cmds }
  }

  function command(end: 'right' | 'rparen'): Command {
    const pos = peekNonSpace().pos
    const args: Operand[] = []
    for (;;) {
      peekNonSpace()
      const op = operand()
      if (op !== undefined) args.push(op)
      const tok = peek()
      if (tok.kind === 'space') {
        next()
        continue
      }
      if (tok.kind === end || tok.kind === 'right' || tok.kind === 'rparen') break
      if (tok.kind === 'pipe') {
        next()
        break
      }
      err.invalid(`unexpected ${describe(tok)} in operand`, tok.pos)
    }
    if (args.length === 0) err.invalid('empty command', pos)
    return { pos, args }
  }

  function operand(): Operand | undefined {
    const node = term()
    if (node === undefined) return undefined
    if (peek().kind !== 'field') return node
    const fields: string[] = []
    while (peek().kind === 'field') fields.push(next().value)
    switch (node.t) {
      case 'field':
        return { t: 'field', pos: node.pos, fields: [...node.fields, ...fields] }
      case 'dot':
        // Only `$` can be followed by fields here; a `.` immediately followed by `.X` lexes as one
        // field token, so this is `$.X`.
        return { t: 'field', pos: node.pos, fields }
      case 'bool':
      case 'string':
      case 'number':
      case 'nil':
        return err.invalid('unexpected . after term', node.pos)
      default:
        return { t: 'chain', pos: node.pos, base: node, fields }
    }
  }

  function term(): Operand | undefined {
    const tok = nextNonSpace()
    switch (tok.kind) {
      case 'ident':
        return { t: 'ident', pos: tok.pos, name: tok.value }
      case 'dot':
        return { t: 'dot', pos: tok.pos }
      case 'nil':
        return { t: 'nil', pos: tok.pos }
      case 'variable':
        if (tok.value !== '$') err.unsupported('variables', tok.pos)
        // `$` is the template data; with no range/with, it is always the same as `.`.
        return { t: 'dot', pos: tok.pos }
      case 'field':
        return { t: 'field', pos: tok.pos, fields: [tok.value] }
      case 'bool':
        return { t: 'bool', pos: tok.pos, value: tok.value === 'true' }
      case 'number':
        return { t: 'number', pos: tok.pos, num: parseNumber(tok.value, tok.pos, err) }
      case 'string':
        return { t: 'string', pos: tok.pos, value: tok.value }
      case 'lparen': {
        if (++parenDepth > MAX_PAREN_DEPTH) err.unsupported(`more than ${MAX_PAREN_DEPTH} nested parentheses`, tok.pos)
        const pipe = pipeline('parenthesized pipeline', 'rparen')
        parenDepth--
        return { t: 'pipe', pos: tok.pos, pipe }
      }
      case 'keyword':
        return err.invalid(`unexpected <${tok.value}> in operand`, tok.pos)
    }
    i--
    return undefined
  }

  return list(false).nodes
}
