import { describe, expect, it } from 'vitest'
import { allow } from '../../../../src/pipeline/authz/allow.js'
import { runAuthorizerContract } from '../../../contract/authorizer.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

describe('authz allow', () => {
  runAuthorizerContract({ factory: allow, validConfigs: [undefined, {}] })

  it.each([
    { name: 'an anonymous subject', subject: 'anonymous' },
    { name: 'an empty subject (noop authenticator)', subject: '' },
  ])('allows $name', ({ subject }) => {
    const req = makeRequest()
    const s = makeSession(req, { subject })
    expect(build(allow, undefined).authorize(req, s, NO_ABORT)).toBeUndefined()
    expect(s.header.size).toBe(0)
  })
})
