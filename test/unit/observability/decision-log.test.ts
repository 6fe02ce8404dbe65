import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DecisionSampleSchema, sampled } from '../../../src/observability/decision-log.js'
import { checkClient, httpRequest, type CheckClient } from '../../helpers/check-client.js'
import { ALL_HANDLERS, startWith, type Started } from '../../helpers/in-process.js'

describe('decision log sampling', () => {
  it('defaults to logging every decision and rejects rates outside 0…1', () => {
    expect(DecisionSampleSchema.parse({})).toEqual({ allow: 1, deny: 1 })
    expect(DecisionSampleSchema.safeParse({ allow: 1.5 }).success).toBe(false)
    expect(DecisionSampleSchema.safeParse({ deny: -0.1 }).success).toBe(false)
  })

  it('samples each outcome at its own rate', () => {
    const rates = { allow: 0.1, deny: 0 }
    let allows = 0
    for (let i = 0; i < 20_000; i++) if (sampled(rates, 'allow')) allows++
    expect(allows).toBeGreaterThan(1_400)
    expect(allows).toBeLessThan(2_600)
    for (let i = 0; i < 1_000; i++) expect(sampled(rates, 'deny')).toBe(false)
    expect(sampled({ allow: 1, deny: 1 }, 'deny')).toBe(true)
  })

  describe('through the gRPC server', () => {
    let s: Started
    let c: CheckClient
    beforeAll(async () => {
      s = await startWith({ ...ALL_HANDLERS, log: { level: 'info', decision_sample: { allow: 0, deny: 1 } } }, [
        {
          id: 'open',
          match: { url: 'https://api.example.com/open/<.*>', methods: ['GET'] },
          authenticators: [{ handler: 'anonymous' }],
          authorizer: { handler: 'allow' },
          mutators: [{ handler: 'noop' }],
        },
      ])
      c = checkClient(s.port)
    })
    afterAll(async () => {
      c?.close()
      await s?.stop()
    })

    it('logs denials and drops allows when allow is 0', async () => {
      for (let i = 0; i < 20; i++) await c.check(httpRequest({ path: `/open/${i}` }))
      for (let i = 0; i < 5; i++) await c.check(httpRequest({ path: `/closed/${i}` }))
      await new Promise((r) => setTimeout(r, 50))
      const decisions = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'decision')
      expect(decisions.filter((d) => d['decision'] === 'allow')).toHaveLength(0)
      expect(decisions.filter((d) => d['decision'] === 'deny')).toHaveLength(5)
    })
  })
})
