/**
 * Authenticator `bearer_token`: contract, responsibility (`token_from`, `prefix`, A48 merged
 * Authorization), and which header carries the token to the session endpoint, against a real
 * HTTP stub. The shared outbound/answer/cache behaviour is covered in session-check.test.ts.
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearerToken } from '../../../../src/pipeline/authn/bearer-token.js'
import { CacheBudget } from '../../../../src/cache/budget.js'
import { CacheRegistry } from '../../../../src/cache/registry.js'
import { HttpClient, OutboundConfigSchema } from '../../../../src/http/client.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { NOT_RESPONSIBLE, type Authenticator, type HandlerDeps } from '../../../../src/pipeline/types.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { parseConfig } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, SECRETS, type RequestInit } from '../../../helpers/session.js'
import { startStub, type Stub } from '../../../helpers/stub-server.js'

const contractStub = await startStub({ kind: 'json', body: { sub: 'svc', extra: {} } })
afterAll(() => contractStub.close())
const CHECK = contractStub.url('/check')

describe('authn bearer_token', () => {
  runAuthenticatorContract({
    factory: bearerToken,
    validConfigs: [
      { check_session_url: CHECK },
      { check_session_url: CHECK, token_from: null, prefix: 'sEcReT-' },
      { check_session_url: CHECK, preserve_path: true, token_from: { header: 'X-Session-Token' }, subject_from: 'identity.id' },
      { check_session_url: CHECK, preserve_path: true, token_from: { cookie: 'session' }, cache: { enabled: true } },
      { check_session_url: CHECK, preserve_path: true, token_from: { query_parameter: 'access_token' }, preserve_query: false },
    ],
    invalidConfigs: [
      { name: 'a missing check_session_url', config: {}, path: ['check_session_url'] },
      {
        name: 'a query_parameter token with preserve_query (the token would never be sent)',
        config: { check_session_url: CHECK, token_from: { query_parameter: 't' } },
        path: ['preserve_query'],
      },
      {
        name: 'additional_headers overwriting Authorization',
        config: { check_session_url: CHECK, additional_headers: { Authorization: 'Bearer fixed' } },
        path: ['additional_headers', 'Authorization'],
      },
      {
        name: 'additional_headers overwriting the token_from header',
        config: { check_session_url: CHECK, token_from: { header: 'X-Session-Token' }, additional_headers: { 'x-session-token': 'fixed' } },
        path: ['additional_headers', 'x-session-token'],
      },
      { name: 'a non-string prefix', config: { check_session_url: CHECK, prefix: 1 }, path: ['prefix'] },
      { name: 'only (a cookie_session key)', config: { check_session_url: CHECK, only: ['a'] }, path: [] },
      { name: 'a token_from with two places', config: { check_session_url: CHECK, token_from: { header: 'a', cookie: 'b' } }, path: ['token_from'] },
    ],
  })

  let stub: Stub
  let client: HttpClient
  beforeAll(async () => {
    stub = await startStub()
    client = new HttpClient(OutboundConfigSchema.parse({ retry: { max_retries: 0 }, breaker: { failure_threshold: 1_000_000 } }))
  })
  afterAll(async () => {
    await client.close()
    await stub.close()
  })

  let seq = 0
  function make(cfg: Record<string, unknown> = {}, body: unknown = { sub: 'svc-1', extra: { scope: 'read' } }) {
    const path = `/b${++seq}/check`
    stub.setMode(path, { kind: 'json', body })
    const deps: HandlerDeps = {
      log: pino({ level: 'silent' }),
      caches: new CacheRegistry(new CacheBudget(64 * 1024 * 1024)),
      http: client,
      now: Date.now,
    }
    const authn: Authenticator = bearerToken.create(parseConfig(bearerToken, { check_session_url: stub.url(path), preserve_path: true, ...cfg }), deps)
    return { authn, path }
  }

  async function outcome(authn: Authenticator, init: RequestInit) {
    const req = makeRequest(init)
    const s = makeSession(req)
    try {
      const r = await authn.authenticate(req, s, new AbortController().signal)
      return { result: r === NOT_RESPONSIBLE ? ('not_responsible' as const) : ('ok' as const), s }
    } catch (err) {
      expect(err).toBeInstanceOf(PipelineError)
      return { result: (err as PipelineError).reason, s }
    }
  }

  const BEARER = `Bearer ${SECRETS.bearer}`

  const responsibility: { name: string; cfg?: Record<string, unknown>; req: RequestInit; want: string; calls: number }[] = [
    { name: 'no Authorization → not responsible', req: {}, want: 'not_responsible', calls: 0 },
    { name: 'an empty Authorization → not responsible', req: { headers: { authorization: '' } }, want: 'not_responsible', calls: 0 },
    { name: 'Authorization: Basic → not responsible', req: { headers: { authorization: 'Basic YTpi' } }, want: 'not_responsible', calls: 0 },
    { name: '"Bearer " without a token → not responsible', req: { headers: { authorization: 'Bearer ' } }, want: 'not_responsible', calls: 0 },
    { name: 'a session cookie only → not responsible', req: { headers: { cookie: 'session=x' } }, want: 'not_responsible', calls: 0 },
    { name: 'a bearer token → responsible', req: { headers: { authorization: BEARER } }, want: 'ok', calls: 1 },
    { name: 'the scheme is case-insensitive', req: { headers: { authorization: `bEaReR ${SECRETS.bearer}` } }, want: 'ok', calls: 1 },
    { name: 'prefix: a token with it → responsible', cfg: { prefix: 'sEcReT-bearer' }, req: { headers: { authorization: BEARER } }, want: 'ok', calls: 1 },
    { name: 'prefix: a token without it → not responsible, no call', cfg: { prefix: 'ory_st_' }, req: { headers: { authorization: BEARER } }, want: 'not_responsible', calls: 0 },
    {
      name: 'A48: a merged "Bearer a, Bearer b" → 401, no call',
      req: { headers: { authorization: `${BEARER}, Bearer other` } },
      want: 'ambiguous_credential',
      calls: 0,
    },
    { name: 'a token over 16 KiB → 401, no call', req: { headers: { authorization: `Bearer ${'a'.repeat(20_000)}` } }, want: 'credential_too_long', calls: 0 },
    {
      name: 'token_from header: read from it, Authorization ignored',
      cfg: { token_from: { header: 'X-Session-Token' } },
      req: { headers: { authorization: BEARER } },
      want: 'not_responsible',
      calls: 0,
    },
    { name: 'token_from cookie: two such cookies → 401', cfg: { token_from: { cookie: 'st' } }, req: { headers: { cookie: 'st=a; st=b' } }, want: 'ambiguous_credential', calls: 0 },
    {
      name: 'token_from query_parameter: twice → 401',
      cfg: { token_from: { query_parameter: 'token' }, preserve_query: false },
      req: { query: 'token=a&token=b' },
      want: 'ambiguous_credential',
      calls: 0,
    },
  ]
  it.each(responsibility)('$name', async ({ cfg, req, want, calls }) => {
    const { authn, path } = make(cfg)
    const { result, s } = await outcome(authn, req)
    expect(result).toBe(want)
    expect(stub.hitsFor(path)).toBe(calls)
    if (result !== 'ok') expect(s.subject).toBe('')
  })

  it('success: subject from "sub" (the default), extra from "extra"', async () => {
    const { authn } = make()
    const { result, s } = await outcome(authn, { headers: { authorization: BEARER } })
    expect(result).toBe('ok')
    expect(s.subject).toBe('svc-1')
    expect(s.extra).toEqual({ scope: 'read' })
  })

  it('a body with "subject" but no "sub" is denied (subject_from defaults to sub for bearer_token)', async () => {
    const { authn } = make({}, { subject: 'alice' })
    expect((await outcome(authn, { headers: { authorization: BEARER } })).result).toBe('invalid_subject')
  })

  it('default token_from: forwards the Authorization header as received, and no cookie', async () => {
    const { authn, path } = make()
    await outcome(authn, { headers: { authorization: BEARER, cookie: `session=${SECRETS.cookie}` } })
    const r = stub.requests.at(-1)!
    expect(r.path).toBe(path)
    expect(r.headers['authorization']).toBe(BEARER)
    expect(r.headers['cookie']).toBeUndefined()
  })

  it('token_from header (Kratos X-Session-Token): forwards that header, not Authorization (deviation)', async () => {
    const { authn } = make({ token_from: { header: 'X-Session-Token' }, subject_from: 'identity.id' }, { identity: { id: 'id-7' } })
    const { result, s } = await outcome(authn, { headers: { 'x-session-token': 'ory_st_abc', authorization: BEARER } })
    expect(result).toBe('ok')
    expect(s.subject).toBe('id-7')
    const r = stub.requests.at(-1)!
    expect(r.headers['x-session-token']).toBe('ory_st_abc')
    expect(r.headers['authorization']).toBeUndefined()
  })

  it('token_from header plus Authorization in forward_http_headers: both are sent', async () => {
    const { authn } = make({ token_from: { header: 'X-Session-Token' }, forward_http_headers: ['Authorization'] })
    await outcome(authn, { headers: { 'x-session-token': 'tok', authorization: BEARER } })
    const r = stub.requests.at(-1)!
    expect(r.headers['x-session-token']).toBe('tok')
    expect(r.headers['authorization']).toBe(BEARER)
  })

  it('token_from cookie: forwards the Cookie header', async () => {
    const { authn } = make({ token_from: { cookie: 'st' } })
    const { result } = await outcome(authn, { headers: { cookie: 'theme=x; st=tok' } })
    expect(result).toBe('ok')
    expect(stub.requests.at(-1)!.headers['cookie']).toBe('theme=x; st=tok')
  })

  it('token_from query_parameter: the request query carries it to the endpoint', async () => {
    const { authn, path } = make({ token_from: { query_parameter: 'token' }, preserve_query: false })
    const { result } = await outcome(authn, { query: 'token=tok&x=1' })
    expect(result).toBe('ok')
    expect(stub.requests.at(-1)!.url).toBe(`${path}?token=tok&x=1`)
  })

  it('a 401 from the endpoint is a 401; prefix-mismatched tokens never reach it', async () => {
    const path = `/b${++seq}/check`
    stub.setMode(path, { kind: 'json', status: 401, body: {} })
    const authn = bearerToken.create(
      parseConfig(bearerToken, { check_session_url: stub.url(path), preserve_path: true, prefix: 'ory_st_' }),
      { log: pino({ level: 'silent' }), caches: new CacheRegistry(new CacheBudget(64 * 1024 * 1024)), http: client, now: Date.now },
    )
    expect((await outcome(authn, { headers: { authorization: 'Bearer ory_st_x' } })).result).toBe('session_invalid')
    expect((await outcome(authn, { headers: { authorization: 'Bearer jwt.like.token' } })).result).toBe('not_responsible')
    expect(stub.hitsFor(path)).toBe(1)
  })

  it('cache: one entry per token', async () => {
    const { authn, path } = make({ cache: { enabled: true } })
    await outcome(authn, { headers: { authorization: 'Bearer a' } })
    await outcome(authn, { headers: { authorization: 'Bearer a' } })
    await outcome(authn, { headers: { authorization: 'Bearer b' } })
    expect(stub.hitsFor(path)).toBe(2)
  })
})
