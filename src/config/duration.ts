/**
 * Go duration strings (`time.ParseDuration`), the format Oathkeeper's configuration uses for every
 * `ttl`, `timeout` and interval: a sequence of decimal numbers, each with an optional fraction and a
 * mandatory unit, e.g. "300ms", "1.5h", "1h2m3.5s". Units: `ns`, `us` (also `µs` U+00B5 and `μs`
 * U+03BC), `ms`, `s`, `m`, `h`. As in Go, a bare "0" is zero and every other number needs a unit.
 *
 * Differences from Go, on purpose: a sign is rejected (Portcullis has no use for negative
 * durations, and "-0s" is more likely a typo than a zero), and fractions are converted exactly
 * (Go multiplies in float64, which can differ by a nanosecond on long fractions). The range is Go's:
 * at most 2^63−1 ns (about 292 years); larger values throw instead of wrapping.
 * @module
 */
import { z } from 'zod'

/** Nanoseconds per unit, Go's `unitMap`. */
const UNIT_NS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n],
  ['\u03bcs', 1_000n],
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
])

const MAX_NS = (1n << 63n) - 1n
const NS_PER_MS = 1_000_000n

/** One `number unit` component: integer digits, optional fraction, unit (anything but digits and '.'). */
const COMPONENT = /^(\d*)(?:\.(\d*))?([^\d.]*)/

/** Thrown for strings `parseDuration` rejects; the message quotes the input as Go does. */
export class DurationError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DurationError'
  }
}

/**
 * Parses a Go duration string and returns it in milliseconds. The result may be fractional
 * ("2us" → 0.002). Throws `DurationError` on anything `time.ParseDuration` rejects, on a sign, and
 * on values above 2^63−1 ns.
 *
 * @example parseDuration('1m30s') // 90_000
 */
export function parseDuration(input: string): number {
  if (typeof input !== 'string') throw new DurationError(`invalid duration ${String(input)}: not a string`)
  const quoted = JSON.stringify(input)
  if (input.startsWith('-') || input.startsWith('+')) {
    throw new DurationError(`invalid duration ${quoted}: a sign is not allowed (durations are never negative)`)
  }
  if (input === '0') return 0
  if (input === '') throw new DurationError('invalid duration "": empty')

  let totalNs = 0n
  let rest = input
  while (rest !== '') {
    const m = COMPONENT.exec(rest)
    const [whole = '', int = '', frac, unit = ''] = m ?? []
    if (int === '' && (frac === undefined || frac === '')) {
      throw new DurationError(`invalid duration ${quoted}: expected a number at ${JSON.stringify(rest)}`)
    }
    if (unit === '') throw new DurationError(`invalid duration ${quoted}: missing unit`)
    const perUnit = UNIT_NS.get(unit)
    if (perUnit === undefined) {
      const known = 'use ns, us, ms, s, m or h'
      throw new DurationError(`invalid duration ${quoted}: unknown unit ${JSON.stringify(unit)} (${known})`)
    }
    totalNs += componentNs(int, frac ?? '', perUnit)
    if (totalNs > MAX_NS) throw new DurationError(`invalid duration ${quoted}: larger than 2^63-1 ns`)
    rest = rest.slice(whole.length)
  }
  // Whole milliseconds are exact in a double up to 2^53; below that, fractions are at most 1 ns off.
  return Number(totalNs / NS_PER_MS) + Number(totalNs % NS_PER_MS) / 1e6
}

/** `int.frac` × unit in nanoseconds, truncating below 1 ns (as Go does). */
function componentNs(int: string, frac: string, perUnit: bigint): bigint {
  const whole = int === '' ? 0n : BigInt(int) * perUnit
  if (whole > MAX_NS) return whole // caller reports overflow
  if (frac === '') return whole
  // Digits beyond nanosecond resolution of the largest unit (h: 3.6e12 ns) cannot matter.
  const digits = frac.slice(0, 16)
  return whole + (BigInt(digits) * perUnit) / 10n ** BigInt(digits.length)
}

/**
 * A zod schema for a Go duration string that outputs milliseconds, for configuration files. The
 * parse error becomes a zod issue, so it is reported with the key's path at load time.
 * Use `.prefault("30s")` (not `.default`) for defaults: zod 4's `.default` skips the transform.
 */
export const DurationSchema = z.string().transform((s, ctx) => {
  try {
    return parseDuration(s)
  } catch (err) {
    ctx.issues.push({ code: 'custom', message: (err as Error).message, input: s })
    return z.NEVER
  }
})
