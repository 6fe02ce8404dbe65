/**
 * The load-time error of the rule URL matcher. Kept in its own module so the pattern compiler and
 * its syntax helpers can all throw it without importing each other; `src/rules/pattern.ts`
 * re-exports it as part of the public API.
 * @module
 */

/**
 * A rule's `match.url` pattern cannot be compiled: bad syntax, a construct we refuse (lookaround,
 * backreferences, inline flags, …) or a size cap exceeded. The message says what is wrong and
 * where inside the pattern; the caller prefixes the file, rule id and field.
 */
export class PatternError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PatternError'
  }
}
