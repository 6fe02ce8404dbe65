import { describe, expect, it } from 'vitest'
import { anonymous } from '../../../../src/pipeline/authn/anonymous.js'
import { NOT_RESPONSIBLE } from '../../../../src/pipeline/types.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

describe('authn anonymous', () => {
  runAuthenticatorContract({
    factory: anonymous,
    validConfigs: [undefined, {}, { subject: 'guest' }],
    invalidConfigs: [
      { name: 'a non-string subject', config: { subject: 42 }, path: ['subject'] },
      { name: 'a null subject', config: { subject: null }, path: ['subject'] },
    ],
  })

  const cases: {
    name: string
    config: unknown
    headers: Record<string, string>
    expect: { outcome: typeof NOT_RESPONSIBLE | undefined; subject: string }
  }[] = [
    { name: 'sets the default subject when there is no Authorization header', config: {}, headers: {}, expect: { outcome: undefined, subject: 'anonymous' } },
    { name: 'sets the configured subject', config: { subject: 'guest' }, headers: {}, expect: { outcome: undefined, subject: 'guest' } },
    { name: 'reads an empty configured subject as the default (as Oathkeeper)', config: { subject: '' }, headers: {}, expect: { outcome: undefined, subject: 'anonymous' } },
    {
      name: 'is not responsible when an Authorization header is present',
      config: {},
      headers: { authorization: 'Bearer abc' },
      expect: { outcome: NOT_RESPONSIBLE, subject: '' },
    },
    {
      name: 'is not responsible for any Authorization scheme, even a malformed one',
      config: {},
      headers: { Authorization: 'garbage' },
      expect: { outcome: NOT_RESPONSIBLE, subject: '' },
    },
    {
      name: 'is responsible when the Authorization header is empty',
      config: {},
      headers: { authorization: '' },
      expect: { outcome: undefined, subject: 'anonymous' },
    },
    {
      name: 'ignores cookies (a session cookie does not make it step aside)',
      config: {},
      headers: { cookie: 'session=abc' },
      expect: { outcome: undefined, subject: 'anonymous' },
    },
    {
      name: 'ignores other credential headers',
      config: {},
      headers: { 'x-api-key': 'k', 'proxy-authorization': 'Basic x' },
      expect: { outcome: undefined, subject: 'anonymous' },
    },
  ]

  it.each(cases)('$name', ({ config, headers, expect: want }) => {
    const req = makeRequest({ headers })
    const s = makeSession(req)
    expect(build(anonymous, config).authenticate(req, s, NO_ABORT)).toBe(want.outcome)
    expect(s.subject).toBe(want.subject)
  })

  it('overwrites a subject left by an earlier handler only when responsible', () => {
    const authn = build(anonymous, {})
    const req = makeRequest({ headers: { authorization: 'Bearer abc' } })
    const s = makeSession(req, { subject: 'previous' })
    expect(authn.authenticate(req, s, NO_ABORT)).toBe(NOT_RESPONSIBLE)
    expect(s.subject).toBe('previous')
  })
})
