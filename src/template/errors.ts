/**
 * Errors of the template compiler. {@link TemplateError} is a *load* error: the template source is
 * invalid Go `text/template` syntax, or uses a part of the language Portcullis does not implement.
 * Rendering never throws it; render-time faults are `PipelineError('ERR_INTERNAL', 'template_error')`
 * (see `runtimeError`).
 * @module
 */
import { PipelineError } from '../pipeline/errors.js'

/** Where in the template source something is: 1-based line and column, 0-based offset (UTF-16 units). */
export interface SourcePosition {
  readonly offset: number
  readonly line: number
  readonly column: number
}

/** Computes the line and column of `offset` in `source`. Only used on the error path. */
export function positionOf(source: string, offset: number): SourcePosition {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { offset, line, column: offset - lineStart + 1 }
}

/**
 * A template that cannot be compiled. `message` reads
 * `unsupported template syntax: range actions (line 1, column 4, offset 3)` or
 * `invalid template: unclosed action (line 1, column 1, offset 0)`; `reason` is the part before the
 * position, and the position is also available as fields.
 */
export class TemplateError extends Error {
  readonly reason: string
  readonly offset: number
  readonly line: number
  readonly column: number

  constructor(reason: string, pos: SourcePosition) {
    super(`${reason} (line ${pos.line}, column ${pos.column}, offset ${pos.offset})`)
    this.name = 'TemplateError'
    this.reason = reason
    this.offset = pos.offset
    this.line = pos.line
    this.column = pos.column
  }
}

/** Thrower bound to one template source, so every stage reports positions the same way. */
export class ErrorSink {
  constructor(private readonly source: string) {}

  /** Syntax Go's parser would also reject. */
  invalid(what: string, offset: number): never {
    throw new TemplateError(`invalid template: ${what}`, positionOf(this.source, offset))
  }

  /** Valid Go template syntax that Portcullis deliberately does not implement. */
  unsupported(what: string, offset: number): never {
    throw new TemplateError(`unsupported template syntax: ${what}`, positionOf(this.source, offset))
  }

  position(offset: number): SourcePosition {
    return positionOf(this.source, offset)
  }
}

/**
 * A render-time fault (Go's `template: executing ...` errors): index out of range, a missing
 * intermediate map in `.Extra.a.b`, a value of the wrong type for a function. The message names the
 * template position and Go types only, never a value, so it is safe to log and to return.
 */
export function runtimeError(pos: SourcePosition, what: string): PipelineError {
  return new PipelineError(
    'ERR_INTERNAL',
    'template_error',
    `template error at line ${pos.line}, column ${pos.column}: ${what}`,
  )
}
