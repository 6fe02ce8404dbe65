/**
 * Decision log sampling (`log.decision_sample`): one line per decision is the default, but at
 * thousands of requests per second operators keep a fraction. Allows and denials are sampled
 * separately, so a deny flood can be thinned without losing the rarer allows, or the reverse.
 * @module
 */
import { z } from 'zod'

export const DecisionSampleSchema = z.strictObject({
  /** Fraction of allowed decisions logged (0 … 1). */
  allow: z.number().min(0).max(1).default(1),
  /** Fraction of denied decisions logged (0 … 1). */
  deny: z.number().min(0).max(1).default(1),
})
export type DecisionSample = z.infer<typeof DecisionSampleSchema>

export const LOG_EVERY_DECISION: DecisionSample = Object.freeze({ allow: 1, deny: 1 })

/** Whether to log this decision; costs one comparison when the rate is 0 or 1. */
export function sampled(rates: DecisionSample, decision: 'allow' | 'deny'): boolean {
  const r = decision === 'allow' ? rates.allow : rates.deny
  return r >= 1 || (r > 0 && Math.random() < r)
}
