import { describe, expect, it } from 'vitest'
import { OutboundConfigSchema } from '../../../src/http/config.js'

describe('outbound config', () => {
  it('embeds the defaults, durations in milliseconds', () => {
    expect(OutboundConfigSchema.parse({})).toEqual({
      timeout: 150,
      connect_timeout: 100,
      max_connections_per_origin: 32,
      max_pending_per_origin: 256,
      keep_alive: 30_000,
      max_response_bytes: 1024 * 1024,
      max_origins: 256,
      retry: { max_retries: 2, backoff: 10, max_backoff: 50, budget_ratio: 0.2, budget_min_per_second: 5 },
      breaker: { failure_threshold: 5, open_for: 2000 },
    })
  })

  it('reads Go duration strings', () => {
    const c = OutboundConfigSchema.parse({ timeout: '1.5s', keep_alive: '1m30s', breaker: { open_for: '250ms' }, retry: { backoff: '500us', max_backoff: '0.01s' } })
    expect(c).toMatchObject({ timeout: 1500, keep_alive: 90_000, breaker: { open_for: 250 }, retry: { backoff: 0.5, max_backoff: 10 } })
  })

  const bad: { name: string; input: unknown; path: (string | number)[] }[] = [
    { name: 'a bare number of milliseconds', input: { timeout: 150 }, path: ['timeout'] },
    { name: 'a duration without unit', input: { timeout: '150' }, path: ['timeout'] },
    { name: 'a zero timeout', input: { timeout: '0' }, path: ['timeout'] },
    { name: 'a timeout over a minute', input: { timeout: '2m' }, path: ['timeout'] },
    { name: 'a negative duration', input: { breaker: { open_for: '-1s' } }, path: ['breaker', 'open_for'] },
    { name: 'an unknown unit', input: { keep_alive: '1d' }, path: ['keep_alive'] },
    { name: 'zero connections', input: { max_connections_per_origin: 0 }, path: ['max_connections_per_origin'] },
    { name: 'a fractional connection count', input: { max_connections_per_origin: 1.5 }, path: ['max_connections_per_origin'] },
    { name: 'a negative pending bound', input: { max_pending_per_origin: -1 }, path: ['max_pending_per_origin'] },
    { name: 'a zero body cap', input: { max_response_bytes: 0 }, path: ['max_response_bytes'] },
    { name: 'too many retries', input: { retry: { max_retries: 11 } }, path: ['retry', 'max_retries'] },
    { name: 'max_backoff below backoff', input: { retry: { backoff: '100ms', max_backoff: '10ms' } }, path: ['retry', 'max_backoff'] },
    { name: 'an unknown key', input: { timeuot: '1s' }, path: [] },
    { name: 'an unknown breaker key', input: { breaker: { threshold: 3 } }, path: ['breaker'] },
  ]
  it.each(bad)('rejects $name', ({ input, path }) => {
    const r = OutboundConfigSchema.safeParse(input)
    expect(r.success).toBe(false)
    expect(r.error?.issues.map((i) => i.path)).toContainEqual(path)
  })
})
