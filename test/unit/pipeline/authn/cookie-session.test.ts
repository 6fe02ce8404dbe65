/**
 * Authenticator `cookie_session`: contract, responsibility (`only`, A49 duplicate cookies), and
 * what reaches the session endpoint, against a real HTTP stub. The shared outbound/answer/cache
 * behaviour is covered in session-check.test.ts.
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cookieSession } from '../../../../src/pipeline/authn/cookie-session.js'
import { CacheBudget } from '../../../../src/cache/budget.js'
import { CacheRegistry } from '../../../../src/cache/registry.js'
import { HttpClient, OutboundConfigSchema } from '../../../../src/http/client.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { NOT_RESPONSIBLE, type Authenticator, type HandlerDeps } from '../../../../src/pipeline/types.js'
import { runAuthenticatorContract } from '../../../contract/authenticator.contract.js'
import { parseConfig } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, SECRETS } from '../../../helpers/session.js'
import { startStub, type Stub } from '../../../helpers/stub-server.js'

// The contract needs its configs when the suite is collected: one stub serving a valid session.
const contractStub = await startStub({ kind: 'json', body: { subject: 'alice', extra: {} } })
afterAll(() => contractStub.close())
const WHOAMI = contractStub.url('/sessions/whoami')

describe('authn cookie_session', () => {
  runAuthenticatorContract({
    factory: cookieSession,
    validConfigs: [
      { check_session_url: WHOAMI },
      { check_session_url: WHOAMI, preserve_path: true, only: ['session'], subject_from: 'subject', cache: { enabled: true } },
      { check_session_url: WHOAMI, preserve_path: true, force_method: 'POST', forward_http_headers: ['X-Tenant'], additional_headers: { 'X-Api-Key': 'k' } },
    ],
    invalidConfigs: [
      { name: 'a missing check_session_url', config: {}, path: ['check_session_url'] },
      { name: 'a check_session_url that is not a URL', config: { check_session_url: 'kratos' }, path: ['check_session_url'] },
      { name: 'an invalid cookie name in only', config: { check_session_url: WHOAMI, only: ['a b'] }, path: ['only', 0] },
      { name: 'only as a string', config: { check_session_url: WHOAMI, only: 'session' }, path: ['only'] },
      {
        name: 'additional_headers overwriting the Cookie credential',
        config: { check_session_url: WHOAMI, additional_headers: { Cookie: 'session=fixed' } },
        path: ['additional_headers', 'Cookie'],
      },
      {
        name: 'additional_headers naming one header twice',
        config: { check_session_url: WHOAMI, additional_headers: { 'X-A': '1', 'x-a': '2' } },
        path: ['additional_headers', 'x-a'],
      },
      { name: 'additional_headers setting Host', config: { check_session_url: WHOAMI, additional_headers: { Host: 'x' } }, path: ['additional_headers', 'Host'] },
      { name: 'token_from (a bearer_token key)', config: { check_session_url: WHOAMI, token_from: { cookie: 'x' } }, path: [] },
      { name: 'force_method PUT', config: { check_session_url: WHOAMI, force_method: 'PUT' }, path: ['force_method'] },
      { name: 'GJSON syntax in subject_from', config: { check_session_url: WHOAMI, subject_from: 'identity.#.id' }, path: ['subject_from'] },
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
  /** A cookie_session on a fresh stub path answering `body` with 200. */
  function make(cfg: Record<string, unknown> = {}, body: unknown = { subject: 'alice', extra: { role: 'user' } }) {
    const path = `/c${++seq}/sessions/whoami`
    stub.setMode(path, { kind: 'json', body })
    const deps: HandlerDeps = {
      log: pino({ level: 'silent' }),
      caches: new CacheRegistry(new CacheBudget(64 * 1024 * 1024)),
      http: client,
      now: Date.now,
    }
    const authn: Authenticator = cookieSession.create(
      parseConfig(cookieSession, { check_session_url: stub.url(path), preserve_path: true, ...cfg }),
      deps,
    )
    return { authn, path }
  }

  async function outcome(authn: Authenticator, headers: Record<string, string>) {
    const req = makeRequest({ headers })
    const s = makeSession(req)
    try {
      const r = await authn.authenticate(req, s, new AbortController().signal)
      return { result: r === NOT_RESPONSIBLE ? ('not_responsible' as const) : ('ok' as const), s }
    } catch (err) {
      expect(err).toBeInstanceOf(PipelineError)
      return { result: (err as PipelineError).reason, s }
    }
  }

  const responsibility: { name: string; only?: string[]; headers: Record<string, string>; want: string; calls: number }[] = [
    { name: 'no Cookie header → not responsible', headers: {}, want: 'not_responsible', calls: 0 },
    { name: 'an empty Cookie header → not responsible', headers: { cookie: '' }, want: 'not_responsible', calls: 0 },
    { name: 'a Cookie header without any name=value → not responsible', headers: { cookie: 'garbage' }, want: 'not_responsible', calls: 0 },
    { name: 'only an Authorization header → not responsible', headers: { authorization: 'Bearer x' }, want: 'not_responsible', calls: 0 },
    { name: 'any cookie when only is empty → responsible', headers: { cookie: 'theme=dark' }, want: 'ok', calls: 1 },
    { name: 'only: another cookie → not responsible', only: ['session'], headers: { cookie: 'theme=dark' }, want: 'not_responsible', calls: 0 },
    { name: 'only: the cookie with an empty value → not responsible', only: ['session'], headers: { cookie: 'session=; theme=dark' }, want: 'not_responsible', calls: 0 },
    { name: 'only: the cookie → responsible', only: ['session'], headers: { cookie: `theme=dark; session=${SECRETS.cookie}` }, want: 'ok', calls: 1 },
    { name: 'only: the second listed cookie → responsible', only: ['session', 'ory_kratos_session'], headers: { cookie: 'ory_kratos_session=abc' }, want: 'ok', calls: 1 },
    { name: 'only: names are case-sensitive', only: ['session'], headers: { cookie: 'Session=abc' }, want: 'not_responsible', calls: 0 },
    {
      name: 'A49: the only cookie twice → 401, no call',
      only: ['session'],
      headers: { cookie: `session=${SECRETS.cookie}; session=forged` },
      want: 'ambiguous_credential',
      calls: 0,
    },
    { name: 'A49: any only cookie twice → 401', only: ['a', 'b'], headers: { cookie: 'a=1; b=1; b=2' }, want: 'ambiguous_credential', calls: 0 },
    { name: 'A49 without only: any cookie twice → 401', headers: { cookie: `session=${SECRETS.cookie}; theme=a; theme=b` }, want: 'ambiguous_credential', calls: 0 },
    { name: 'only: a duplicate of an unrelated cookie is tolerated', only: ['session'], headers: { cookie: '_ga=1; _ga=2; session=abc' }, want: 'ok', calls: 1 },
    { name: 'a Cookie header over 64 KiB → 401', headers: { cookie: `session=${'a'.repeat(70_000)}` }, want: 'credential_too_long', calls: 0 },
    { name: 'only: the cookie over 16 KiB → 401', only: ['session'], headers: { cookie: `session=${'a'.repeat(20_000)}` }, want: 'credential_too_long', calls: 0 },
  ]
  it.each(responsibility)('$name', async ({ only, headers, want, calls }) => {
    const { authn, path } = make(only === undefined ? {} : { only })
    const { result, s } = await outcome(authn, headers)
    expect(result).toBe(want)
    expect(stub.hitsFor(path)).toBe(calls)
    if (result !== 'ok') expect(s.subject).toBe('')
  })

  it('sends the whole Cookie header, and nothing else of the request unless allow-listed', async () => {
    const { authn, path } = make({ only: ['session'] })
    const cookie = `theme=dark; session=${SECRETS.cookie}; csrf=t`
    const { result, s } = await outcome(authn, { cookie, authorization: `Bearer ${SECRETS.bearer}`, 'x-tenant': 't' })
    expect(result).toBe('ok')
    expect(s.subject).toBe('alice')
    expect(s.extra).toEqual({ role: 'user' })
    const r = stub.requests.at(-1)!
    expect(r.path).toBe(path)
    expect(r.headers['cookie']).toBe(cookie)
    expect(r.headers['authorization']).toBeUndefined()
    expect(r.headers['x-tenant']).toBeUndefined()
  })

  it('Kratos-style: subject from identity.id, the session as extra', async () => {
    const whoami = { id: 's1', active: true, identity: { id: 'id-42', traits: { email: 'a@example.com' } } }
    const { authn } = make({ only: ['ory_kratos_session'], subject_from: 'identity.id', extra_from: '@this' }, whoami)
    const { result, s } = await outcome(authn, { cookie: 'ory_kratos_session=abc' })
    expect(result).toBe('ok')
    expect(s.subject).toBe('id-42')
    expect(s.extra).toEqual(whoami)
  })

  it('the default subject_from is "subject" (a "sub" field is not read)', async () => {
    const { authn } = make({}, { sub: 'alice' })
    expect((await outcome(authn, { cookie: 'session=x' })).result).toBe('invalid_subject')
  })

  it('a cache hit sets subject and extra like a call does', async () => {
    const { authn, path } = make({ cache: { enabled: true } })
    const first = await outcome(authn, { cookie: 'session=x' })
    const second = await outcome(authn, { cookie: 'session=x' })
    expect(second.s.subject).toBe(first.s.subject)
    expect(second.s.extra).toEqual(first.s.extra)
    expect(stub.hitsFor(path)).toBe(1)
  })
})
