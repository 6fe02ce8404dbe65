/**
 * toRequestView / matchUrl: fixtures shaped as Envoy sends them, security.md list A (A1, A12,
 * A13, A48), both header encodings (`headers` map and `header_map` raw bytes), caps, and the
 * rule that every bad input is a PipelineError('ERR_BAD_REQUEST'), never another exception.
 */
import { describe, expect, it } from 'vitest'
import { CheckRequest } from '../../../src/gen/envoy/service/auth/v3/external_auth.js'
import { PipelineError } from '../../../src/pipeline/errors.js'
import type { RequestView } from '../../../src/pipeline/types.js'
import { DEFAULT_HEADER_LIMITS, matchUrl, toRequestView } from '../../../src/request/view.js'
import { loadCheckRequest } from '../../helpers/fixtures.js'

/** A minimal valid request in proto3 JSON; `http` fields override. */
function request(http: Record<string, unknown> = {}, attributes: Record<string, unknown> = {}): CheckRequest {
  return CheckRequest.fromJSON({
    attributes: {
      request: {
        http: { id: '1', method: 'GET', scheme: 'https', host: 'api.example.com', path: '/x', ...http },
      },
      ...attributes,
    },
  })
}

/** Runs toRequestView and returns the PipelineError it must throw. */
function rejection(req: CheckRequest): { code: string; reason: string; message: string } {
  try {
    toRequestView(req)
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError)
    const e = err as PipelineError
    return { code: e.code, reason: e.reason, message: e.message }
  }
  throw new Error('toRequestView did not throw')
}

function rawHeader(key: string, value: string | Buffer): { key: string; rawValue: string } {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  return { key, rawValue: bytes.toString('base64') }
}

describe('toRequestView: fixtures', () => {
  it('anonymous-get: builds the whole view', () => {
    const view = toRequestView(loadCheckRequest('anonymous-get'))
    expect(view).toEqual({
      id: '13283425133216491873',
      method: 'GET',
      scheme: 'https',
      host: 'api.example.com',
      path: '/public/index.html',
      query: 'lang=en',
      headers: new Map([
        [':authority', 'api.example.com'],
        [':method', 'GET'],
        [':path', '/public/index.html?lang=en'],
        [':scheme', 'https'],
        ['accept', 'text/html'],
        ['user-agent', 'curl/8.5.0'],
        ['x-forwarded-proto', 'https'],
        ['x-request-id', '7f1c2a9e-3b4d-4c55-9a1e-0d2b8e6f4a10'],
      ]),
      sourceIp: '192.0.2.10',
      contextExtensions: { virtual_host: 'api' },
    } satisfies RequestView)
    expect(matchUrl(view)).toBe('https://api.example.com/public/index.html')
  })

  it('bearer-admin: POST with query, IPv6 peer, context extensions', () => {
    const view = toRequestView(loadCheckRequest('bearer-admin'))
    expect(view.method).toBe('POST')
    expect(view.path).toBe('/admin/users')
    expect(view.query).toBe('dry_run=true')
    expect(view.sourceIp).toBe('2001:db8::17')
    expect(view.headers.get('authorization')).toMatch(/^Bearer eyJ/)
    expect({ ...view.contextExtensions }).toEqual({ virtual_host: 'api', route: 'admin' })
    expect(matchUrl(view)).toBe('https://api.example.com/admin/users')
  })

  it('raw-header-map: decodes raw bytes, joins repeated names with ",", keeps pseudo-headers', () => {
    const view = toRequestView(loadCheckRequest('raw-header-map'))
    expect(view.headers.get('x-tenant')).toBe('tenant-a,tenant-b')
    expect(view.headers.get('cookie')).toBe('session=abc123,theme=dark')
    expect(view.headers.get(':authority')).toBe('api.example.com')
    expect(view.headers.get('user-agent')).toBe('curl/8.5.0')
    // Latin-1 "café.txt" is not UTF-8: the bad byte becomes U+FFFD, no exception.
    expect(view.headers.get('x-file-name')).toBe('caf\uFFFD.txt')
    expect(view.headers.size).toBe(10)
    expect(view.path).toBe('/reports/2026')
    expect(view.query).toBe('format=csv')
    expect(view.contextExtensions).toEqual({})
  })

  it('A13 forwarded-headers: spoofed copies never change method, scheme, host or path', () => {
    const view = toRequestView(loadCheckRequest('forwarded-headers'))
    expect([view.method, view.scheme, view.host, view.path]).toEqual(['GET', 'http', 'api.example.com', '/admin/users'])
    expect(matchUrl(view)).toBe('http://api.example.com/admin/users')
    // The headers are still there, for templates and headers_to_remove; decisions ignore them.
    expect(view.headers.get('x-forwarded-host')).toBe('admin.internal')
    expect(view.headers.get(':authority')).toBe('public.example.com')
  })

  it('A48 merged-authorization: keeps the merged value as Envoy sent it', () => {
    const view = toRequestView(loadCheckRequest('merged-authorization'))
    expect(view.headers.get('authorization')).toBe(
      'Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2ln,Bearer attacker-token',
    )
  })

  it('A48 with header_map: two authorization lines are joined the same way', () => {
    const view = toRequestView(
      request({ headerMap: { headers: [rawHeader('authorization', 'Bearer a'), rawHeader('Authorization', 'Bearer b')] } }),
    )
    expect(view.headers.get('authorization')).toBe('Bearer a,Bearer b')
  })
})

