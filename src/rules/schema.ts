/**
 * Oathkeeper's access-rule format, strictly: unknown keys are load errors (Oathkeeper silently
 * ignores them, so a rule relying on the documented-but-unimplemented `match.headers` matches
 * regardless of headers). Handler `config` is validated by each handler's own schema at compile.
 * @module
 */
import { z } from 'zod'

export const HandlerRef = z.strictObject({
  handler: z.string().min(1),
  config: z.record(z.string(), z.unknown()).optional(),
})
export type HandlerRef = z.infer<typeof HandlerRef>

export const RuleSchema = z.strictObject({
  id: z.string().min(1).max(190),
  version: z.string().optional(),
  description: z.string().optional(),
  match: z.strictObject({
    url: z.string().min(1),
    methods: z.array(z.string().regex(/^[A-Za-z]+$/, 'must be an HTTP method name')).min(1),
  }),
  authenticators: z.array(HandlerRef).min(1),
  authorizer: HandlerRef,
  mutators: z.array(HandlerRef).min(1),
  errors: z.array(HandlerRef).default([]),
  /** Proxy-mode only in Oathkeeper; accepted so existing files load, unused (Envoy routes). */
  upstream: z
    .strictObject({
      url: z.string().optional(),
      preserve_host: z.boolean().optional(),
      strip_path: z.string().optional(),
    })
    .optional(),
})
export type RawRule = z.infer<typeof RuleSchema>
