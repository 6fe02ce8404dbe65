import { describe, expect, it } from 'vitest'
import { mutators } from '../../../../src/pipeline/mutate/index.js'

describe('mutators registry list', () => {
  it('lists the shipped mutators explicitly, once each', () => {
    expect(mutators.map((f) => f.id)).toEqual(['noop', 'header'])
    for (const f of mutators) expect(f.stage).toBe('mutate')
  })
})
