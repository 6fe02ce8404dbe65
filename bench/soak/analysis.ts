/**
 * The numbers the memory verdicts rest on: least-squares slopes and the plateau criterion.
 *
 * Plateau criterion (in-process proof): over the second half of the post-GC heap samples, and only
 * once the caches are full, the least-squares slope of `heapUsed` against the number of
 * credentials processed must be below **1 % of the caches' reserved bytes per 100 000
 * credentials**. With the 4 × 6.1 MiB of caches of the default scenarios that is ≈ 250 KiB per
 * 100 000 credentials (≈ 2.5 bytes per credential); keeping anything per credential (a 43-byte
 * key, a small object) is ≥ 20× above it, keeping the credential itself ≈ 400× above it. The x-axis
 * is a count, not wall-clock time, so the verdict does not depend on how fast the machine is.
 * @module
 */

/** Least-squares slope of y against x (units of y per unit of x); 0 for fewer than 2 distinct x. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length
  if (n < 2) return 0
  let mx = 0
  let my = 0
  for (const [x, y] of points) {
    mx += x
    my += y
  }
  mx /= n
  my /= n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/** The last `fraction` of the points (at least 2 when there are 2). */
export function tail<T>(points: readonly T[], fraction = 0.5): T[] {
  const from = Math.min(Math.floor(points.length * (1 - fraction)), Math.max(0, points.length - 2))
  return points.slice(from)
}

export interface PlateauVerdict {
  /** Least-squares slope over the tail, bytes per credential. */
  readonly bytesPerToken: number
  /** The same, per 100 000 credentials. */
  readonly bytesPer100k: number
  /** The threshold, per 100 000 credentials. */
  readonly thresholdPer100k: number
  /** Points the slope was computed over. */
  readonly points: number
  readonly ok: boolean
}

/** 1 % of the reserved cache bytes per 100 000 credentials. */
export const PLATEAU_FRACTION_PER_100K = 0.01

/**
 * Plateau verdict for `[credentials, heapUsedBytes]` samples against the caches' reserved bytes,
 * over the samples from the later of (the second half, the first sample at or after `fullAt`
 * credentials): the caches must be full where the slope is measured, or their filling would be
 * mistaken for a leak.
 */
export function plateau(samples: readonly (readonly [number, number])[], reservedBytes: number, fullAt = 0): PlateauVerdict {
  const t = tail(samples, 0.5).filter(([x]) => x >= fullAt)
  const bytesPerToken = slope(t)
  const thresholdPer100k = PLATEAU_FRACTION_PER_100K * reservedBytes
  return {
    bytesPerToken,
    bytesPer100k: bytesPerToken * 100_000,
    thresholdPer100k,
    points: t.length,
    ok: t.length >= 2 && bytesPerToken * 100_000 < thresholdPer100k,
  }
}

/**
 * The first sample's x at which the caches hold at least `fraction` of `capacityBytes` (their
 * positive + negative byte limits), or `Infinity` if they never do.
 */
export function filledAt(samples: readonly { readonly tokens: number; readonly cacheBytes: number }[], capacityBytes: number, fraction = 0.95): number {
  return samples.find((s) => s.cacheBytes >= fraction * capacityBytes)?.tokens ?? Number.POSITIVE_INFINITY
}

export const MB = 1024 * 1024

/** `12.3` for 12.3 MiB. */
export function mb(bytes: number, digits = 1): string {
  return (bytes / MB).toFixed(digits)
}
