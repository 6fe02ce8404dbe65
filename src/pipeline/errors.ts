/**
 * Stage errors: the closed set of outcomes a request can be denied with. Every code is mapped to a
 * gRPC status and an HTTP status in exactly one place, `src/server/status.ts`.
 * @module
 */

export type PipelineErrorCode =
  | 'ERR_BAD_REQUEST'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_FORBIDDEN'
  | 'ERR_NO_RULE'
  | 'ERR_TOO_MANY_REQUESTS'
  | 'ERR_AMBIGUOUS_RULE'
  | 'ERR_INTERNAL'
  | 'ERR_UPSTREAM_UNAVAILABLE'

/**
 * A denial. `message` is safe to show to clients and to log: it never contains a credential.
 * `reason` is a stable, bounded identifier for logs and metrics (Oathkeeper's `reason_id`).
 */
export class PipelineError extends Error {
  readonly code: PipelineErrorCode
  readonly reason: string
  /** Headers the error handlers copy to the denied response (e.g. `Retry-After`). */
  readonly headers: readonly (readonly [string, string])[]

  constructor(
    code: PipelineErrorCode,
    reason: string,
    message: string,
    options?: { cause?: unknown; headers?: readonly (readonly [string, string])[] },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PipelineError'
    this.code = code
    this.reason = reason
    this.headers = options?.headers ?? []
  }
}

/** Turns anything thrown inside the pipeline into a PipelineError; unknown faults are internal. */
export function asPipelineError(err: unknown): PipelineError {
  if (err instanceof PipelineError) return err
  return new PipelineError('ERR_INTERNAL', 'internal_error', 'An internal error occurred', { cause: err })
}
