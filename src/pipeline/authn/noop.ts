/**
 * Authenticator `noop` (Oathkeeper `pipeline/authn/authenticator_noop.go`): always responsible,
 * always succeeds, and leaves the subject as `""`. Use it only on rules whose upstream does its own
 * authentication; it says nothing about who the caller is.
 * @module
 */
import { z } from 'zod'
import { defineHandler } from '../types.js'

/** No configuration; `undefined` (no `config` key anywhere) is read as `{}`. */
export const NoopAuthnConfig = z.object({}).strict().prefault({})
export type NoopAuthnConfig = z.infer<typeof NoopAuthnConfig>

export const noop = defineHandler('authn', 'noop', NoopAuthnConfig, () => ({
  authenticate(): void {
    // Nothing to check and nothing to set: the session keeps subject "" (as Oathkeeper).
  },
}))
