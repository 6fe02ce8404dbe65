/**
 * The only proto-aware code of the decision path: CheckRequest → Decision → CheckResponse.
 * Every response sets `status` explicitly (an unset status is OK = allow in Envoy) and every
 * non-OK answer carries a `denied_response` with an explicit HTTP status (Envoy's default is 403).
 * Nothing here throws: faults become denials (security.md I1, I2).
 * @module
 */
import { CheckResponse, type CheckRequest } from '../gen/envoy/service/auth/v3/external_auth.js'
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

/** Shared parts of every allow (frozen: answers are never modified after they are built). */
const OK_STATUS = Object.freeze({ code: GrpcCode.OK, message: '', details: Object.freeze([]) as unknown as [] })
const NONE = Object.freeze([]) as unknown as []

export function toCheckResponse(d: Decision): CheckResponse {
  if (d.kind === 'allow') {
    const headers: HeaderValueOption[] = []
    for (const [k, v] of d.session.header) headers.push(overwrite(k, v))
    return {
      status: OK_STATUS,
      okResponse: {
        headers,
        headersToRemove: d.removeHeaders as string[],
        responseHeadersToAdd: NONE,
        queryParametersToSet: NONE,
        queryParametersToRemove: NONE,
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

// ---------------------------------------------------------------------------------------------
// Encoding. grpc-js calls the service's `responseSerialize` once per answer; the generated
// `CheckResponse.encode` builds a tree of forked writers, a Struct wrapper and a Value wrapper per
// metadata entry, then copies the bytes into a Buffer (~3 µs for an allow with two headers). The
// answers built above use a handful of fields, written here back to front into one reused scratch
// buffer (each length is known once its message is written), then copied out once. The output is
// the generated encoder's, byte for byte (test/unit/server/encode-check-response.test.ts); any
// field outside that subset (details, rawValue, query parameters, non-string metadata, negative
// codes) falls back to the generated encoder.

/** Thrown inside the writer when a field is outside the fast subset. */
const UNSUPPORTED = Symbol('unsupported')

class BackwardWriter {
  buf = Buffer.allocUnsafe(4096)
  pos = 4096

  reset(): void {
    this.pos = this.buf.length
  }

  #room(n: number): void {
    if (this.pos >= n) return
    const used = this.buf.length - this.pos
    let size = this.buf.length * 2
    while (size - used < n) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, size - used, this.pos)
    this.buf = next
    this.pos = size - used
  }

  varint(v: number): void {
    if (!(v >= 0 && v <= 0xffffffff && Number.isInteger(v))) throw UNSUPPORTED
    this.#room(5)
    // Length first, then the bytes from the last one back.
    let n = 1
    for (let x = v >>> 7; x !== 0; x >>>= 7) n++
    let p = (this.pos -= n)
    let x = v
    while (x > 0x7f) {
      this.buf[p++] = (x & 0x7f) | 0x80
      x >>>= 7
    }
    this.buf[p] = x
  }

  /** A length-delimited field whose content starts at `this.pos` and ends at `end`. */
  delimited(end: number, tag: number): void {
    this.varint(end - this.pos)
    this.varint(tag)
  }

  string(tag: number, s: string): void {
    const len = s.length
    if (len <= 64) {
      // Short ASCII strings (header names, rule ids, subjects): a JS loop beats two native calls.
      this.#room(len)
      const buf = this.buf
      const start = this.pos - len
      let i = 0
      for (; i < len; i++) {
        const c = s.charCodeAt(i)
        if (c >= 0x80) break
        buf[start + i] = c
      }
      if (i === len) {
        this.pos = start
        this.delimited(start + len, tag)
        return
      }
    }
    const n = Buffer.byteLength(s, 'utf8')
    this.#room(n)
    this.pos -= n
    this.buf.write(s, this.pos, n, 'utf8')
    this.delimited(this.pos + n, tag)
  }

  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.buf.length - this.pos)
    this.buf.copy(out, 0, this.pos)
    return out
  }
}

