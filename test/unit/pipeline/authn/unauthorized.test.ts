import { describe, expect, it } from 'vitest'
import { unauthorized } from '../../../../src/pipeline/authn/unauthorized.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { STATUS } from '../../../../src/server/status.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

describe('authn unauthorized', () => {
  runAuthenticatorContract({ factory: unauthorized, validConfigs: [undefined, {}] })

  it.each([
    { name: 'without credentials', headers: {} },
    { name: 'with an Authorization header', headers: { authorization: 'Bearer abc' } },
  ])('rejects every request ($name) with ERR_UNAUTHENTICATED (401)', ({ headers }) => {
    const req = makeRequest({ headers })
    const s = makeSession(req)
    let thrown: unknown
    try {
      build(unauthorized, {}).authenticate(req, s, NO_ABORT)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(PipelineError)
    const e = thrown as PipelineError
    expect(e.code).toBe('ERR_UNAUTHENTICATED')
    expect(e.reason).toBe('authenticator_unauthorized')
    expect(e.message).toBe('Access credentials are invalid')
    expect(STATUS[e.code].http).toBe(401)
    expect(s.subject).toBe('')
  })
})
