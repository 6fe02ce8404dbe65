import { describe, expect, it } from 'vitest'
import { deny } from '../../../../src/pipeline/authz/deny.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { STATUS } from '../../../../src/server/status.js'
import { runAuthorizerContract } from '../../../contract/authorizer.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

describe('authz deny', () => {
  runAuthorizerContract({ factory: deny, validConfigs: [undefined, {}] })

  it.each([{ subject: 'alice' }, { subject: 'anonymous' }, { subject: '' }])(
    'forbids subject "$subject" with ERR_FORBIDDEN (403)',
    ({ subject }) => {
      const req = makeRequest()
      const s = makeSession(req, { subject })
      const authz = build(deny, {})
      expect(() => authz.authorize(req, s, NO_ABORT)).toThrow(PipelineError)
      try {
        authz.authorize(req, s, NO_ABORT)
      } catch (err) {
        const e = err as PipelineError
        expect(e.code).toBe('ERR_FORBIDDEN')
        expect(e.reason).toBe('authorizer_deny')
        expect(STATUS[e.code].http).toBe(403)
      }
    },
  )
})
