import { describe, expect, it } from 'vitest'
import { RetryBudget } from '../../../src/http/retry-budget.js'

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 5_000_000
  return { now: () => t, advance: (ms) => void (t += ms) }
}

function drain(b: RetryBudget): number {
  let n = 0
  while (b.tryRetry()) n++
  return n
}

describe('RetryBudget', () => {
  it('allows min_per_second × 10 retries with no traffic', () => {
    expect(drain(new RetryBudget(0.2, 5, clock().now))).toBe(50)
    expect(drain(new RetryBudget(0.2, 0, clock().now))).toBe(0)
  })

  it('adds ratio × calls over the window', () => {
    const b = new RetryBudget(0.2, 0, clock().now)
    for (let i = 0; i < 1000; i++) b.recordCall()
    expect(drain(b)).toBe(200)
    for (let i = 0; i < 10; i++) b.recordCall()
    expect(drain(b)).toBe(2)
  })

  it('forgets calls and retries older than 10 s, bucket by bucket', () => {
    const c = clock()
    const b = new RetryBudget(0.5, 0, c.now)
    for (let i = 0; i < 100; i++) b.recordCall()
    expect(drain(b)).toBe(50)
    c.advance(5000)
    for (let i = 0; i < 100; i++) b.recordCall()
    expect(drain(b)).toBe(50)
    c.advance(5000) // the first second has left the window: its 100 calls and 50 retries with it
    expect(drain(b)).toBe(0)
    c.advance(5000)
    expect(drain(b)).toBe(0)
    for (let i = 0; i < 10; i++) b.recordCall()
    expect(drain(b)).toBe(5)
  })

  it('caps total retries under sustained traffic at ratio × calls + floor', () => {
    const c = clock()
    const b = new RetryBudget(0.2, 5, c.now)
    let calls = 0
    let retries = 0
    for (let ms = 0; ms < 30_000; ms += 10) {
      c.advance(10)
      b.recordCall()
      calls++
      if (b.tryRetry()) retries++
      if (b.tryRetry()) retries++
    }
    // Within any 10 s window: retries ≤ 0.2 × calls + 50. The 30 s run touches 31 one-second
    // buckets, i.e. four disjoint windows, so the floor counts at most four times.
    expect(retries).toBeLessThanOrEqual(0.2 * calls + 4 * 50)
    expect(retries).toBeGreaterThanOrEqual(0.2 * calls)
  })
})
