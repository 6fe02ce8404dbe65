/**
 * Builders for the pipeline's per-request values in unit tests: a {@link RequestView} as
 * src/request/view.ts would produce it, and a fresh {@link Session} for it.
 * @module
 */
import { pino } from 'pino'
import type { HandlerDeps, MatchContext, RequestView, Session } from '../../src/pipeline/types.js'
import { CacheBudget } from '../../src/cache/budget.js'
import { CacheRegistry } from '../../src/cache/registry.js'
import { HttpClient } from '../../src/http/client.js'
import { OutboundConfigSchema } from '../../src/http/config.js'

export interface RequestInit {
  id?: string
  method?: string
  scheme?: string
  host?: string
  path?: string
  query?: string
  /** Header names are lower-cased, as the real view does. */
  headers?: Readonly<Record<string, string>>
  /** `null` for "Envoy sent no peer address". */
  sourceIp?: string | null
  contextExtensions?: Readonly<Record<string, string>>
}

/** A GET https://api.example.com/ request from 192.0.2.10 with no headers, unless overridden. */
export function makeRequest(init: RequestInit = {}): RequestView {
  const headers = new Map<string, string>()
  for (const [name, value] of Object.entries(init.headers ?? {})) headers.set(name.toLowerCase(), value)
  return Object.freeze({
    id: init.id ?? 'req-1',
    method: (init.method ?? 'GET').toUpperCase(),
    scheme: init.scheme ?? 'https',
    host: init.host ?? 'api.example.com',
    path: init.path ?? '/',
    query: init.query ?? '',
    headers,
    sourceIp: init.sourceIp === null ? undefined : (init.sourceIp ?? '192.0.2.10'),
    contextExtensions: init.contextExtensions ?? {},
  })
}

export interface SessionInit {
  subject?: string
  extra?: Record<string, unknown>
  /** Headers already set by earlier handlers. */
  header?: Readonly<Record<string, string>>
  regexpCaptureGroups?: readonly string[]
}

/** A fresh session for `req`, as the pipeline starts it (subject "", no extra, no headers). */
export function makeSession(req: RequestView = makeRequest(), init: SessionInit = {}): Session {
  const matchContext: MatchContext = { regexpCaptureGroups: init.regexpCaptureGroups ?? [], request: req }
  return {
    subject: init.subject ?? '',
    extra: init.extra ?? {},
    header: new Map(Object.entries(init.header ?? {})),
    matchContext,
  }
}

/** A never-aborted signal for handler calls. */
export const NO_ABORT: AbortSignal = new AbortController().signal

/**
 * Credentials the contract suites put into requests; no handler output (error message, reason,
 * headers, denied body) may contain any of them.
 */
export const SECRETS = {
  bearer: 'sEcReT-bearer-token-0123456789',
  cookie: 'sEcReT-session-cookie-9876543210',
  basicPassword: 'sEcReT-basic-password-42',
  query: 'sEcReT-query-token-777',
} as const

/** Requests carrying each kind of credential (and one carrying none), for contract suites. */
export function credentialRequests(): readonly { readonly name: string; readonly req: RequestView }[] {
  const basic = Buffer.from(`alice:${SECRETS.basicPassword}`).toString('base64')
  return [
    { name: 'no credentials', req: makeRequest() },
    { name: 'bearer token', req: makeRequest({ headers: { authorization: `Bearer ${SECRETS.bearer}` } }) },
    { name: 'basic credentials', req: makeRequest({ headers: { authorization: `Basic ${basic}` } }) },
    { name: 'session cookie', req: makeRequest({ headers: { cookie: `session=${SECRETS.cookie}` } }) },
    { name: 'token in query', req: makeRequest({ path: '/x', query: `access_token=${SECRETS.query}` }) },
  ]
}

/** Every secret of {@link SECRETS}, plus the base64 form of the basic credentials. */
export const SECRET_VALUES: readonly string[] = [
  ...Object.values(SECRETS),
  Buffer.from(`alice:${SECRETS.basicPassword}`).toString('base64'),
]

/** Throws if `text` contains any secret of {@link SECRET_VALUES}. */
export function expectNoSecret(text: string, where: string): void {
  for (const secret of SECRET_VALUES) {
    if (text.includes(secret)) throw new Error(`${where} leaks a credential`)
  }
}

/** Handler dependencies for tests: a silent logger. */
export const TEST_DEPS: HandlerDeps = {
  log: pino({ level: 'silent' }),
  caches: new CacheRegistry(new CacheBudget(256 * 1024 * 1024)),
  http: new HttpClient(OutboundConfigSchema.parse({})),
  now: Date.now,
}
