import { describe, expect, it } from 'vitest'
import { noop } from '../../../../src/pipeline/mutate/noop.js'
import { isHeaderSetter } from '../../../../src/pipeline/mutate/header.js'
import { runMutatorContract } from '../../../contract/mutator.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

describe('mutate noop', () => {
  runMutatorContract({ factory: noop, validConfigs: [undefined, {}] })

  it('does not copy request headers into the session (unlike Oathkeeper proxy mode)', () => {
    const req = makeRequest({ headers: { 'x-user': 'mallory', authorization: 'Bearer abc', accept: '*/*' } })
    const s = makeSession(req, { subject: 'alice', header: { 'x-from-authorizer': 'v' } })
    build(noop, {}).mutate(req, s, NO_ABORT)
    expect([...s.header]).toEqual([['x-from-authorizer', 'v']])
    expect(s.subject).toBe('alice')
  })

  it('declares that it sets no header, so managed identity headers are removed', () => {
    const m = build(noop, {})
    expect(isHeaderSetter(m) && m.headerNames).toEqual([])
  })
})
