import { describe, expect, it } from 'vitest'
import { authorizers } from '../../../../src/pipeline/authz/index.js'

describe('authorizers registry list', () => {
  it('lists the shipped authorizers explicitly, once each', () => {
    expect(authorizers.map((f) => f.id)).toEqual(['allow', 'deny'])
    for (const f of authorizers) expect(f.stage).toBe('authz')
  })
})
