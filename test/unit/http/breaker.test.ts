import { describe, expect, it } from 'vitest'
import { CircuitBreaker } from '../../../src/http/breaker.js'

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1000
  return { now: () => t, advance: (ms) => void (t += ms) }
}

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures, rejects for open_for, then admits exactly one probe', () => {
    const c = clock()
    const b = new CircuitBreaker(3, 500, c.now)
    for (let i = 0; i < 3; i++) {
      expect(b.state).toBe('closed')
      b.record(b.admit()!, 'failure')
    }
    expect(b.state).toBe('open')
    expect(b.admit()).toBeUndefined()
    c.advance(499)
    expect(b.admit()).toBeUndefined()
    c.advance(1)
    expect(b.state).toBe('half_open')
    expect(b.admit()).toBe('probe')
    expect(b.admit()).toBeUndefined()
    expect(b.state).toBe('half_open')
  })

  it('a success in between resets the count; 4xx-like successes keep it closed', () => {
    const b = new CircuitBreaker(3, 500, clock().now)
    b.record(b.admit()!, 'failure')
    b.record(b.admit()!, 'failure')
    b.record(b.admit()!, 'success')
    b.record(b.admit()!, 'failure')
    b.record(b.admit()!, 'failure')
    expect(b.state).toBe('closed')
    b.record(b.admit()!, 'failure')
    expect(b.state).toBe('open')
  })

  const probes: { name: string; outcome: 'success' | 'failure' | 'neutral'; then: string; admitsNext: 'normal' | 'probe' | undefined }[] = [
    { name: 'a successful probe closes it', outcome: 'success', then: 'closed', admitsNext: 'normal' },
    { name: 'a failed probe re-opens it for another open_for', outcome: 'failure', then: 'open', admitsNext: undefined },
    { name: 'a neutral probe (abort, too large) frees the probe slot', outcome: 'neutral', then: 'half_open', admitsNext: 'probe' },
  ]
  it.each(probes)('$name', ({ outcome, then, admitsNext }) => {
    const c = clock()
    const b = new CircuitBreaker(1, 100, c.now)
    b.record(b.admit()!, 'failure')
    c.advance(100)
    b.record(b.admit()!, outcome)
    expect(b.state).toBe(then)
    expect(b.admit()).toBe(admitsNext)
  })

  it('ignores late results of attempts admitted before it opened', () => {
    const c = clock()
    const b = new CircuitBreaker(2, 100, c.now)
    const early = b.admit()!
    b.record(b.admit()!, 'failure')
    b.record(b.admit()!, 'failure')
    expect(b.state).toBe('open')
    b.record(early, 'success')
    expect(b.state).toBe('open')
    c.advance(100)
    const probe = b.admit()!
    b.record(early, 'success')
    expect(b.state).toBe('half_open')
    b.record(probe, 'success')
    expect(b.state).toBe('closed')
  })
})
