/**
 * The do-nothing Check server: the ceiling Portcullis is measured against. Same grpc-js (the one
 * in node_modules), same generated service definition, same server options as
 * src/server/grpc.ts; the handler answers every Check at once with a fixed OK CheckResponse.
 *
 * Modes (`--mode`):
 * - `decode` (default, the ceiling of the targets): the request is decoded with the generated
 *   `CheckRequest.decode` and the fixed response encoded with `CheckResponse.encode`, as any
 *   grpc-js implementation of the service does: what is left of Portcullis' cost above it is the
 *   authorization work itself.
 * - `raw`: request bytes are not decoded and the response is pre-encoded once: grpc-js' transport
 *   cost alone (reported for reference; no server can do less per call in Node).
 *
 * Usage: `node dist/bench/baseline-server.js [--port 0] [--host 127.0.0.1] [--mode decode|raw]`.
 * Prints one line `{"msg":"baseline listening","port":N,"mode":"decode"}` on stdout; exits on
 * SIGTERM/SIGINT.
 * @module
 */
import * as grpc from '@grpc/grpc-js'
import { parseArgs } from 'node:util'
import { AuthorizationService, CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth.js'

export type BaselineMode = 'decode' | 'raw'

/** A plain allow, as a do-nothing implementation would answer. */
export const FIXED_OK: CheckResponse = {
  status: { code: 0, message: '', details: [] },
  okResponse: {
    headers: [],
    headersToRemove: [],
    responseHeadersToAdd: [],
    queryParametersToSet: [],
    queryParametersToRemove: [],
  },
}

export async function startBaseline(host: string, port: number, mode: BaselineMode): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  })
  if (mode === 'raw') {
    const bytes = Buffer.from(CheckResponse.encode(FIXED_OK).finish())
    const service = {
      check: {
        ...AuthorizationService.check,
        requestDeserialize: (b: Buffer): Buffer => b,
        responseSerialize: (b: Buffer): Buffer => b,
      },
    }
    server.addService(service, {
      check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, bytes),
    })
  } else {
    server.addService(AuthorizationService, {
      check: (_call: grpc.ServerUnaryCall<unknown, CheckResponse>, cb: grpc.sendUnaryData<CheckResponse>) => cb(null, FIXED_OK),
    })
  }
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  )
  return { port: bound, server }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      mode: { type: 'string', default: 'decode' },
    },
  })
  const mode = values.mode
  if (mode !== 'decode' && mode !== 'raw') throw new Error(`--mode must be decode or raw, not ${mode}`)
  const { port, server } = await startBaseline(values.host, Number(values.port), mode)
  process.stdout.write(`${JSON.stringify({ msg: 'baseline listening', port, mode, pid: process.pid })}\n`)
  const stop = (): void => {
    server.forceShutdown()
    process.exit(0)
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
