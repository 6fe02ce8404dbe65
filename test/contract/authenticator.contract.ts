/**
 * Contract every authenticator must satisfy (call from its unit test, Hono `runTest` style):
 * config schema and construction (see config.contract.ts), and on every kind of request:
 * - `authenticate` returns nothing (success) or `NOT_RESPONSIBLE`, or throws a PipelineError
 *   whose message, reason and headers carry no credential;
 * - "not responsible" leaves the session untouched (the next authenticator starts clean);
 * - success leaves a string subject.
 * @module
 */
import { describe, expect, it } from 'vitest'
import { NOT_RESPONSIBLE, type HandlerFactory } from '../../src/pipeline/types.js'
import { credentialRequests, makeSession, NO_ABORT } from '../helpers/session.js'
import { build, runConfigContract, type InvalidConfigCase } from './config.contract.js'
import { outcomeOf } from './safety.js'

export interface AuthenticatorContractOptions<C> {
  readonly factory: HandlerFactory<'authn', C>
  readonly validConfigs: readonly unknown[]
  readonly invalidConfigs?: readonly InvalidConfigCase[]
}

export function runAuthenticatorContract<C>(o: AuthenticatorContractOptions<C>): void {
  runConfigContract({ stage: 'authn', factory: o.factory, validConfigs: o.validConfigs, invalidConfigs: o.invalidConfigs ?? [] })

  describe(`authenticator "${o.factory.id}" contract`, () => {
    it('create() returns an Authenticator', () => {
      for (const config of o.validConfigs) {
        expect(typeof build(o.factory, config).authenticate).toBe('function')
      }
    })

    it.each(credentialRequests())('answers a request with $name with success, NOT_RESPONSIBLE or a safe PipelineError', async ({ name, req }) => {
      for (const config of o.validConfigs) {
        const authn = build(o.factory, config)
        const s = makeSession(req)
        const outcome = await outcomeOf(() => authn.authenticate(req, s, NO_ABORT), `${o.factory.id} on ${name}`)
        if (!outcome.ok) continue
        if (outcome.value === NOT_RESPONSIBLE) {
          expect(s.subject).toBe('')
          expect(s.extra).toEqual({})
          expect(s.header.size).toBe(0)
        } else {
          expect(outcome.value).toBeUndefined()
          expect(typeof s.subject).toBe('string')
        }
      }
    })
  })
}