describe('toRequestView: immutability', () => {
  it('freezes the view and its context extensions; extensions have no prototype', () => {
    const view = toRequestView(loadCheckRequest('anonymous-get'))
    expect(Object.isFrozen(view)).toBe(true)
    expect(Object.isFrozen(view.contextExtensions)).toBe(true)
    expect(Object.getPrototypeOf(view.contextExtensions)).toBeNull()
    expect(view.contextExtensions['constructor']).toBeUndefined()
  })

  it('copies context extensions instead of aliasing the request', () => {
    const req = loadCheckRequest('bearer-admin')
    const view = toRequestView(req)
    req.attributes!.contextExtensions['route'] = 'changed'
    expect(view.contextExtensions['route']).toBe('admin')
  })

  it('keeps a "__proto__" key as data', () => {
    const req = CheckRequest.fromJSON(
      JSON.parse(
        '{"attributes":{"contextExtensions":{"__proto__":"x"},"request":{"http":{"method":"GET","scheme":"http","host":"h","path":"/","headers":{"__proto__":"y"}}}}}',
      ),
    )
    const view = toRequestView(req)
    expect(Object.getOwnPropertyDescriptor(view.contextExtensions, '__proto__')?.value).toBe('x')
    expect(view.headers.get('__proto__')).toBe('y')
  })
})

describe('toRequestView: A1 missing attributes', () => {
  it.each([
    ['CheckRequest{}', CheckRequest.fromJSON({})],
    ['attributes without request', CheckRequest.fromJSON({ attributes: {} })],
    ['request without http', CheckRequest.fromJSON({ attributes: { request: {} } })],
    ['plain empty object', {} as CheckRequest],
  ])('%s → ERR_BAD_REQUEST', (_, req) => {
    expect(rejection(req)).toEqual({
      code: 'ERR_BAD_REQUEST',
      reason: 'missing_http_attributes',
      message: 'attributes.request.http is missing',
    })
  })

  it('every field missing from http → bad request, not an exception', () => {
    expect(rejection(CheckRequest.fromJSON({ attributes: { request: { http: {} } } })).reason).toBe('missing_method')
  })
})

describe('toRequestView: method', () => {
  it.each([
    ['GET', 'GET'],
    ['get', 'GET'],
    ['Patch', 'PATCH'],
    ['PROPFIND', 'PROPFIND'],
    ['VERSION-CONTROL', 'VERSION-CONTROL'],
  ])('%s → %s', (method, expected) => {
    expect(toRequestView(request({ method })).method).toBe(expected)
  })

  it.each([
    ['', 'missing_method'],
    ['GE T', 'invalid_method'],
    ['GET\n', 'invalid_method'],
    ['GET/', 'invalid_method'],
    ['G:ET', 'invalid_method'],
    ['poſt', 'invalid_method'], // toUpperCase would make it "POST"
    ['deletı', 'invalid_method'],
    ['X'.repeat(65), 'invalid_method'],
  ])('%j → %s', (method, reason) => {
    expect(rejection(request({ method }))).toMatchObject({ code: 'ERR_BAD_REQUEST', reason })
  })
})

