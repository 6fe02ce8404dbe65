/**
 * `encodeCheckResponse` (the gRPC service's response serializer) must write exactly the bytes of
 * the generated `CheckResponse.encode`, for every answer the server builds and for shapes outside
 * its fast subset (which fall back to the generated encoder).
 */
import { describe, expect, it } from 'vitest'
import { CheckResponse } from '../../../src/gen/envoy/service/auth/v3/external_auth.js'
import { HeaderValueOption_HeaderAppendAction as AppendAction } from '../../../src/gen/envoy/config/core/v3/base.js'
import { PipelineError } from '../../../src/pipeline/errors.js'
import type { Decision } from '../../../src/pipeline/run.js'
import { denied, encodeCheckResponse, internalDenial, toCheckResponse } from '../../../src/server/check.js'
import { shutdownDenial } from '../../../src/server/lifecycle.js'

const generated = (r: CheckResponse): Buffer => Buffer.from(CheckResponse.encode(r).finish())

function allow(headers: [string, string][], removeHeaders: string[] = [], subject = 'alice'): Decision {
  return {
    kind: 'allow',
    ruleId: 'rule-1',
    session: { subject, extra: {}, header: new Map(headers), matchContext: { regexpCaptureGroups: [], request: undefined as never } },
    removeHeaders,
  }
}

const cases: [string, CheckResponse][] = [
  ['allow, no headers', toCheckResponse(allow([]))],
  ['allow, two headers and removals', toCheckResponse(allow([['x-user', 'alice'], ['x-user-email', 'alice@example.com']], ['x-api-key', 'x_user']))],
  ['allow, empty header value and empty subject', toCheckResponse(allow([['x-user', '']], [], ''))],
  ['allow, non-ASCII and lone surrogates', toCheckResponse(allow([['x-name', 'Zoë 日本 🎉'], ['x-odd', 'a\uD800b']], [], 'üser\uDC00'))],
  ['allow, 5 000 headers (scratch buffer growth)', toCheckResponse(allow(Array.from({ length: 5000 }, (_, i): [string, string] => [`x-h${i}`, 'v'.repeat(i % 300)])))],
  [
    'denial with headers and body',
    denied(new PipelineError('ERR_UNAUTHENTICATED', 'jwt_expired', 'expired'), { status: 401, headers: [['www-authenticate', 'Bearer realm="x"'], ['content-type', 'application/json']], body: '{"error":{"code":401}}' }, 'rule-9'),
  ],
  ['denial without rule, empty body', denied(new PipelineError('ERR_NO_RULE', 'no_rule', 'none'), { status: 404, headers: [], body: '' }, undefined)],
  ['internal denial', internalDenial(new Error('boom'))],
  ['shutdown denial', shutdownDenial()],
  ['empty message', {}],
  ['status only, code 0', { status: { code: 0, message: '', details: [] } }],
  [
    'ok response with every list empty and append unset / true',
    {
      status: { code: 0, message: 'ok', details: [] },
      okResponse: {
        headers: [
          { header: { key: 'a', value: 'b', rawValue: Buffer.alloc(0) }, append: undefined, appendAction: AppendAction.APPEND_IF_EXISTS_OR_ADD, keepEmptyValue: false },
          { header: undefined, append: true, appendAction: AppendAction.ADD_IF_ABSENT, keepEmptyValue: true },
        ],
        headersToRemove: [''],
        responseHeadersToAdd: [],
        queryParametersToSet: [],
        queryParametersToRemove: [],
      },
    },
  ],
  // Outside the fast subset: the generated encoder answers.
  ['metadata with non-string values', { status: { code: 0, message: '', details: [] }, dynamicMetadata: { n: 1, b: true, o: { x: 'y' }, l: ['a'], z: null, u: undefined } }],
  ['raw header value', { okResponse: { headers: [{ header: { key: 'k', value: '', rawValue: Buffer.from('raw') }, appendAction: 0, keepEmptyValue: false }], headersToRemove: [], responseHeadersToAdd: [], queryParametersToSet: [], queryParametersToRemove: [] } }],
  ['query parameters', { okResponse: { headers: [], headersToRemove: [], responseHeadersToAdd: [], queryParametersToSet: [], queryParametersToRemove: ['q'] } }],
  ['negative status code', { status: { code: -1, message: '', details: [] } }],
  ['status details', { status: { code: 13, message: 'x', details: [{ typeUrl: 'type.googleapis.com/x', value: Buffer.from('v') }] } }],
]

describe('encodeCheckResponse', () => {
  it.each(cases)('%s: the generated encoding, byte for byte', (_name, r) => {
    const fast = encodeCheckResponse(r)
    expect(fast.equals(generated(r))).toBe(true)
    // And it decodes back to the same message.
    expect(CheckResponse.decode(fast)).toEqual(CheckResponse.decode(generated(r)))
  })

  it('returns a fresh buffer per call (the scratch buffer is reused)', () => {
    const a = encodeCheckResponse(toCheckResponse(allow([['x-user', 'a']])))
    const copy = Buffer.from(a)
    encodeCheckResponse(toCheckResponse(allow([['x-user', 'bbbbbbbb']])))
    expect(a.equals(copy)).toBe(true)
  })
})
