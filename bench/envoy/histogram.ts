/**
 * A latency histogram in the manner of HdrHistogram: integer microseconds, exact below 256 µs,
 * above that 128 sub-buckets per power of two (every recorded value is reported within 0.8 %,
 * always rounded up: a percentile is the highest value its bucket can hold). Fixed memory (a few
 * thousand counters up to ~2^31 µs), O(1) record, mergeable across processes (`toJSON` /
 * `fromJSON` as sparse pairs).
 * @module
 */

const SUB_BITS = 7
const SUB = 1 << SUB_BITS // 128
/** Bucket count covering values up to 2^31 µs (~36 min); larger values are clamped. */
const BUCKETS = (31 - SUB_BITS) * SUB + 2 * SUB
const MAX_VALUE = 2 ** 31 - 1

function indexOf(us: number): number {
  const v = Math.min(MAX_VALUE, Math.max(0, Math.ceil(us)))
  if (v < 2 * SUB) return v
  const shift = 31 - Math.clz32(v) - SUB_BITS // floor(log2 v) - 7 ≥ 1
  return shift * SUB + (v >>> shift)
}

/** The highest value bucket `i` holds. */
function highestOf(i: number): number {
  if (i < 2 * SUB) return i
  const shift = Math.floor(i / SUB) - 1
  const m = i - shift * SUB
  return (m + 1) * 2 ** shift - 1
}

export interface HistogramJSON {
  /** [bucket index, count] for every non-empty bucket. */
  readonly buckets: readonly (readonly [number, number])[]
  readonly count: number
  readonly sumUs: number
  readonly maxUs: number
}

export class Histogram {
  readonly #counts = new Float64Array(BUCKETS)
  #count = 0
  #sum = 0
  #max = 0

  /** Records one value in microseconds. */
  record(us: number): void {
    this.#counts[indexOf(us)]!++
    this.#count++
    this.#sum += us
    if (us > this.#max) this.#max = us
  }

  get count(): number {
    return this.#count
  }

  get meanUs(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count
  }

  get maxUs(): number {
    return this.#max
  }

  /** The value at quantile `q` (0..1), in µs, rounded up to its bucket's highest value. */
  quantileUs(q: number): number {
    if (this.#count === 0) return 0
    const target = Math.max(1, Math.ceil(q * this.#count))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!
      if (seen >= target) return Math.min(highestOf(i), Math.ceil(this.#max))
    }
    return Math.ceil(this.#max)
  }

  merge(other: Histogram): this {
    const o = other.toJSON()
    for (const [i, c] of o.buckets) this.#counts[i]! += c
    this.#count += o.count
    this.#sum += o.sumUs
    if (o.maxUs > this.#max) this.#max = o.maxUs
    return this
  }

  toJSON(): HistogramJSON {
    const buckets: [number, number][] = []
    for (let i = 0; i < BUCKETS; i++) if (this.#counts[i]! > 0) buckets.push([i, this.#counts[i]!])
    return { buckets, count: this.#count, sumUs: this.#sum, maxUs: this.#max }
  }

  static fromJSON(j: HistogramJSON): Histogram {
    const h = new Histogram()
    for (const [i, c] of j.buckets) h.#counts[i]! += c
    h.#count = j.count
    h.#sum = j.sumUs
    h.#max = j.maxUs
    return h
  }
}

/** The percentiles every report shows. */
export interface Percentiles {
  readonly count: number
  readonly meanMs: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly p9999Ms: number
  readonly maxMs: number
}

export function percentiles(h: Histogram): Percentiles {
  const ms = (us: number): number => Math.round(us) / 1000
  return {
    count: h.count,
    meanMs: ms(h.meanUs),
    p50Ms: ms(h.quantileUs(0.5)),
    p90Ms: ms(h.quantileUs(0.9)),
    p99Ms: ms(h.quantileUs(0.99)),
    p999Ms: ms(h.quantileUs(0.999)),
    p9999Ms: ms(h.quantileUs(0.9999)),
    maxMs: ms(h.maxUs),
  }
}
