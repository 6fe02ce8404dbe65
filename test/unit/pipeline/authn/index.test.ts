import { describe, expect, it } from 'vitest'
import { authenticators } from '../../../../src/pipeline/authn/index.js'

describe('authenticators registry list', () => {
  it('lists the shipped authenticators explicitly, once each', () => {
    expect(authenticators.map((f) => f.id)).toEqual([
      'noop',
      'anonymous',
      'unauthorized',
      'jwt',
      'oauth2_introspection',
      'oauth2_client_credentials',
      'bearer_token',
      'cookie_session',
    ])
    for (const f of authenticators) expect(f.stage).toBe('authn')
  })
})
