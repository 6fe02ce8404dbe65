/**
 * `decodeCheckRequest` (the gRPC service's request deserializer: the generated decoder on a reader
 * that slices strings straight out of the Buffer) must decode exactly what the generated decoder
 * decodes, and fail exactly where it fails: on fixtures, on invalid UTF-8 of every kind, and on
 * thousands of mutated and truncated encodings.
 */
import { readdirSync } from 'node:fs'
import { BinaryWriter } from '@bufbuild/protobuf/wire'
import { describe, expect, it } from 'vitest'
import { CheckRequest } from '../../../src/gen/envoy/service/auth/v3/external_auth.js'
import { decodeCheckRequest } from '../../../src/server/grpc.js'
import { loadCheckRequest } from '../../helpers/fixtures.js'

const FIXTURES = readdirSync(new URL('../../fixtures/check-requests/', import.meta.url))
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.replace(/\.json$/, ''))

function outcome(f: () => CheckRequest): { ok: true; value: CheckRequest } | { ok: false; error: string } {
  try {
    return { ok: true, value: f() }
  } catch (err) {
    return { ok: false, error: err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err) }
  }
}

function expectSame(buf: Buffer): void {
  const a = outcome(() => CheckRequest.decode(buf))
  const b = outcome(() => decodeCheckRequest(buf))
  expect(b).toEqual(a)
}

/** A CheckRequest whose http header `key` has the raw bytes `value` (any bytes, valid UTF-8 or not). */
function withRawHeader(key: Uint8Array, value: Uint8Array, extra: (w: BinaryWriter) => void = () => {}): Buffer {
  const entry = new BinaryWriter().uint32(10).bytes(key).uint32(18).bytes(value).finish()
  const http = new BinaryWriter().uint32(18).string('GET').uint32(26).bytes(entry)
  extra(http)
  const request = new BinaryWriter().uint32(18).bytes(http.finish()).finish()
  const attrs = new BinaryWriter().uint32(34).bytes(request).finish()
  return Buffer.from(new BinaryWriter().uint32(10).bytes(attrs).finish())
}

const encoded = (name: string): Buffer => Buffer.from(CheckRequest.encode(loadCheckRequest(name)).finish())

describe('decodeCheckRequest', () => {
  it.each(FIXTURES)('fixture %s: the generated decoding', (name) => {
    const buf = encoded(name)
    expect(decodeCheckRequest(buf)).toEqual(CheckRequest.decode(buf))
  })

  const invalid: [string, number[]][] = [
    ['lone continuation byte', [0x61, 0x80, 0x62]],
    ['truncated 2-byte sequence', [0x61, 0xc3]],
    ['truncated 3-byte sequence', [0xe2, 0x82, 0x61]],
    ['truncated 4-byte sequence', [0xf0, 0x9f, 0x98]],
    ['overlong encoding', [0xc0, 0xaf, 0xe0, 0x80, 0xaf]],
    ['surrogate code point (CESU)', [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['0xFE / 0xFF bytes', [0xfe, 0xff, 0x41]],
    ['leading BOM', [0xef, 0xbb, 0xbf, 0x41]],
    ['Latin-1 text', [0x63, 0x61, 0x66, 0xe9]],
    ['valid multi-byte text', [...Buffer.from('Zoë 日本 🎉')]],
    ['NUL and controls', [0x00, 0x01, 0x7f]],
  ]
  for (const [name, bytes] of invalid) {
    for (const pad of [0, 40]) {
      it(`${name} (${pad === 0 ? 'short' : 'long'} string)`, () => {
        const v = Uint8Array.from([...Buffer.alloc(pad, 0x78), ...bytes])
        expectSame(withRawHeader(Buffer.from('x-test'), v))
        expectSame(withRawHeader(v, Buffer.from('value')))
      })
    }
  }

  it('every single-byte change of a real request decodes (or fails) the same way', () => {
    const base = encoded('bearer-admin')
    let compared = 0
    for (let i = 0; i < base.length; i++) {
      for (const b of [0x00, 0x7f, 0x80, 0xff, (base[i]! + 1) & 0xff]) {
        const m = Buffer.from(base)
        m[i] = b
        expectSame(m)
        compared++
      }
    }
    expect(compared).toBeGreaterThan(1000)
  })

  it('every truncation of a real request decodes (or fails) the same way', () => {
    const base = encoded('raw-header-map')
    for (let n = 0; n <= base.length; n++) expectSame(base.subarray(0, n))
  })

  it('random garbage decodes (or fails) the same way', () => {
    let seed = 42
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed
    }
    for (let k = 0; k < 2000; k++) {
      const len = rnd() % 64
      const b = Buffer.alloc(len)
      for (let i = 0; i < len; i++) b[i] = rnd() & 0xff
      expectSame(b)
    }
  })
})