describe('toRequestView: scheme', () => {
  it.each([
    ['http', 'http'],
    ['https', 'https'],
    ['HTTPS', 'https'],
    ['Http', 'http'],
  ])('%s → %s', (scheme, expected) => {
    expect(toRequestView(request({ scheme })).scheme).toBe(expected)
  })

  it.each([
    ['', 'missing_scheme'],
    ['ftp', 'invalid_scheme'],
    ['javascript', 'invalid_scheme'],
    ['https ', 'invalid_scheme'],
    ['ws', 'invalid_scheme'],
  ])('%j → %s', (scheme, reason) => {
    expect(rejection(request({ scheme }))).toMatchObject({ code: 'ERR_BAD_REQUEST', reason })
  })
})

describe('toRequestView: host (A12)', () => {
  it.each([
    ['https', 'api.example.com', 'api.example.com'],
    ['https', 'API.EXAMPLE.COM', 'api.example.com'],
    ['https', 'api.example.com.', 'api.example.com'],
    ['https', 'api.example.com:443', 'api.example.com'],
    ['https', 'API.Example.com.:443', 'api.example.com'],
    ['http', 'api.example.com:80', 'api.example.com'],
    ['https', 'api.example.com:80', 'api.example.com:80'],
    ['http', 'api.example.com:443', 'api.example.com:443'],
    ['https', 'api.example.com:8443', 'api.example.com:8443'],
    ['https', 'API.example.com.:8443', 'api.example.com:8443'],
    ['https', 'my_svc.ns.svc.cluster.local', 'my_svc.ns.svc.cluster.local'],
    ['https', '127.0.0.1:443', '127.0.0.1'],
    ['https', '127.0.0.1:8080', '127.0.0.1:8080'],
    ['http', '[::1]:8080', '[::1]:8080'],
    ['http', '[::1]', '[::1]'],
    ['https', '[2001:DB8::1]:443', '[2001:db8::1]'],
    ['https', '[::ffff:192.0.2.1]', '[::ffff:192.0.2.1]'],
    ['https', 'a'.repeat(255), 'a'.repeat(255)],
    ['https', 'a'.repeat(255) + '.:65535', 'a'.repeat(255) + ':65535'],
  ])('%s %s → %s', (scheme, host, expected) => {
    expect(toRequestView(request({ scheme, host })).host).toBe(expected)
  })

  it.each([
    ['', 'missing_host'],
    ['api.example.com,evil.example', 'invalid_host'],
    ['api.example.com evil', 'invalid_host'],
    ['api.example.com\t', 'invalid_host'],
    ['user@api.example.com', 'invalid_host'],
    ['api.example.com/admin', 'invalid_host'],
    ['api.example.com\\admin', 'invalid_host'],
    ['api.exa%6dple.com', 'invalid_host'],
    ['exa\u212Ample.com', 'invalid_host'], // Kelvin sign lower-cases to "k"
    ['bücher.example', 'invalid_host'],
    ['api..example.com', 'invalid_host'],
    ['.api.example.com', 'invalid_host'],
    ['api.example.com..', 'invalid_host'],
    ['.', 'invalid_host'],
    [':443', 'invalid_host'],
    ['::1', 'invalid_host'],
    ['[::1', 'invalid_host'],
    ['[]', 'invalid_host'],
    ['[::1]x', 'invalid_host'],
    ['[::1]]', 'invalid_host'],
    ['[fe80::1%25eth0]', 'invalid_host'],
    ['[::g]', 'invalid_host'],
    ['[1.2.3.4]', 'invalid_host'],
    ['api.example.com:', 'invalid_port'],
    ['api.example.com:0', 'invalid_port'],
    ['api.example.com:08443', 'invalid_port'],
    ['api.example.com:65536', 'invalid_port'],
    ['api.example.com:123456', 'invalid_port'],
    ['api.example.com:-1', 'invalid_port'],
    ['api.example.com:+443', 'invalid_port'],
    ['api.example.com:44a', 'invalid_port'],
    ['api.example.com:443:443', 'invalid_port'],
    ['[::1]:', 'invalid_port'],
    ['a'.repeat(256), 'host_too_long'],
    ['a'.repeat(10_000), 'host_too_long'],
  ])('%j → %s', (host, reason) => {
    expect(rejection(request({ host }))).toMatchObject({ code: 'ERR_BAD_REQUEST', reason })
  })

  it('names the field in the message', () => {
    expect(rejection(request({ host: 'a,b' })).message).toBe(
      'attributes.request.http.host: not a valid host name or IP literal',
    )
  })
})

