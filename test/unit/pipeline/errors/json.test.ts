import { describe, expect, it } from 'vitest'
import { json } from '../../../../src/pipeline/errors/json.js'
import { PipelineError, type PipelineErrorCode } from '../../../../src/pipeline/errors.js'
import { runErrorHandlerContract } from '../../../contract/error-handler.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest } from '../../../helpers/session.js'

const CT = ['content-type', 'application/json; charset=utf-8']

function error(code: PipelineErrorCode, headers: readonly (readonly [string, string])[] = []): PipelineError {
  return new PipelineError(code, 'jwt_expired', 'The token has expired', { cause: new Error('upstream said: secret'), headers })
}

describe('error handler json', () => {
  runErrorHandlerContract({
    factory: json,
    validConfigs: [undefined, {}, { verbose: true }, { verbose: false }],
    invalidConfigs: [{ name: 'a non-boolean verbose', config: { verbose: 'yes' }, path: ['verbose'] }],
  })

  const generic: { code: PipelineErrorCode; http: number; status: string; message: string }[] = [
    { code: 'ERR_BAD_REQUEST', http: 400, status: 'Bad Request', message: 'The request was malformed or contained invalid parameters' },
    { code: 'ERR_UNAUTHENTICATED', http: 401, status: 'Unauthorized', message: 'The request could not be authorized' },
    { code: 'ERR_FORBIDDEN', http: 403, status: 'Forbidden', message: 'The requested action was forbidden' },
    { code: 'ERR_NO_RULE', http: 404, status: 'Not Found', message: 'The requested resource could not be found' },
    { code: 'ERR_TOO_MANY_REQUESTS', http: 429, status: 'Too Many Requests', message: 'Too many requests, please try again later' },
    { code: 'ERR_INTERNAL', http: 500, status: 'Internal Server Error', message: 'An internal server error occurred, please contact the system administrator' },
    { code: 'ERR_AMBIGUOUS_RULE', http: 500, status: 'Internal Server Error', message: 'An internal server error occurred, please contact the system administrator' },
    { code: 'ERR_UPSTREAM_UNAVAILABLE', http: 503, status: 'Service Unavailable', message: 'The service is temporarily unavailable, please try again later' },
  ]

  it.each(generic)('non-verbose (default): $code → $http with the generic herodot message', ({ code, http, status, message }) => {
    const res = build(json, {}).handle(error(code), makeRequest())
    expect(res.status).toBe(http)
    expect(res.headers).toEqual([CT])
    expect(JSON.parse(res.body)).toEqual({ error: { code: http, status, message } })
    expect(res.body).not.toContain('expired')
    expect(res.body).not.toContain('jwt_expired')
  })

  it.each(generic)('verbose: $code → $http with the error message and reason', ({ code, http, status }) => {
    const res = build(json, { verbose: true }).handle(error(code), makeRequest())
    expect(res.status).toBe(http)
    expect(JSON.parse(res.body)).toEqual({
      error: { code: http, status, message: 'The token has expired', reason: 'jwt_expired' },
    })
    expect(res.body).not.toContain('secret')
  })

  it('writes the body in herodot field order', () => {
    const res = build(json, { verbose: true }).handle(error('ERR_FORBIDDEN'), makeRequest())
    expect(res.body).toBe('{"error":{"code":403,"status":"Forbidden","message":"The token has expired","reason":"jwt_expired"}}')
  })

  it('escapes the message as JSON', () => {
    const e = new PipelineError('ERR_FORBIDDEN', 'x', 'quote " and backslash \\ and </script>')
    const res = build(json, { verbose: true }).handle(e, makeRequest())
    expect(JSON.parse(res.body).error.message).toBe('quote " and backslash \\ and </script>')
  })

  it.each([{ verbose: false }, { verbose: true }])('copies the error headers (Retry-After) with verbose: $verbose', ({ verbose }) => {
    const e = error('ERR_TOO_MANY_REQUESTS', [
      ['Retry-After', '30'],
      ['X-RateLimit-Remaining', '0'],
    ])
    const res = build(json, { verbose }).handle(e, makeRequest())
    expect(res.status).toBe(429)
    expect(res.headers).toEqual([CT, ['retry-after', '30'], ['x-ratelimit-remaining', '0']])
  })

  it('keeps its own content type even if the error carries one', () => {
    const e = error('ERR_FORBIDDEN', [['Content-Type', 'text/html']])
    expect(build(json, {}).handle(e, makeRequest()).headers).toEqual([CT])
  })

  it('honours `when`', () => {
    const h = build(json, { when: [{ request: { header: { accept: ['application/json'] } } }] })
    expect(h.matches(error('ERR_FORBIDDEN'), makeRequest({ headers: { accept: 'application/json' } }))).toBe(true)
    expect(h.matches(error('ERR_FORBIDDEN'), makeRequest({ headers: { accept: '*/*' } }))).toBe(false)
  })
})
