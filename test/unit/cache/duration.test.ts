import { describe, expect, it } from 'vitest'
import { DurationError, DurationSchema, parseDuration } from '../../../src/config/duration.js'

const ns = 1e-6
const us = 1e-3
const s = 1000
const m = 60 * s
const h = 60 * m

// Valid cases from Go's time_test.go parseDurationTests (the signed ones are rejected here, see below).
const valid: { input: string; ms: number }[] = [
  { input: '0', ms: 0 },
  { input: '0s', ms: 0 },
  { input: '5s', ms: 5 * s },
  { input: '30s', ms: 30 * s },
  { input: '1478s', ms: 1478 * s },
  { input: '5.0s', ms: 5 * s },
  { input: '5.6s', ms: 5.6 * s },
  { input: '5.s', ms: 5 * s },
  { input: '.5s', ms: 0.5 * s },
  { input: '1.004s', ms: 1004 },
  { input: '1.0040s', ms: 1004 },
  { input: '100.00100s', ms: 100_001 },
  { input: '10ns', ms: 10 * ns },
  { input: '11us', ms: 11 * us },
  { input: '12\u00b5s', ms: 12 * us },
  { input: '12\u03bcs', ms: 12 * us },
  { input: '2us', ms: 0.002 },
  { input: '13ms', ms: 13 },
  { input: '250ms', ms: 250 },
  { input: '300ms', ms: 300 },
  { input: '14s', ms: 14 * s },
  { input: '15m', ms: 15 * m },
  { input: '16h', ms: 16 * h },
  { input: '1.5h', ms: 1.5 * h },
  { input: '3h30m', ms: 3 * h + 30 * m },
  { input: '1m30s', ms: 90 * s },
  { input: '1h2m3.5s', ms: h + 2 * m + 3500 },
  { input: '10.5s4m', ms: 4 * m + 10.5 * s },
  { input: '1h2m3s4ms5us6ns', ms: h + 2 * m + 3 * s + 4 + 0.005006 },
  { input: '39h9m14.425s', ms: 39 * h + 9 * m + 14_425 },
  { input: '52763797000ns', ms: 52_763.797 },
  { input: '0.100000000000000000000h', ms: 6 * m },
  { input: '0.830103483285477580700h', ms: 49 * m + 48 * s + 372.539827 },
  { input: '9223372036854775807ns', ms: 9_223_372_036_854.775807 },
  { input: '9223372036854775.807us', ms: 9_223_372_036_854.775807 },
  { input: '9223372036s854ms775us807ns', ms: 9_223_372_036_854.775807 },
]

const invalid: { name: string; input: string; message: RegExp }[] = [
  { name: 'the empty string', input: '', message: /empty/ },
  { name: 'a bare number other than 0', input: '3', message: /missing unit/ },
  { name: 'a unit without a number', input: 's', message: /expected a number/ },
  { name: 'a lone dot', input: '.', message: /expected a number/ },
  { name: 'a dot and a unit', input: '.s', message: /expected a number/ },
  { name: 'an unknown unit (days)', input: '1d', message: /unknown unit "d"/ },
  { name: 'a space inside', input: '1 s', message: /unknown unit " s"/ },
  { name: 'a leading space', input: ' 1s', message: /expected a number/ },
  { name: 'a trailing space', input: '1s ', message: /unknown unit "s "/ },
  { name: 'upper-case units', input: '1S', message: /unknown unit "S"/ },
  { name: 'non-ASCII garbage', input: '\x85\x85', message: /expected a number/ },
  { name: 'a negative duration', input: '-5s', message: /sign/ },
  { name: 'a negative zero', input: '-0', message: /sign/ },
  { name: 'an explicit plus sign', input: '+5s', message: /sign/ },
  { name: 'one nanosecond past 2^63-1', input: '9223372036854775808ns', message: /larger than/ },
  { name: 'overflow in microseconds', input: '9223372036854776us', message: /larger than/ },
  { name: 'overflow in a fraction', input: '9223372036854775.808us', message: /larger than/ },
  { name: 'overflow across components', input: '9223372036854ms775us808ns', message: /larger than/ },
  { name: 'three million hours', input: '3000000h', message: /larger than/ },
  { name: 'an integer millisecond count', input: '1500', message: /missing unit/ },
]

describe('parseDuration', () => {
  it.each(valid)('parses "$input" as $ms ms', ({ input, ms }) => {
    expect(parseDuration(input)).toBeCloseTo(ms, 6)
  })

  it('converts fractions exactly instead of through float64 (a third of an hour is 1 ns short of 20m)', () => {
    expect(parseDuration('0.3333333333333333333h')).toBeCloseTo(20 * m, 5)
    expect(parseDuration('0.3333333333333333333h')).toBeLessThan(20 * m)
  })

  it.each(invalid)('rejects $name', ({ input, message }) => {
    expect(() => parseDuration(input)).toThrow(DurationError)
    expect(() => parseDuration(input)).toThrow(message)
  })

  it('rejects values that are not strings', () => {
    expect(() => parseDuration(30 as unknown as string)).toThrow(DurationError)
  })

  it('reports parse errors as zod issues through DurationSchema', () => {
    expect(DurationSchema.parse('1m30s')).toBe(90_000)
    const r = DurationSchema.safeParse('1 day')
    expect(r.success).toBe(false)
    expect(r.error?.issues[0]?.message).toMatch(/invalid duration "1 day"/)
  })
})
