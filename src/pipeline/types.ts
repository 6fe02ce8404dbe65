/**
 * The contracts of the rule pipeline (match → authenticators → authorizer → mutators, or error
 * handlers on failure), after Oathkeeper's `pipeline/{authn,authz,mutate,errors}` packages.
 * Handlers are built once per rule at load (`HandlerFactory.create`); the request path only calls
 * the returned objects.
 * @module
 */
import type { z } from 'zod'
import type { Logger } from 'pino'
import type { PipelineError } from './errors.js'
import type { CacheRegistry } from '../cache/registry.js'
import type { HttpClient } from '../http/client.js'

/**
 * Normalised, immutable view of `AttributeContext.Request.Http`, built once per Check
 * (src/request/view.ts). Decisions read only `method`, `scheme`, `host`, `path`; never copies
 * of them in `headers` (x-forwarded-*, host, :authority).
 */
export interface RequestView {
  /** x-request-id as Envoy sent it ("" when missing). */
  readonly id: string
  /** Upper-case method. */
  readonly method: string
  /** Lower-case scheme, `http` or `https`. */
  readonly scheme: string
  /** Lower-case host; the port is kept unless it is the scheme's default port. */
  readonly host: string
  /** Canonical path (security.md §3.3), never containing the query. */
  readonly path: string
  /** Query string without the leading `?` ("" when none). */
  readonly query: string
  /** Request headers, lower-case names; repeated headers joined with `,`. */
  readonly headers: ReadonlyMap<string, string>
  /** Downstream peer address, when Envoy sent one. */
  readonly sourceIp: string | undefined
  readonly contextExtensions: Readonly<Record<string, string>>
}

/** Oathkeeper's `MatchContext`: what the matcher learnt about the request. */
export interface MatchContext {
  readonly regexpCaptureGroups: readonly string[]
  readonly request: RequestView
}

/** Mutable state threaded through one run (Oathkeeper's `AuthenticationSession`). */
export interface Session {
  subject: string
  extra: Record<string, unknown>
  /** Headers for the upstream request (lower-case name → value), set by authorizers and mutators. */
  readonly header: Map<string, string>
  readonly matchContext: MatchContext
}

/** Returned by an authenticator that does not handle this kind of credential. */
export const NOT_RESPONSIBLE: unique symbol = Symbol('not_responsible')
export type AuthnOutcome = void | typeof NOT_RESPONSIBLE

export interface Authenticator {
  /** Resolves on success, returns NOT_RESPONSIBLE to fall through, throws PipelineError to deny. */
  authenticate(req: RequestView, s: Session, signal: AbortSignal): AuthnOutcome | Promise<AuthnOutcome>
}
export interface Authorizer {
  /** Throws PipelineError (ERR_FORBIDDEN, …) to deny. */
  authorize(req: RequestView, s: Session, signal: AbortSignal): void | Promise<void>
}
export interface Mutator {
  mutate(req: RequestView, s: Session, signal: AbortSignal): void | Promise<void>
}

/** The HTTP answer of a denial, as Envoy will send it to the client. */
export interface DeniedHttp {
  readonly status: number
  readonly headers: readonly (readonly [string, string])[]
  readonly body: string
}

export interface ErrorHandler {
  /** The compiled `when` conditions: is this handler responsible for this error and request? */
  matches(err: PipelineError, req: RequestView): boolean
  handle(err: PipelineError, req: RequestView): DeniedHttp
}

export type Stage = 'authn' | 'authz' | 'mutate' | 'error'
export interface StageImpl {
  authn: Authenticator
  authz: Authorizer
  mutate: Mutator
  error: ErrorHandler
}

/** What the handlers get from the process at creation time. */
export interface HandlerDeps {
  readonly log: Logger
  /** Every cache is created here (bounded, budgeted against `cache.max_bytes`, observable). */
  readonly caches: CacheRegistry
  /** The one pooled outbound HTTP client (JWKS, introspection, session and token endpoints). */
  readonly http: HttpClient
  /** Wall clock in ms (Date.now unless a test injects one). */
  readonly now: () => number
}

/**
 * The handler id of every handler instance compile.ts builds (set once at load; read only when a
 * handler throws, to label `portcullis_handler_errors_total`).
 */
export const HANDLER_IDS = new WeakMap<object, string>()

/** What every handler file exports. `config` validates at rule load, `create` runs once per rule. */
export interface HandlerFactory<S extends Stage = Stage, C = unknown> {
  readonly stage: S
  /** Oathkeeper's handler id (`anonymous`, `www_authenticate`, …). */
  readonly id: string
  readonly config: z.ZodType<C>
  create(config: C, deps: HandlerDeps): StageImpl[S]
}

/** Typed helper for handler files: `export const noop = defineHandler('authn', 'noop', Schema, create)`. */
export function defineHandler<S extends Stage, C>(
  stage: S,
  id: string,
  config: z.ZodType<C>,
  create: (config: C, deps: HandlerDeps) => StageImpl[S],
): HandlerFactory<S, C> {
  return { stage, id, config, create }
}
