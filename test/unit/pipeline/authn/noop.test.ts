import { describe, expect, it } from 'vitest'
import { noop } from '../../../../src/pipeline/authn/noop.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

describe('authn noop', () => {
  runAuthenticatorContract({ factory: noop, validConfigs: [undefined, {}] })

  it.each([
    { name: 'a request without credentials', headers: {} },
    { name: 'a request with an Authorization header', headers: { authorization: 'Bearer x' } },
  ])('succeeds on $name and leaves the subject empty', ({ headers }) => {
    const req = makeRequest({ headers })
    const s = makeSession(req)
    expect(build(noop, {}).authenticate(req, s, NO_ABORT)).toBeUndefined()
    expect(s.subject).toBe('')
  })
})
