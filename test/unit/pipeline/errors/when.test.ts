import { describe, expect, it } from 'vitest'
import { compileWhen, WhenSchema } from '../../../../src/pipeline/errors/when.js'
import { PipelineError, type PipelineErrorCode } from '../../../../src/pipeline/errors.js'
import { STATUS, WHEN_ERROR_NAMES } from '../../../../src/server/status.js'
import { issuesOf } from '../../../contract/config.contract.js'
import { makeRequest, type RequestInit } from '../../../helpers/session.js'

const err = (code: PipelineErrorCode) => new PipelineError(code, 'test', 'test')

function predicate(when: unknown) {
  const parsed = WhenSchema.optional().parse(when)
  return compileWhen(parsed)
}

describe('error handler `when` conditions', () => {
  describe('validation at load', () => {
    it('accepts every status name of the STATUS table', () => {
      expect(WhenSchema.safeParse([{ error: [...WHEN_ERROR_NAMES] }]).success).toBe(true)
      expect(WHEN_ERROR_NAMES).toEqual(expect.arrayContaining(['unauthorized', 'forbidden', 'not_found', 'internal_server_error']))
    })

    it.each([
      { name: 'an unknown error name', when: [{ error: ['unauthorised'] }], path: [0, 'error', 0] },
      { name: 'an HTTP code instead of a name', when: [{ error: [401] }], path: [0, 'error', 0] },
      { name: 'respect_forwarded_for_header: true', when: [{ request: { remote_ip: { match: ['10.0.0.0/8'], respect_forwarded_for_header: true } } }], path: [0, 'request', 'remote_ip', 'respect_forwarded_for_header'] },
      { name: 'an IP without a prefix length', when: [{ request: { remote_ip: { match: ['10.0.0.1'] } } }], path: [0, 'request', 'remote_ip', 'match', 0] },
      { name: 'an IPv4 prefix longer than 32', when: [{ request: { remote_ip: { match: ['10.0.0.0/33'] } } }], path: [0, 'request', 'remote_ip', 'match', 0] },
      { name: 'an IPv6 prefix longer than 128', when: [{ request: { remote_ip: { match: ['2001:db8::/129'] } } }], path: [0, 'request', 'remote_ip', 'match', 0] },
      { name: 'a host name instead of an address', when: [{ request: { remote_ip: { match: ['example.com/8'] } } }], path: [0, 'request', 'remote_ip', 'match', 0] },
      { name: 'a prefix with a leading zero', when: [{ request: { remote_ip: { match: ['10.0.0.0/08'] } } }], path: [0, 'request', 'remote_ip', 'match', 0] },
      { name: 'an empty match list', when: [{ request: { remote_ip: { match: [] } } }], path: [0, 'request', 'remote_ip', 'match'] },
      { name: 'a MIME value with parameters', when: [{ request: { header: { accept: ['application/json; charset=utf-8'] } } }], path: [0, 'request', 'header', 'accept', 0] },
      { name: 'a MIME value without a subtype', when: [{ request: { header: { content_type: ['json'] } } }], path: [0, 'request', 'header', 'content_type', 0] },
      { name: 'a wildcard type with a concrete subtype', when: [{ request: { header: { accept: ['*/json'] } } }], path: [0, 'request', 'header', 'accept', 0] },
      { name: 'an unknown request condition', when: [{ request: { method: ['GET'] } }], path: [0, 'request'] },
      { name: 'an unknown header condition', when: [{ request: { header: { 'x-foo': ['a'] } } }], path: [0, 'request', 'header'] },
    ])('rejects $name', ({ when, path }) => {
      const paths = issuesOf(WhenSchema, when).map((i) => i.path.map(String))
      expect(paths).toContainEqual(path.map(String))
    })

    it('accepts respect_forwarded_for_header: false', () => {
      expect(WhenSchema.safeParse([{ request: { remote_ip: { match: ['10.0.0.0/8'], respect_forwarded_for_header: false } } }]).success).toBe(true)
    })

    it('normalises MIME values to lower case', () => {
      const parsed = WhenSchema.parse([{ request: { header: { accept: [' Application/JSON '] } } }])
      expect(parsed[0]?.request?.header?.accept).toEqual(['application/json'])
    })
  })

  describe('error names', () => {
    it.each([undefined, [], [{}], [{ error: [] }], [{ request: {} }]])('matches every error and request when `when` is %j', (when) => {
      const p = predicate(when)
      for (const code of Object.keys(STATUS) as PipelineErrorCode[]) expect(p(err(code), makeRequest())).toBe(true)
    })

    it.each([
      { names: ['unauthorized'], matching: ['ERR_UNAUTHENTICATED'] },
      { names: ['forbidden'], matching: ['ERR_FORBIDDEN'] },
      { names: ['not_found'], matching: ['ERR_NO_RULE'] },
      { names: ['bad_request'], matching: ['ERR_BAD_REQUEST'] },
      { names: ['too_many_requests'], matching: ['ERR_TOO_MANY_REQUESTS'] },
      { names: ['service_unavailable'], matching: ['ERR_UPSTREAM_UNAVAILABLE'] },
      { names: ['internal_server_error'], matching: ['ERR_INTERNAL', 'ERR_AMBIGUOUS_RULE'] },
      { names: ['unauthorized', 'forbidden'], matching: ['ERR_UNAUTHENTICATED', 'ERR_FORBIDDEN'] },
    ])('error: $names matches exactly $matching', ({ names, matching }) => {
      const p = predicate([{ error: names }])
      for (const code of Object.keys(STATUS) as PipelineErrorCode[]) {
        expect(p(err(code), makeRequest()), code).toBe(matching.includes(code))
      }
    })

    it('ORs the entries of the list', () => {
      const p = predicate([{ error: ['unauthorized'] }, { error: ['not_found'] }])
      expect(p(err('ERR_UNAUTHENTICATED'), makeRequest())).toBe(true)
      expect(p(err('ERR_NO_RULE'), makeRequest())).toBe(true)
      expect(p(err('ERR_FORBIDDEN'), makeRequest())).toBe(false)
    })

    it('ANDs error and request conditions within an entry', () => {
      const p = predicate([{ error: ['unauthorized'], request: { header: { accept: ['text/html'] } } }])
      const html = makeRequest({ headers: { accept: 'text/html' } })
      const json = makeRequest({ headers: { accept: 'application/json' } })
      expect(p(err('ERR_UNAUTHENTICATED'), html)).toBe(true)
      expect(p(err('ERR_UNAUTHENTICATED'), json)).toBe(false)
      expect(p(err('ERR_FORBIDDEN'), html)).toBe(false)
    })
  })

  describe('MIME conditions (asymmetric, as Oathkeeper)', () => {
    const cases: { name: string; condition: 'accept' | 'content_type'; handler: string[]; header: string | undefined; want: boolean }[] = [
      { name: 'exact Accept', condition: 'accept', handler: ['application/json'], header: 'application/json', want: true },
      { name: 'Accept with parameters', condition: 'accept', handler: ['application/json'], header: 'application/json; q=0.9', want: true },
      { name: 'Accept list containing the type', condition: 'accept', handler: ['application/json'], header: 'text/html, application/json;q=0.9', want: true },
      { name: 'Accept in upper case', condition: 'accept', handler: ['application/json'], header: 'Application/JSON', want: true },
      { name: 'request-side */* against a concrete type (curl default)', condition: 'accept', handler: ['application/json'], header: '*/*', want: false },
      { name: 'request-side text/* against a concrete type', condition: 'accept', handler: ['text/html'], header: 'text/*', want: false },
      { name: 'request-side */* against handler */*', condition: 'accept', handler: ['*/*'], header: '*/*', want: true },
      { name: 'request-side text/* against handler text/*', condition: 'accept', handler: ['text/*'], header: 'text/*', want: true },
      { name: 'request-side */* against handler text/*', condition: 'accept', handler: ['text/*'], header: '*/*', want: false },
      { name: 'handler type wildcard', condition: 'accept', handler: ['text/*'], header: 'text/html', want: true },
      { name: 'handler type wildcard, other type', condition: 'accept', handler: ['text/*'], header: 'application/json', want: false },
      { name: 'handler */* against anything', condition: 'accept', handler: ['*/*'], header: 'image/png', want: true },
      { name: 'missing Accept is application/octet-stream', condition: 'accept', handler: ['application/octet-stream'], header: undefined, want: true },
      { name: 'empty Accept is application/octet-stream', condition: 'accept', handler: ['application/octet-stream'], header: '', want: true },
      { name: 'missing Accept against application/json', condition: 'accept', handler: ['application/json'], header: undefined, want: false },
      { name: 'invalid Accept entries are skipped', condition: 'accept', handler: ['application/json'], header: 'garbage, application/json', want: true },
      { name: 'Content-Type with charset', condition: 'content_type', handler: ['application/json'], header: 'application/json; charset=utf-8', want: true },
      { name: 'Content-Type mismatch', condition: 'content_type', handler: ['application/json'], header: 'text/plain', want: false },
      { name: 'missing Content-Type is application/octet-stream', condition: 'content_type', handler: ['application/octet-stream'], header: undefined, want: true },
      { name: 'a Content-Type that is not a media type matches nothing, not even */*', condition: 'content_type', handler: ['*/*'], header: 'garbage', want: false },
      { name: 'one of several handler values', condition: 'content_type', handler: ['text/html', 'application/x-www-form-urlencoded'], header: 'application/x-www-form-urlencoded', want: true },
    ]

    it.each(cases)('$name → $want', ({ condition, handler, header, want }) => {
      const p = predicate([{ request: { header: { [condition]: handler } } }])
      const name = condition === 'accept' ? 'accept' : 'content-type'
      const req = makeRequest(header === undefined ? {} : { headers: { [name]: header } })
      expect(p(err('ERR_UNAUTHENTICATED'), req)).toBe(want)
    })

    it('requires both header conditions when both are given', () => {
      const p = predicate([{ request: { header: { accept: ['text/html'], content_type: ['application/json'] } } }])
      expect(p(err('ERR_FORBIDDEN'), makeRequest({ headers: { accept: 'text/html', 'content-type': 'application/json' } }))).toBe(true)
      expect(p(err('ERR_FORBIDDEN'), makeRequest({ headers: { accept: 'text/html' } }))).toBe(false)
    })
  })

  describe('remote_ip.match', () => {
    const cases: { name: string; match: string[]; req: RequestInit; want: boolean }[] = [
      { name: 'IPv4 inside the CIDR', match: ['10.0.0.0/8'], req: { sourceIp: '10.1.2.3' }, want: true },
      { name: 'IPv4 outside the CIDR', match: ['10.0.0.0/8'], req: { sourceIp: '11.0.0.1' }, want: false },
      { name: 'IPv4 exact /32', match: ['192.0.2.10/32'], req: { sourceIp: '192.0.2.10' }, want: true },
      { name: 'IPv4 CIDR written with host bits (as Go ParseCIDR)', match: ['10.9.9.9/8'], req: { sourceIp: '10.1.2.3' }, want: true },
      { name: 'IPv4-mapped IPv6 peer against an IPv4 CIDR', match: ['10.0.0.0/8'], req: { sourceIp: '::ffff:10.1.2.3' }, want: true },
      { name: 'IPv6 inside the CIDR', match: ['2001:db8::/32'], req: { sourceIp: '2001:db8:1::5' }, want: true },
      { name: 'IPv6 outside the CIDR', match: ['2001:db8::/32'], req: { sourceIp: '2001:db9::1' }, want: false },
      { name: 'IPv4 peer against an IPv6 CIDR', match: ['2001:db8::/32'], req: { sourceIp: '10.0.0.1' }, want: false },
      { name: 'one of several CIDRs', match: ['192.168.0.0/16', '2001:db8::/32'], req: { sourceIp: '2001:db8::1' }, want: true },
      { name: 'no peer address', match: ['0.0.0.0/0', '::/0'], req: { sourceIp: null }, want: false },
      { name: 'a peer address that is not an IP', match: ['0.0.0.0/0'], req: { sourceIp: 'localhost' }, want: false },
      {
        name: 'X-Forwarded-For is ignored (peer outside, header inside)',
        match: ['10.0.0.0/8'],
        req: { sourceIp: '203.0.113.9', headers: { 'x-forwarded-for': '10.0.0.1' } },
        want: false,
      },
      {
        name: 'X-Forwarded-For is ignored (peer inside, header outside)',
        match: ['10.0.0.0/8'],
        req: { sourceIp: '10.0.0.1', headers: { 'x-forwarded-for': '203.0.113.9' } },
        want: true,
      },
    ]

    it.each(cases)('$name → $want', ({ match, req, want }) => {
      const p = predicate([{ request: { remote_ip: { match } } }])
      expect(p(err('ERR_FORBIDDEN'), makeRequest(req))).toBe(want)
    })
  })
})
