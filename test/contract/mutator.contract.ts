/**
 * Contract every mutator must satisfy: config schema and construction (config.contract.ts), and
 * - the compiled mutator is a `HeaderSetter`: it declares the lower-case names of the headers it
 *   sets (the server removes every managed identity header a rule does not set, so an
 *   undeclared header would be set *and* removed);
 * - on every kind of request it returns nothing or throws a credential-free PipelineError, and the
 *   only session headers it adds or changes are the declared ones.
 * @module
 */
import { describe, expect, it } from 'vitest'
import type { HandlerFactory } from '../../src/pipeline/types.js'
import { isHeaderSetter } from '../../src/pipeline/mutate/header.js'
import { credentialRequests, makeSession, NO_ABORT } from '../helpers/session.js'
import { build, runConfigContract, type InvalidConfigCase } from './config.contract.js'
import { outcomeOf } from './safety.js'

export interface MutatorContractOptions<C> {
  readonly factory: HandlerFactory<'mutate', C>
  readonly validConfigs: readonly unknown[]
  readonly invalidConfigs?: readonly InvalidConfigCase[]
}

const LOWER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/

export function runMutatorContract<C>(o: MutatorContractOptions<C>): void {
  runConfigContract({ stage: 'mutate', factory: o.factory, validConfigs: o.validConfigs, invalidConfigs: o.invalidConfigs ?? [] })

  describe(`mutator "${o.factory.id}" contract`, () => {
    it('create() returns a Mutator that declares the headers it sets', () => {
      for (const config of o.validConfigs) {
        const m = build(o.factory, config)
        expect(typeof m.mutate).toBe('function')
        expect(isHeaderSetter(m)).toBe(true)
        if (!isHeaderSetter(m)) continue
        for (const name of m.headerNames) expect(name).toMatch(LOWER_TOKEN)
        expect(new Set(m.headerNames).size).toBe(m.headerNames.length)
      }
    })

    it.each(credentialRequests())('mutates a session for a request with $name, touching only declared headers', async ({ name, req }) => {
      for (const config of o.validConfigs) {
        const m = build(o.factory, config)
        const before = { 'x-set-by-an-earlier-handler': 'kept' }
        const s = makeSession(req, { subject: 'alice', extra: { tenant: 't1' }, header: before })
        const outcome = await outcomeOf(() => m.mutate(req, s, NO_ABORT), `${o.factory.id} on ${name}`)
        if (!outcome.ok) continue
        const declared = new Set(isHeaderSetter(m) ? m.headerNames : [])
        for (const [header, value] of s.header) {
          if (declared.has(header)) {
            expect(value).not.toMatch(/[\0\r\n]/)
          } else {
            expect(Object.entries(before)).toContainEqual([header, value])
          }
        }
      }
    })
  })
}