const W = new BackwardWriter()

/** `responseSerialize` of the Check service: the generated encoding of `r`, faster. */
export function encodeCheckResponse(r: CheckResponse): Buffer {
  const w = W
  w.reset()
  try {
    // Fields back to front: dynamic_metadata (4), ok_response (3), denied_response (2), status (1).
    if (r.dynamicMetadata !== undefined) {
      const end = w.pos
      writeStruct(w, r.dynamicMetadata)
      w.delimited(end, 34)
    }
    if (r.okResponse !== undefined) {
      const ok = r.okResponse
      if (ok.responseHeadersToAdd.length !== 0 || ok.queryParametersToSet.length !== 0 || ok.queryParametersToRemove.length !== 0) throw UNSUPPORTED
      if (ok.dynamicMetadata !== undefined) throw UNSUPPORTED
      const end = w.pos
      // headers (2) then headers_to_remove (5): written back to front.
      const rm = ok.headersToRemove
      for (let i = rm.length - 1; i >= 0; i--) w.string(42, rm[i]!)
      writeHeaders(w, ok.headers, 18)
      w.delimited(end, 26)
    }
    if (r.deniedResponse !== undefined) {
      const dr = r.deniedResponse
      const end = w.pos
      if (dr.body !== '') w.string(26, dr.body)
      writeHeaders(w, dr.headers, 18)
      if (dr.status !== undefined) {
        const e = w.pos
        if (dr.status.code !== 0) {
          w.varint(dr.status.code)
          w.varint(8)
        }
        w.delimited(e, 10)
      }
      w.delimited(end, 18)
    }
    if (r.status !== undefined) {
      const st = r.status
      if (st.details.length !== 0) throw UNSUPPORTED
      const end = w.pos
      if (st.message !== '') w.string(18, st.message)
      if (st.code !== 0) {
        w.varint(st.code)
        w.varint(8)
      }
      w.delimited(end, 10)
    }
    return w.finish()
  } catch (err) {
    if (err !== UNSUPPORTED) throw err
    return Buffer.from(CheckResponse.encode(r).finish())
  }
}

function writeHeaders(w: BackwardWriter, headers: readonly HeaderValueOption[], tag: number): void {
  for (let i = headers.length - 1; i >= 0; i--) {
    const h = headers[i]!
    const end = w.pos
    // header (1), append (2, BoolValue), append_action (3), keep_empty_value (4): back to front.
    if (h.keepEmptyValue !== false) {
      w.varint(1)
      w.varint(32)
    }
    if (h.appendAction !== 0) {
      w.varint(h.appendAction)
      w.varint(24)
    }
    if (h.append !== undefined) {
      const e = w.pos
      if (h.append !== false) {
        w.varint(1)
        w.varint(8)
      }
      w.delimited(e, 18)
    }
    if (h.header !== undefined) {
      const hv = h.header
      if (hv.rawValue.length !== 0) throw UNSUPPORTED
      const e = w.pos
      if (hv.value !== '') w.string(18, hv.value)
      if (hv.key !== '') w.string(10, hv.key)
      w.delimited(e, 10)
    }
    w.delimited(end, tag)
  }
}

/** A google.protobuf.Struct of string values (entries with `undefined` values are skipped). */
function writeStruct(w: BackwardWriter, fields: { readonly [key: string]: unknown }): void {
  const keys = Object.keys(fields)
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i]!
    const v = fields[key]
    if (v === undefined) continue
    if (typeof v !== 'string') throw UNSUPPORTED
    const end = w.pos
    // Struct.FieldsEntry: key (1), value (2) = Value { string_value (3) }.
    const e = w.pos
    w.string(26, v)
    w.delimited(e, 18)
    if (key !== '') w.string(10, key)
    w.delimited(end, 10)
  }
}

/** Marker for a request whose bytes did not decode as a CheckRequest. */
export const MALFORMED: CheckRequest = Object.freeze({ attributes: undefined })
