/**
 * Contract every error handler must satisfy: config schema and construction (config.contract.ts)
 * including the shared `when` key, and
 * - without `when` it is responsible for every error; `when.error` selects by status name;
 * - `handle` returns a well-formed DeniedHttp for every error code: an HTTP status, lower-case
 *   header names, header values without CR/LF/NUL, a string body;
 * - the response never contains a credential of the request, nor anything from the error's
 *   `cause` (which may hold upstream details).
 * @module
 */
import { describe, expect, it } from 'vitest'
import type { HandlerFactory } from '../../src/pipeline/types.js'
import { PipelineError, type PipelineErrorCode } from '../../src/pipeline/errors.js'
import { STATUS } from '../../src/server/status.js'
import { credentialRequests, expectNoSecret, makeRequest, SECRETS } from '../helpers/session.js'
import { build, issuesOf, runConfigContract, type InvalidConfigCase } from './config.contract.js'

export interface ErrorHandlerContractOptions<C> {
  readonly factory: HandlerFactory<'error', C>
  /** Plain objects (the contract adds `when` to them). */
  readonly validConfigs: readonly (Record<string, unknown> | undefined)[]
  readonly invalidConfigs?: readonly InvalidConfigCase[]
  /**
   * Set when the handler deliberately sends the client's own URL back (redirect's `return_to`),
   * so a credential in the request's query string may appear in that header. Give the reason.
   */
  readonly echoesRequestUrlIn?: { readonly header: string; readonly reason: string }
}

const CODES = Object.keys(STATUS) as PipelineErrorCode[]
const LOWER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const CAUSE_SECRET = 'sEcReT-from-upstream-body'

function errorFor(code: PipelineErrorCode): PipelineError {
  return new PipelineError(code, `contract_${code.toLowerCase()}`, `Contract test error ${code}`, {
    cause: new Error(CAUSE_SECRET),
    headers: code === 'ERR_TOO_MANY_REQUESTS' ? [['Retry-After', '7']] : [],
  })
}

export function runErrorHandlerContract<C>(o: ErrorHandlerContractOptions<C>): void {
  const base = o.validConfigs[0] ?? {}
  const whenCases: InvalidConfigCase[] = [
    { name: 'an unknown when.error name', config: { ...base, when: [{ error: ['teapot'] }] }, path: ['when', 0, 'error', 0] },
    {
      name: 'respect_forwarded_for_header: true (X-Forwarded-For is not trusted)',
      config: { ...base, when: [{ request: { remote_ip: { match: ['10.0.0.0/8'], respect_forwarded_for_header: true } } }] },
      path: ['when', 0, 'request', 'remote_ip', 'respect_forwarded_for_header'],
    },
    {
      name: 'an invalid CIDR',
      config: { ...base, when: [{ request: { remote_ip: { match: ['10.0.0.0/33'] } } }] },
      path: ['when', 0, 'request', 'remote_ip', 'match', 0],
    },
    { name: 'an unknown key in a when entry', config: { ...base, when: [{ errors: ['forbidden'] }] }, path: ['when', 0] },
    {
      name: 'the schema-only Oathkeeper key request.cidr',
      config: { ...base, when: [{ request: { cidr: ['10.0.0.0/8'] } }] },
      path: ['when', 0, 'request'],
    },
  ]
  runConfigContract({
    stage: 'error',
    factory: o.factory,
    validConfigs: [...o.validConfigs, { ...base, when: [{ error: ['forbidden'], request: { header: { accept: ['application/json'] } } }] }],
    invalidConfigs: [...(o.invalidConfigs ?? []), ...whenCases],
  })

  describe(`error handler "${o.factory.id}" contract`, () => {
    it('create() returns an ErrorHandler', () => {
      for (const config of o.validConfigs) {
        const h = build(o.factory, config)
        expect(typeof h.matches).toBe('function')
        expect(typeof h.handle).toBe('function')
      }
    })

    it('is responsible for every error and request when it has no `when`', () => {
      for (const config of o.validConfigs) {
        const h = build(o.factory, config)
        for (const code of CODES) for (const { req } of credentialRequests()) expect(h.matches(errorFor(code), req)).toBe(true)
      }
    })

    it('selects errors by their `when.error` status name', () => {
      const h = build(o.factory, { ...base, when: [{ error: ['forbidden', 'not_found'] }] })
      const req = makeRequest()
      for (const code of CODES) {
        expect(h.matches(errorFor(code), req)).toBe(code === 'ERR_FORBIDDEN' || code === 'ERR_NO_RULE')
      }
    })

    it('rejects a config whose `when` is not a list', () => {
      expect(issuesOf(o.factory.config, { ...base, when: { error: ['forbidden'] } }).map((i) => i.path)).toContainEqual(['when'])
    })

    it.each(CODES)('renders %s as a well-formed response without credentials or causes', (code) => {
      for (const config of o.validConfigs) {
        const h = build(o.factory, config)
        for (const { name, req } of credentialRequests()) {
          const res = h.handle(errorFor(code), req)
          expect(Number.isInteger(res.status)).toBe(true)
          expect(res.status).toBeGreaterThanOrEqual(300)
          expect(res.status).toBeLessThan(600)
          expect(typeof res.body).toBe('string')
          const where = `${o.factory.id} ${code} on ${name}`
          expect(res.body).not.toContain(CAUSE_SECRET)
          expectNoSecret(res.body, `${where}: body`)
          for (const [header, value] of res.headers) {
            expect(header).toMatch(LOWER_TOKEN)
            expect(value).not.toMatch(/[\0\r\n]/)
            expect(value).not.toContain(CAUSE_SECRET)
            const echoed = o.echoesRequestUrlIn?.header === header
            expectNoSecret(echoed ? value.replaceAll(SECRETS.query, '') : value, `${where}: header ${header}`)
          }
        }
      }
    })
  })
}
