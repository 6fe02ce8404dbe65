/**
 * Authenticator `unauthorized` (Oathkeeper `pipeline/authn/authenticator_unauthorized.go`): always
 * responsible, always rejects with 401. Typically the last authenticator of a chain, or the only
 * one of a rule that sends every request to an error handler (e.g. `redirect` to a login page).
 * @module
 */
import { z } from 'zod'
import { defineHandler } from '../types.js'
import { PipelineError } from '../errors.js'

export const UnauthorizedConfig = z.object({}).strict().prefault({})
export type UnauthorizedConfig = z.infer<typeof UnauthorizedConfig>

export const unauthorized = defineHandler('authn', 'unauthorized', UnauthorizedConfig, () => ({
  authenticate(): never {
    throw new PipelineError('ERR_UNAUTHENTICATED', 'authenticator_unauthorized', 'Access credentials are invalid')
  },
}))
