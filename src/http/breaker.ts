/**
 * A per-origin circuit breaker over consecutive failed attempts.
 *
 *     closed ──(failure_threshold consecutive failures)──▶ open
 *     open ──(open_for elapsed; next call becomes the one probe)──▶ half_open
 *     half_open ──(probe succeeds)──▶ closed      half_open ──(probe fails)──▶ open
 *
 * While open, and while a probe is in flight, calls are rejected without touching the network
 * (`circuit_open`). Only the probe's outcome moves a half-open breaker; results of attempts that
 * were admitted before the breaker opened are ignored once it has, so a late success cannot close
 * it. An outcome that says nothing about the origin's health (caller abort, body over the cap)
 * is `neutral`: it frees the probe slot and leaves the state as it is.
 * @module
 */

export type BreakerState = 'closed' | 'open' | 'half_open'

/** What `admit` hands out: a normal attempt, or the half-open probe. */
export type BreakerTicket = 'normal' | 'probe'

export type AttemptOutcome = 'success' | 'failure' | 'neutral'

export class CircuitBreaker {
  private current: BreakerState = 'closed'
  private failures = 0
  private openedAt = 0
  private probing = false

  constructor(
    private readonly failureThreshold: number,
    private readonly openForMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The state as a caller would see it now (an open breaker past `open_for` reads half-open). */
  get state(): BreakerState {
    if (this.current === 'open' && this.now() - this.openedAt >= this.openForMs) return 'half_open'
    return this.current
  }

  /** A ticket for one attempt, or `undefined` if the attempt must not be made. */
  admit(): BreakerTicket | undefined {
    switch (this.current) {
      case 'closed':
        return 'normal'
      case 'open':
        if (this.now() - this.openedAt < this.openForMs) return undefined
        this.current = 'half_open'
        this.probing = true
        return 'probe'
      case 'half_open':
        if (this.probing) return undefined
        this.probing = true
        return 'probe'
    }
  }

  /** Reports how the attempt admitted with `ticket` ended. */
  record(ticket: BreakerTicket, outcome: AttemptOutcome): void {
    if (ticket === 'probe') {
      this.probing = false
      if (outcome === 'success') this.close()
      else if (outcome === 'failure') this.open()
      return
    }
    if (this.current !== 'closed') return
    if (outcome === 'success') this.failures = 0
    else if (outcome === 'failure' && ++this.failures >= this.failureThreshold) this.open()
  }

  private open(): void {
    this.current = 'open'
    this.openedAt = this.now()
    this.failures = 0
  }

  private close(): void {
    this.current = 'closed'
    this.failures = 0
  }
}