describe('toRequestView: path', () => {
  it('uses canonicalizeTarget', () => {
    const view = toRequestView(request({ path: '/public/%2e%2e/admin/./users/?x=/static/a.css' }))
    expect([view.path, view.query]).toEqual(['/admin/users', 'x=/static/a.css'])
  })

  it.each([
    ['/public/..%2Fadmin/users', 'encoded_slash', 'attributes.request.http.path: encoded slash is not allowed'],
    ['//admin/users', 'double_slash', 'attributes.request.http.path: empty path segments ("//") are not allowed'],
    ['', 'empty_target', 'attributes.request.http.path: the request target is empty'],
    ['http://evil.example/admin', 'absolute_form', 'attributes.request.http.path: absolute-form request targets are not allowed'],
    ['/a\uFFFD', 'non_ascii', 'attributes.request.http.path: non-ASCII characters must be percent-encoded'],
  ])('%j → %s', (path, reason, message) => {
    expect(rejection(request({ path }))).toEqual({ code: 'ERR_BAD_REQUEST', reason, message })
  })

  it('never quotes the request in the message', () => {
    const { message } = rejection(request({ path: '/a?access_token=SECRET#frag' }))
    expect(message).not.toContain('SECRET')
  })
})

describe('toRequestView: A13 spoofed copies of method, scheme, host and path', () => {
  const spoofs: Record<string, string> = {
    ':authority': 'admin.internal',
    ':method': 'DELETE',
    ':path': '/public/x',
    ':scheme': 'https',
    host: 'admin.internal',
    'x-forwarded-host': 'admin.internal',
    'x-forwarded-proto': 'https',
    'x-forwarded-uri': '/public/x',
    'x-forwarded-port': '443',
    'x-original-url': '/public/x',
    'x-original-uri': '/public/x',
    'x-rewrite-url': '/public/x',
    'x-envoy-original-path': '/public/x',
    'x-http-method-override': 'DELETE',
    'x-method-override': 'DELETE',
  }
  const base = { method: 'GET', scheme: 'http', host: 'api.example.com', path: '/admin/users' }
  const expected = { method: 'GET', scheme: 'http', host: 'api.example.com', path: '/admin/users' }

  it.each(Object.entries(spoofs))('%s does not change the decision fields (headers map)', (name, value) => {
    const view = toRequestView(request({ ...base, headers: { [name]: value } }))
    expect({ method: view.method, scheme: view.scheme, host: view.host, path: view.path }).toEqual(expected)
    expect(view.headers.get(name)).toBe(value)
  })

  it('all of them at once, in header_map form', () => {
    const headers = Object.entries(spoofs).map(([k, v]) => rawHeader(k, v))
    const view = toRequestView(request({ ...base, headerMap: { headers } }))
    expect({ method: view.method, scheme: view.scheme, host: view.host, path: view.path }).toEqual(expected)
    expect(matchUrl(view)).toBe('http://api.example.com/admin/users')
  })
})

