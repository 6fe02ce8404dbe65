/**
 * Mutator `header` (Oathkeeper `pipeline/mutate/mutator_header.go`): sets upstream request
 * headers from templates rendered against the session, e.g.
 * `headers: { X-User: "{{ print .Subject }}" }`.
 *
 * - Header names must be HTTP tokens (RFC 9110 §5.6.2), and not `host` or a connection-level
 *   header. They are lower-cased for the session map (HTTP/2 and Envoy use lower-case names;
 *   names are case-insensitive, Oathkeeper canonicalises them to `X-User` instead). Two names
 *   differing only in case are rejected at load: Oathkeeper keeps one of them at random (Go map
 *   order).
 * - All values are rendered before any is set (as Oathkeeper), so `.Header` in a template shows
 *   the headers as they were before this mutator, and a failing template sets nothing.
 * - Values are compiled once per rule; each render **overwrites** (`Set`) any value set earlier in
 *   the chain. An empty render still sets `""`, which is how a client-supplied copy is scrubbed.
 * - A rendered value containing NUL, CR or LF is never emitted (it would split or truncate the
 *   header, CVE-2019-9900 style): the request is denied with ERR_INTERNAL instead.
 *
 * The compiled mutator is a {@link HeaderSetter}: the rule compiler collects `headerNames` so the
 * server can remove every managed identity header the rule does not set.
 * @module
 */
import { z } from 'zod'
import { defineHandler, type Mutator, type Session } from '../types.js'
import { PipelineError } from '../errors.js'
import { compileTemplate } from '../../template/index.js'

/** RFC 9110 `token`: the characters allowed in a header field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/**
 * Names a mutator may not set: connection-level headers (meaningless or dangerous to forward) and
 * `host` (would change routing after the decision). Oathkeeper does not check; we fail at load.
 */
const RESERVED = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
])
/** Characters that must never appear in an emitted header value. */
const FORBIDDEN_VALUE_CHARS = /[\0\r\n]/

const HeaderConfigObject = z
  .object({
    /** Header name → template. Required (it may be `{}`, e.g. from the global default). */
    headers: z.record(z.string(), z.string()).superRefine((headers, ctx) => {
      const seen = new Map<string, string>()
      for (const [name, source] of Object.entries(headers)) {
        if (!TOKEN.test(name)) {
          ctx.addIssue({ code: 'custom', path: [name], message: `"${name}" is not a valid HTTP header name` })
          continue
        }
        const lower = name.toLowerCase()
        if (RESERVED.has(lower)) {
          ctx.addIssue({ code: 'custom', path: [name], message: `header "${name}" may not be set by a mutator` })
          continue
        }
        const previous = seen.get(lower)
        if (previous !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `header "${name}" is set twice (also as "${previous}"); header names are case-insensitive`,
          })
        }
        seen.set(lower, name)
        // Report template syntax errors with their path at load; `create` compiles again, which
        // is cheap and keeps the parsed config plain data.
        try {
          compileTemplate(source)
        } catch (err) {
          // TemplateError messages read "invalid template: … (line 1, column 4, offset 3)".
          ctx.addIssue({ code: 'custom', path: [name], message: err instanceof Error ? err.message : String(err) })
        }
      }
    }),
  })
  .strict()

/** A rule without any `config` (and no global one) reads as `{}`, so a missing key is reported by its path. */
export const HeaderConfig = z.preprocess((v) => (v === undefined ? {} : v), HeaderConfigObject)
export type HeaderConfig = z.infer<typeof HeaderConfig>

/** Implemented by mutators that set upstream headers: which (lower-case) names they set. */
export interface HeaderSetter {
  /** Lower-case names of every header this compiled mutator sets on each successful run. */
  readonly headerNames: readonly string[]
}

/** Narrows a compiled mutator to a {@link HeaderSetter} (the rule compiler uses it). */
export function isHeaderSetter(m: Mutator): m is Mutator & HeaderSetter {
  const names = (m as Partial<HeaderSetter>).headerNames
  return Array.isArray(names)
}

export const header = defineHandler('mutate', 'header', HeaderConfig, (config): Mutator & HeaderSetter => {
  const compiled: (readonly [name: string, render: (s: Session) => string])[] = Object.entries(config.headers).map(
    ([name, source]) => [name.toLowerCase(), compileTemplate(source)] as const,
  )
  const headerNames = Object.freeze(compiled.map(([name]) => name))

  return {
    headerNames,
    mutate(_req, s) {
      // Render everything first, so a failing template leaves the session untouched.
      const rendered: [string, string][] = []
      for (const [name, render] of compiled) {
        let value: string
        try {
          value = render(s)
        } catch (err) {
          // Render faults are PipelineErrors with a value-free message (template position and Go
          // types only); anything else is a bug and gets a generic message.
          const detail = err instanceof PipelineError ? `: ${err.message}` : ''
          const reason = err instanceof PipelineError ? err.reason : 'mutator_header_template'
          throw new PipelineError('ERR_INTERNAL', reason, `Template for header "${name}" failed${detail}`, { cause: err })
        }
        if (FORBIDDEN_VALUE_CHARS.test(value)) {
          // Never echo the value: it is derived from the session (claims, subject).
          throw new PipelineError(
            'ERR_INTERNAL',
            'mutator_header_invalid_value',
            `Template for header "${name}" produced a value with a forbidden character`,
          )
        }
        rendered.push([name, value])
      }
      for (const [name, value] of rendered) s.header.set(name, value)
    },
  }
})
