/**
 * Authorizer `deny` (Oathkeeper `pipeline/authz/authorizer_deny.go`): every request is forbidden
 * (403), whoever the subject is.
 * @module
 */
import { z } from 'zod'
import { defineHandler } from '../types.js'
import { PipelineError } from '../errors.js'

export const DenyConfig = z.object({}).strict().prefault({})
export type DenyConfig = z.infer<typeof DenyConfig>

export const deny = defineHandler('authz', 'deny', DenyConfig, () => ({
  authorize(): never {
    throw new PipelineError(
      'ERR_FORBIDDEN',
      'authorizer_deny',
      'Access credentials are not sufficient to access this resource',
    )
  },
}))
