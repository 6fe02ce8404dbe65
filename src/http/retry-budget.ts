/**
 * A per-origin retry budget (Finagle's `RetryBudget`, gRPC's retry throttling): over a sliding
 * window of the last 10 s, retries may not exceed `ratio × calls + minPerSecond × 10`. When a
 * dependency fails every call, retries therefore add at most `ratio` (20 %) to its traffic, plus a
 * small constant, instead of multiplying it by `max_retries + 1`.
 *
 * The window is ten one-second buckets in a ring; a bucket is cleared when the clock has moved past
 * it. Memory is fixed; `recordCall` and `tryRetry` are O(buckets).
 * @module
 */

const BUCKETS = 10
const BUCKET_MS = 1000

export class RetryBudget {
  private readonly calls = new Float64Array(BUCKETS)
  private readonly retries = new Float64Array(BUCKETS)
  /** The absolute bucket number (`floor(now / BUCKET_MS)`) each slot currently holds. */
  private readonly epochs = new Float64Array(BUCKETS).fill(-1)
  private readonly floor: number

  constructor(
    private readonly ratio: number,
    minPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.floor = minPerSecond * (BUCKETS * BUCKET_MS / 1000)
  }

  /** Counts one call that is about to be sent (first attempts only). */
  recordCall(): void {
    this.calls[this.slot()]! += 1
  }

  /** Takes one retry from the budget if there is one left; `false` means do not retry. */
  tryRetry(): boolean {
    const slot = this.slot()
    let calls = 0
    let retries = 0
    for (let i = 0; i < BUCKETS; i++) {
      calls += this.calls[i]!
      retries += this.retries[i]!
    }
    if (retries + 1 > this.floor + this.ratio * calls) return false
    this.retries[slot]! += 1
    return true
  }

  /** The current bucket's slot, after clearing every slot that fell out of the window. */
  private slot(): number {
    const epoch = Math.floor(this.now() / BUCKET_MS)
    for (let i = 0; i < BUCKETS; i++) {
      const e = this.epochs[i]!
      if (e !== -1 && epoch - e >= BUCKETS) {
        this.calls[i] = 0
        this.retries[i] = 0
        this.epochs[i] = -1
      }
    }
    const slot = epoch % BUCKETS
    if (this.epochs[slot] !== epoch) {
      this.calls[slot] = 0
      this.retries[slot] = 0
      this.epochs[slot] = epoch
    }
    return slot
  }
}
