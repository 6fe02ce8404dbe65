import { describe, expect, it } from 'vitest'
import { errorHandlers } from '../../../../src/pipeline/errors/index.js'

describe('error handlers registry list', () => {
  it('lists the shipped error handlers explicitly, once each', () => {
    expect(errorHandlers.map((f) => f.id)).toEqual(['json', 'www_authenticate', 'redirect'])
    for (const f of errorHandlers) expect(f.stage).toBe('error')
  })
})
