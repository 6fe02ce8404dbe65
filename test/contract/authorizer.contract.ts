/**
 * Contract every authorizer must satisfy: config schema and construction (config.contract.ts),
 * and for an authenticated session on every kind of request, `authorize` either returns nothing
 * or throws a credential-free PipelineError, and never changes who the subject is.
 * @module
 */
import { describe, expect, it } from 'vitest'
import type { HandlerFactory } from '../../src/pipeline/types.js'
import { credentialRequests, makeSession, NO_ABORT } from '../helpers/session.js'
import { build, runConfigContract, type InvalidConfigCase } from './config.contract.js'
import { outcomeOf } from './safety.js'

export interface AuthorizerContractOptions<C> {
  readonly factory: HandlerFactory<'authz', C>
  readonly validConfigs: readonly unknown[]
  readonly invalidConfigs?: readonly InvalidConfigCase[]
}

export function runAuthorizerContract<C>(o: AuthorizerContractOptions<C>): void {
  runConfigContract({ stage: 'authz', factory: o.factory, validConfigs: o.validConfigs, invalidConfigs: o.invalidConfigs ?? [] })

  describe(`authorizer "${o.factory.id}" contract`, () => {
    it('create() returns an Authorizer', () => {
      for (const config of o.validConfigs) {
        expect(typeof build(o.factory, config).authorize).toBe('function')
      }
    })

    it.each(credentialRequests())('answers a request with $name with success or a safe PipelineError', async ({ name, req }) => {
      for (const config of o.validConfigs) {
        const authz = build(o.factory, config)
        const s = makeSession(req, { subject: 'alice', extra: { role: 'reader' } })
        const outcome = await outcomeOf(() => authz.authorize(req, s, NO_ABORT), `${o.factory.id} on ${name}`)
        if (outcome.ok) expect(outcome.value).toBeUndefined()
        expect(s.subject).toBe('alice')
      }
    })
  })
}
