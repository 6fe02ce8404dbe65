import { describe, expect, it } from 'vitest'
import { wwwAuthenticate } from '../../../../src/pipeline/errors/www-authenticate.js'
import { PipelineError, type PipelineErrorCode } from '../../../../src/pipeline/errors.js'
import { runErrorHandlerContract } from '../../../contract/error-handler.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest } from '../../../helpers/session.js'

const error = (code: PipelineErrorCode) => new PipelineError(code, 'r', 'm')

describe('error handler www_authenticate', () => {
  runErrorHandlerContract({
    factory: wwwAuthenticate,
    validConfigs: [undefined, {}, { realm: 'Portcullis example' }],
    invalidConfigs: [
      { name: 'a non-string realm', config: { realm: 1 }, path: ['realm'] },
      { name: 'a realm with a double quote', config: { realm: 'a"b' }, path: ['realm'] },
      { name: 'a realm with a backslash', config: { realm: 'a\\b' }, path: ['realm'] },
      { name: 'a realm with CR LF (header injection)', config: { realm: 'a\r\nSet-Cookie: x=y' }, path: ['realm'] },
      { name: 'a realm with a NUL', config: { realm: 'a\0' }, path: ['realm'] },
      { name: 'a realm with non-ASCII characters', config: { realm: 'Zugang für Gäste' }, path: ['realm'] },
    ],
  })

  it.each([
    { name: 'the default realm', config: {}, header: 'Basic realm="Please authenticate."' },
    { name: 'an empty realm (the default, as Oathkeeper)', config: { realm: '' }, header: 'Basic realm="Please authenticate."' },
    { name: 'a configured realm with spaces, quoted', config: { realm: 'Portcullis example' }, header: 'Basic realm="Portcullis example"' },
  ])('challenges with $name', ({ config, header }) => {
    const res = build(wwwAuthenticate, config).handle(error('ERR_UNAUTHENTICATED'), makeRequest())
    expect(res).toEqual({
      status: 401,
      headers: [
        ['www-authenticate', header],
        ['content-type', 'text/plain; charset=utf-8'],
        ['x-content-type-options', 'nosniff'],
      ],
      body: 'Unauthorized\n',
    })
  })

  it.each(['ERR_FORBIDDEN', 'ERR_NO_RULE', 'ERR_INTERNAL'] as const)('answers 401 for %s too (as Oathkeeper)', (code) => {
    expect(build(wwwAuthenticate, {}).handle(error(code), makeRequest()).status).toBe(401)
  })

  it('is usually restricted to unauthorized errors with `when`', () => {
    const h = build(wwwAuthenticate, { when: [{ error: ['unauthorized'] }] })
    expect(h.matches(error('ERR_UNAUTHENTICATED'), makeRequest())).toBe(true)
    expect(h.matches(error('ERR_FORBIDDEN'), makeRequest())).toBe(false)
  })
})
