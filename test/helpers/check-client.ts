/**
 * A real grpc-js client for Authorization/Check, plus the fail-closed invariant every test answer
 * is checked against (security.md I1/I2): OK only with an ok_response, anything else a denial with
 * an explicit HTTP status, never both, never neither.
 */
import * as grpc from '@grpc/grpc-js'
import { expect } from 'vitest'
import {
  AuthorizationService,
  CheckRequest,
  CheckResponse,
} from '../../src/gen/envoy/service/auth/v3/external_auth.js'

export interface CheckClient {
  check(req: CheckRequest, opts?: { deadlineMs?: number }): Promise<CheckResponse>
  /** Sends raw bytes as the request message (for malformed-input tests). */
  checkRaw(bytes: Buffer): Promise<CheckResponse>
  close(): void
}

const Client = grpc.makeGenericClientConstructor(AuthorizationService, 'Authorization')
const RawClient = grpc.makeGenericClientConstructor(
  { check: { ...AuthorizationService.check, requestSerialize: (b: Buffer) => b } },
  'AuthorizationRaw',
)

export function checkClient(port: number): CheckClient {
  const target = `127.0.0.1:${port}`
  const client = new Client(target, grpc.credentials.createInsecure())
  const raw = new RawClient(target, grpc.credentials.createInsecure())
  const call = (c: grpc.Client, req: unknown, deadlineMs?: number): Promise<CheckResponse> =>
    new Promise((resolve, reject) => {
      const opts: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs }
      ;(c as unknown as { check: (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<CheckResponse>) => void }).check(
        req,
        new grpc.Metadata(),
        opts,
        (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(assertInvariant(res))),
      )
    })
  return {
    check: (req, o) => call(client, req, o?.deadlineMs),
    checkRaw: (bytes) => call(raw, bytes),
    close: () => {
      client.close()
      raw.close()
    },
  }
}

/** Every answer of the server must satisfy this, whatever the test expects on top. */
export function assertInvariant(res: CheckResponse): CheckResponse {
  expect(res.status, 'status must always be set').toBeDefined()
  if (res.status!.code === 0) {
    expect(res.okResponse, 'OK needs an ok_response').toBeDefined()
    expect(res.deniedResponse, 'OK must not carry a denied_response').toBeUndefined()
  } else {
    expect(res.deniedResponse, 'a non-OK status needs a denied_response').toBeDefined()
    expect(res.okResponse).toBeUndefined()
    expect(res.deniedResponse!.status?.code ?? 0, 'denied_response needs an explicit HTTP status').toBeGreaterThanOrEqual(300)
  }
  return res
}

/** Builds a CheckRequest the way Envoy sends one (headers map with pseudo-headers). */
export function httpRequest(o: {
  method?: string
  scheme?: string
  host?: string
  path: string
  headers?: Record<string, string>
  source?: string
}): CheckRequest {
  const method = o.method ?? 'GET'
  const host = o.host ?? 'api.example.com'
  const scheme = o.scheme ?? 'https'
  return CheckRequest.fromJSON({
    attributes: {
      source: { address: { socketAddress: { address: o.source ?? '10.0.0.7', portValue: 40000 } } },
      request: {
        http: {
          id: 'req-1',
          method,
          scheme,
          host,
          path: o.path,
          protocol: 'HTTP/1.1',
          headers: { ':authority': host, ':method': method, ':path': o.path, ':scheme': scheme, ...(o.headers ?? {}) },
        },
      },
    },
  })
}

export function headerOf(res: CheckResponse, name: string): string | undefined {
  const all = [...(res.okResponse?.headers ?? []), ...(res.deniedResponse?.headers ?? [])]
  return all.find((h) => h.header?.key.toLowerCase() === name.toLowerCase())?.header?.value
}
