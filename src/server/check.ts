/**
 * The only proto-aware code of the decision path: CheckRequest → Decision → CheckResponse.
 * Every response sets `status` explicitly (an unset status is OK = allow in Envoy) and every
 * non-OK answer carries a `denied_response` with an explicit HTTP status (Envoy's default is 403).
 * Nothing here throws: faults become denials (security.md I1, I2).
 * @module
 */
import type { CheckRequest, CheckResponse } from '../gen/envoy/service/auth/v3/external_auth.js'
import { HeaderValueOption_HeaderAppendAction as AppendAction, type HeaderValueOption } from '../gen/envoy/config/core/v3/base.js'
import { asPipelineError, type PipelineError } from '../pipeline/errors.js'
import type { Decision } from '../pipeline/run.js'
import type { DeniedHttp } from '../pipeline/types.js'
import { GrpcCode, STATUS } from './status.js'

const EMPTY_BYTES = Buffer.alloc(0)

/**
 * Upstream request headers: `append: false` (the legacy BoolValue) is what Envoy honours for
 * `ok_response.headers` (its `append_action` support there was reverted, envoy PR #43442), so it
 * means overwrite; `append_action` is set to the same meaning for any Envoy that reads it.
 * Proven end to end by test/e2e/envoy.test.ts (a spoofed identity header is replaced).
 */
function overwrite(key: string, value: string): HeaderValueOption {
  return {
    header: { key, value, rawValue: EMPTY_BYTES },
    append: false,
    appendAction: AppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    keepEmptyValue: true,
  }
}

export function toCheckResponse(d: Decision): CheckResponse {
  if (d.kind === 'allow') {
    const headers: HeaderValueOption[] = []
    for (const [k, v] of d.session.header) headers.push(overwrite(k, v))
    return {
      status: { code: GrpcCode.OK, message: '', details: [] },
      okResponse: {
        headers,
        headersToRemove: d.removeHeaders as string[],
        responseHeadersToAdd: [],
        queryParametersToSet: [],
        queryParametersToRemove: [],
      },
      dynamicMetadata: { rule_id: d.ruleId, decision: 'allow', subject: d.session.subject },
    }
  }
  return denied(d.error, d.http, d.ruleId)
}

export function denied(error: PipelineError, http: DeniedHttp, ruleId: string | undefined): CheckResponse {
  const headers: HeaderValueOption[] = []
  for (const [k, v] of http.headers) headers.push(overwrite(k, v))
  const code: number = STATUS[error.code].grpc
  return {
    // Belt and braces: a denial can never carry OK, whatever a table entry says.
    status: { code: code === GrpcCode.OK ? GrpcCode.INTERNAL : code, message: error.reason, details: [] },
    deniedResponse: { status: { code: http.status }, headers, body: http.body },
    dynamicMetadata: { rule_id: ruleId ?? '', decision: 'deny', reason: error.reason },
  }
}

/** A denial built without any handler: for faults outside the pipeline (decode errors, bugs). */
export function internalDenial(err: unknown): CheckResponse {
  const e = asPipelineError(err)
  const status = STATUS[e.code].http
  return denied(
    e,
    {
      status,
      headers: [['content-type', 'application/json; charset=utf-8']],
      body: `{"error":{"code":${status},"status":"error","message":"The request could not be authorized"}}`,
    },
    undefined,
  )
}

/** Marker for a request whose bytes did not decode as a CheckRequest. */
export const MALFORMED: CheckRequest = Object.freeze({ attributes: undefined })