describe('toRequestView: headers', () => {
  it('lower-cases names from the map form and joins names that collide', () => {
    const view = toRequestView(request({ headers: { 'X-Tenant': 'a', 'x-tenant': 'b', Accept: '*/*' } }))
    expect(view.headers.get('x-tenant')).toBe('a,b')
    expect(view.headers.get('accept')).toBe('*/*')
    expect(view.headers.has('X-Tenant')).toBe(false)
  })

  it('header_map: lower-cases names, falls back to value when rawValue is empty', () => {
    const view = toRequestView(
      request({ headerMap: { headers: [{ key: 'X-Legacy', value: 'v1' }, rawHeader('X-Raw', 'r'), { key: 'x-empty' }] } }),
    )
    expect(view.headers.get('x-legacy')).toBe('v1')
    expect(view.headers.get('x-raw')).toBe('r')
    expect(view.headers.get('x-empty')).toBe('')
  })

  it('header_map: non-UTF-8 bytes of every kind never throw', () => {
    const junk = [
      Buffer.from([0xc3, 0x28]),
      Buffer.from([0xff, 0xfe, 0xfd]),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from('valid_prefix\xC3\x28valid_suffix', 'latin1'),
    ]
    const view = toRequestView(request({ headerMap: { headers: junk.map((b, i) => rawHeader(`x-junk-${i}`, b)) } }))
    for (let i = 0; i < junk.length; i++) expect(view.headers.get(`x-junk-${i}`)).toContain('\uFFFD')
  })

  it('an empty header_map falls back to the headers map', () => {
    const view = toRequestView(request({ headers: { a: '1' }, headerMap: { headers: [] } }))
    expect(view.headers.get('a')).toBe('1')
  })

  it('rejects a request carrying both headers and header_map', () => {
    const req = request({ headers: { a: '1' }, headerMap: { headers: [rawHeader('b', '2')] } })
    expect(rejection(req).reason).toBe('conflicting_header_fields')
  })

  it.each([
    ['NUL', 'a\0b'],
    ['CR', 'a\rb'],
    ['LF', 'a\nx-user: admin'],
    ['CRLF at the end', 'a\r\n'],
  ])('rejects %s in a value (map and raw forms)', (_, value) => {
    expect(rejection(request({ headers: { 'x-user': value } }))).toEqual({
      code: 'ERR_BAD_REQUEST',
      reason: 'invalid_header_value',
      message: 'attributes.request.http.headers: header value contains NUL, CR or LF',
    })
    expect(rejection(request({ headerMap: { headers: [rawHeader('x-user', value)] } })).reason).toBe(
      'invalid_header_value',
    )
  })

  it('allows TAB and obs-text in values', () => {
    const view = toRequestView(request({ headers: { 'x-a': 'a\tb', 'x-b': 'caf\u00e9' } }))
    expect(view.headers.get('x-a')).toBe('a\tb')
    expect(view.headers.get('x-b')).toBe('café')
  })

  it.each([['x user'], ['x-user:'], [''], [':'], ['x\u212Aey'], ['x-üser'], ['x(y)'], ['::path']])(
    'rejects header name %j',
    (name) => {
      expect(rejection(request({ headers: { [name]: 'v' } })).reason).toBe('invalid_header_name')
      expect(rejection(request({ headerMap: { headers: [rawHeader(name, 'v')] } })).reason).toBe(
        'invalid_header_name',
      )
    },
  )

  it('caps the number of headers', () => {
    const max = DEFAULT_HEADER_LIMITS.maxCount
    const map = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']))
    expect(toRequestView(request({ headers: map(max) })).headers.size).toBe(max)
    expect(rejection(request({ headers: map(max + 1) })).reason).toBe('too_many_headers')
    const raw = (n: number) => Array.from({ length: n }, () => rawHeader('x-same', 'v'))
    expect(toRequestView(request({ headerMap: { headers: raw(max) } })).headers.get('x-same')).toHaveLength(2 * max - 1)
    expect(rejection(request({ headerMap: { headers: raw(max + 1) } })).reason).toBe('too_many_headers')
  })

  it('caps the header bytes (names + values)', () => {
    const max = DEFAULT_HEADER_LIMITS.maxBytes
    const fits = 'v'.repeat(max - 'x-big'.length)
    expect(toRequestView(request({ headers: { 'x-big': fits } })).headers.get('x-big')).toBe(fits)
    expect(rejection(request({ headers: { 'x-big': fits + 'v' } })).reason).toBe('headers_too_large')
    expect(rejection(request({ headerMap: { headers: [rawHeader('x-big', fits + 'v')] } })).reason).toBe(
      'headers_too_large',
    )
    // Raw form counts bytes: 2-byte UTF-8 characters count twice.
    const wide = 'é'.repeat(Math.ceil(max / 2))
    expect(rejection(request({ headerMap: { headers: [rawHeader('x', wide)] } })).reason).toBe('headers_too_large')
  })

  it('accepts custom limits', () => {
    const req = request({ headers: { a: '1', b: '2', c: '3' } })
    expect(() => toRequestView(req, { maxCount: 2, maxBytes: 1024 })).toThrow(PipelineError)
    expect(toRequestView(req, { maxCount: 3, maxBytes: 6 }).headers.size).toBe(3)
  })
})

