/**
 * Header templates: a compiled, safe subset of Go `text/template` with Oathkeeper's data model
 * (`.Subject`, `.Extra`, `.Header`, `.MatchContext`) and the sprig functions rule files use.
 * Used by the mutators and authorizers whose config values are templates (reference
 * oathkeeper.md §1.0 "Templates", §1.3).
 *
 * `compileTemplate` runs at rule load and throws {@link TemplateError} for anything invalid or
 * unsupported, with the line, column and offset. The returned function renders one session; it
 * throws only `PipelineError('ERR_INTERNAL', 'template_error')`, for the faults Go reports at
 * execution time (index out of range, `.Extra.a.b` when `a` is missing, a value of the wrong type
 * for a function).
 *
 * Output follows Go exactly for strings, numbers (`1e+06`), booleans and nil, including Go's
 * `<no value>` for a bare `{{ .Extra.missing }}` (use `{{ print .Extra.missing }}` for "").
 * See the README "Templates" section for the supported syntax and the deviations from Go.
 * @module
 */
import type { Session } from '../pipeline/types.js'
import { withRuntimeErrors, Compiler } from './compile.js'
import { ErrorSink } from './errors.js'
import { lex } from './lexer.js'
import { parse } from './parse.js'

export { TemplateError } from './errors.js'

/** Renders a compiled template against one session. */
export type CompiledTemplate = (s: Session) => string

/**
 * Compiles `source` once; call the result per request.
 * @throws TemplateError when the template is invalid or uses unsupported syntax.
 * @example
 * const userHeader = compileTemplate('{{ print .Subject }}')
 * userHeader(session) // 'alice'
 */
export function compileTemplate(source: string): CompiledTemplate {
  const err = new ErrorSink(source)
  const nodes = parse(lex(source, err), err)
  const { render, constant, mayFault } = new Compiler(err).nodes(nodes)
  if (constant !== undefined) return () => constant
  return mayFault ? withRuntimeErrors(render, err, 0) : render
}
