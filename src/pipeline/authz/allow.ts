/**
 * Authorizer `allow` (Oathkeeper `pipeline/authz/authorizer_allow.go`): every authenticated
 * request is allowed.
 * @module
 */
import { z } from 'zod'
import { defineHandler } from '../types.js'

export const AllowConfig = z.object({}).strict().prefault({})
export type AllowConfig = z.infer<typeof AllowConfig>

export const allow = defineHandler('authz', 'allow', AllowConfig, () => ({
  authorize(): void {
    // Allowed: nothing to do.
  },
}))