describe('toRequestView: peer and ids', () => {
  it('sourceIp is undefined without a socket address', () => {
    expect(toRequestView(request()).sourceIp).toBeUndefined()
    const pipe = request({}, { source: { address: { pipe: { path: '/run/envoy.sock' } } } })
    expect(toRequestView(pipe).sourceIp).toBeUndefined()
  })

  it('matchUrl keeps a non-default port and never the query', () => {
    const view = toRequestView(request({ host: 'API.example.com:8443', path: '/a/?q=1' }))
    expect(matchUrl(view)).toBe('https://api.example.com:8443/a')
  })

  it('id comes from attributes.request.http.id, "" when missing', () => {
    expect(toRequestView(request({ id: 'abc' })).id).toBe('abc')
    expect(toRequestView(request({ id: undefined })).id).toBe('')
  })
})

describe('toRequestView: robustness', () => {
  it('hand-built partial objects (not from the decoder) still give PipelineError', () => {
    const partial = [
      { attributes: { request: { http: {} } } },
      { attributes: { request: { http: { method: 'GET' } } } },
      { attributes: { request: { http: { method: 'GET', scheme: 'https', host: 'h' } } } },
    ] as unknown as CheckRequest[]
    for (const req of partial) expect(rejection(req).code).toBe('ERR_BAD_REQUEST')
    const minimal = { attributes: { request: { http: { method: 'GET', scheme: 'https', host: 'h', path: '/' } } } }
    const view = toRequestView(minimal as unknown as CheckRequest)
    expect([view.id, view.headers.size, view.sourceIp]).toEqual(['', 0, undefined])
    expect(view.contextExtensions).toEqual({})
  })

  it('header_map entries without rawValue fall back to value', () => {
    const req = { attributes: { request: { http: { method: 'GET', scheme: 'https', host: 'h', path: '/', headerMap: { headers: [{ key: 'a', value: 'v' }] } } } } }
    expect(toRequestView(req as unknown as CheckRequest).headers.get('a')).toBe('v')
  })

  it('throws nothing but PipelineError on 2 000 mangled fixtures', () => {
    const fields = ['method', 'scheme', 'host', 'path'] as const
    const junk = ['', ' ', '\0', '%', '%2F', '..', '[', ']', ':', '\uFFFD', 'é', '\\', '#', '?', '//', 'A'.repeat(300)]
    let seed = 7
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff)
    for (let i = 0; i < 2000; i++) {
      const req = loadCheckRequest(i % 2 === 0 ? 'anonymous-get' : 'raw-header-map')
      const http = req.attributes!.request!.http!
      const field = fields[next() % fields.length]!
      http[field] = http[field].slice(0, next() % (http[field].length + 1)) + junk[next() % junk.length]!
      try {
        toRequestView(req)
      } catch (err) {
        expect(err).toBeInstanceOf(PipelineError)
        expect((err as PipelineError).code).toBe('ERR_BAD_REQUEST')
      }
    }
  })
})
