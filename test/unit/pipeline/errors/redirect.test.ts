import { describe, expect, it } from 'vitest'
import { originalUrl, redirect } from '../../../../src/pipeline/errors/redirect.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { runErrorHandlerContract } from '../../../contract/error-handler.contract.js'
import { build } from '../../../contract/config.contract.js'
import { makeRequest, type RequestInit } from '../../../helpers/session.js'

const unauthenticated = new PipelineError('ERR_UNAUTHENTICATED', 'r', 'm')
const TO = 'https://login.example.com/login'

function location(config: Record<string, unknown>, req: RequestInit = {}): string | undefined {
  const res = build(redirect, config).handle(unauthenticated, makeRequest(req))
  expect(res.body).toBe('')
  expect(res.headers).toHaveLength(1)
  return res.headers.find(([name]) => name === 'location')?.[1]
}

describe('error handler redirect', () => {
  runErrorHandlerContract({
    factory: redirect,
    validConfigs: [
      { to: TO },
      { to: '/login', code: 301 },
      { to: `${TO}?client=web`, return_to_query_param: 'return_to' },
      { to: 'http://login.example.com:8080', return_to_query_param: '' },
    ],
    invalidConfigs: [
      { name: 'a missing `to` (no config at all)', config: undefined, path: ['to'] },
      { name: 'a missing `to`', config: { code: 302 }, path: ['to'] },
      { name: 'a non-string `to`', config: { to: 1 }, path: ['to'] },
      { name: 'an empty `to`', config: { to: '' }, path: ['to'] },
      { name: 'a protocol-relative `to`', config: { to: '//evil.com/login' }, path: ['to'] },
      { name: 'a `to` starting with slash-backslash', config: { to: '/\\evil.com' }, path: ['to'] },
      { name: 'a `to` with a backslash before @ (CVE-2021-21291 style)', config: { to: 'https://evil.com\\@app.example.com/' }, path: ['to'] },
      { name: 'a `to` with user information', config: { to: 'https://app.example.com@evil.com/' }, path: ['to'] },
      { name: 'a relative `to` without a leading slash', config: { to: 'login' }, path: ['to'] },
      { name: 'a javascript: `to`', config: { to: 'javascript:alert(1)' }, path: ['to'] },
      { name: 'a data: `to`', config: { to: 'data:text/html,x' }, path: ['to'] },
      { name: 'an ftp `to`', config: { to: 'ftp://login.example.com/' }, path: ['to'] },
      { name: 'a `to` without a host', config: { to: 'https:///login' }, path: ['to'] },
      { name: 'a `to` with CR LF (header injection)', config: { to: '/login\r\nSet-Cookie: a=b' }, path: ['to'] },
      { name: 'a `to` with a space', config: { to: '/log in' }, path: ['to'] },
      { name: 'a `to` with non-ASCII characters', config: { to: 'https://lögin.example.com/' }, path: ['to'] },
      { name: 'code 303 (Oathkeeper would coerce it to 302)', config: { to: TO, code: 303 }, path: ['code'] },
      { name: 'code as a string', config: { to: TO, code: '302' }, path: ['code'] },
      { name: 'a non-string return_to_query_param', config: { to: TO, return_to_query_param: true }, path: ['return_to_query_param'] },
      {
        name: 'a return_to_query_param that `to` already has',
        config: { to: `${TO}?return_to=/home`, return_to_query_param: 'return_to' },
        path: ['return_to_query_param'],
      },
    ],
    echoesRequestUrlIn: {
      header: 'location',
      reason: 'return_to is the URL the client itself asked for, query included, as in Oathkeeper',
    },
  })

  it.each([
    { name: 'defaults to 302', config: { to: TO }, status: 302 },
    { name: 'uses 301 when configured', config: { to: TO, code: 301 }, status: 301 },
  ])('$name', ({ config, status }) => {
    expect(build(redirect, config).handle(unauthenticated, makeRequest()).status).toBe(status)
  })

  const cases: { name: string; config: Record<string, unknown>; req?: RequestInit; want: string }[] = [
    { name: 'redirects to `to` unchanged without return_to_query_param', config: { to: TO }, want: TO },
    { name: 'keeps a relative `to`', config: { to: '/login?next=1' }, want: '/login?next=1' },
    { name: 'treats an empty return_to_query_param as none (as Oathkeeper)', config: { to: TO, return_to_query_param: '' }, want: TO },
    {
      name: 'adds return_to with "?" when `to` has no query',
      config: { to: TO, return_to_query_param: 'return_to' },
      req: { host: 'app.example.com', path: '/account/settings' },
      want: `${TO}?return_to=https%3A%2F%2Fapp.example.com%2Faccount%2Fsettings`,
    },
    {
      name: 'adds return_to with "&" when `to` already has a query',
      config: { to: `${TO}?client=web`, return_to_query_param: 'return_to' },
      req: { host: 'app.example.com', path: '/a' },
      want: `${TO}?client=web&return_to=https%3A%2F%2Fapp.example.com%2Fa`,
    },
    {
      name: 'does not double a trailing "?"',
      config: { to: `${TO}?`, return_to_query_param: 'r' },
      req: { host: 'app.example.com', path: '/a' },
      want: `${TO}?r=https%3A%2F%2Fapp.example.com%2Fa`,
    },
    {
      name: 'keeps a fragment of `to` last',
      config: { to: `${TO}#signin`, return_to_query_param: 'r' },
      req: { host: 'app.example.com', path: '/a' },
      want: `${TO}?r=https%3A%2F%2Fapp.example.com%2Fa#signin`,
    },
    {
      name: 'url-encodes the original query, so it cannot add parameters to `to`',
      config: { to: TO, return_to_query_param: 'return_to' },
      req: { host: 'app.example.com', path: '/search', query: 'q=a b&to=https://evil.example/#x' },
      want: `${TO}?return_to=${encodeURIComponent('https://app.example.com/search?q=a b&to=https://evil.example/#x')}`,
    },
    {
      name: 'url-encodes the parameter name',
      config: { to: TO, return_to_query_param: 'return to' },
      req: { host: 'app.example.com', path: '/' },
      want: `${TO}?return%20to=https%3A%2F%2Fapp.example.com%2F`,
    },
    {
      name: 'keeps the scheme and a non-default port of the request view',
      config: { to: '/login', return_to_query_param: 'return_to' },
      req: { scheme: 'http', host: 'app.example.com:8080', path: '/x' },
      want: '/login?return_to=http%3A%2F%2Fapp.example.com%3A8080%2Fx',
    },
    {
      name: 'ignores X-Forwarded-Host, -Proto and -Uri (security.md A50)',
      config: { to: TO, return_to_query_param: 'return_to' },
      req: {
        scheme: 'https',
        host: 'app.example.com',
        path: '/account',
        headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http', 'x-forwarded-uri': '/phish', host: 'evil.example' },
      },
      want: `${TO}?return_to=https%3A%2F%2Fapp.example.com%2Faccount`,
    },
  ]

  it.each(cases)('$name', ({ config, req, want }) => {
    expect(location(config, req)).toBe(want)
  })

  it('builds the original URL from scheme, host, path and query only', () => {
    expect(originalUrl(makeRequest({ scheme: 'https', host: 'a.example', path: '/p', query: '' }))).toBe('https://a.example/p')
    expect(originalUrl(makeRequest({ scheme: 'https', host: 'a.example', path: '/p', query: 'x=1' }))).toBe('https://a.example/p?x=1')
  })

  it('never puts the attacker host anywhere in Location', () => {
    const loc = location(
      { to: TO, return_to_query_param: 'return_to' },
      { host: 'app.example.com', headers: { 'x-forwarded-host': 'evil.example' } },
    )
    expect(loc).not.toContain('evil')
  })
})
