/**
 * The only table that maps a pipeline error code to the wire: gRPC status code of the
 * CheckResponse, HTTP status of the denied response, and the lower-snake status text that
 * Oathkeeper's error-handler `when.error` conditions use.
 * @module
 */
import type { PipelineErrorCode } from '../pipeline/errors.js'

/** google.rpc.Code values used here. */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const

export const STATUS = {
  ERR_BAD_REQUEST: { grpc: GrpcCode.INVALID_ARGUMENT, http: 400, when: 'bad_request' },
  ERR_UNAUTHENTICATED: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, when: 'unauthorized' },
  ERR_FORBIDDEN: { grpc: GrpcCode.PERMISSION_DENIED, http: 403, when: 'forbidden' },
  ERR_NO_RULE: { grpc: GrpcCode.NOT_FOUND, http: 404, when: 'not_found' },
  ERR_TOO_MANY_REQUESTS: { grpc: GrpcCode.RESOURCE_EXHAUSTED, http: 429, when: 'too_many_requests' },
  ERR_AMBIGUOUS_RULE: { grpc: GrpcCode.INTERNAL, http: 500, when: 'internal_server_error' },
  ERR_INTERNAL: { grpc: GrpcCode.INTERNAL, http: 500, when: 'internal_server_error' },
  ERR_UPSTREAM_UNAVAILABLE: { grpc: GrpcCode.UNAVAILABLE, http: 503, when: 'service_unavailable' },
} as const satisfies Record<PipelineErrorCode, { grpc: number; http: number; when: string }>

/** Every `when.error` name a rule may use. */
export const WHEN_ERROR_NAMES = [...new Set(Object.values(STATUS).map((s) => s.when))] as readonly string[]
