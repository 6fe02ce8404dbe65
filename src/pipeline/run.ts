/**
 * Runs one request through the pipeline: match → authenticators (first responsible wins) →
 * authorizer → mutators; any failure goes to the error handlers (the rule's responsible one, else
 * `errors.fallback`). Returns a Decision; never throws. Only a fully successful run is an allow.
 * @module
 */
import type { CompiledRule, RuleSet } from '../rules/compile.js'
import { matchUrl } from '../request/view.js'
import { STATUS } from '../server/status.js'
import { STATUS_CODES as STATUS_TEXT } from 'node:http'
import type { PipelineObserver } from '../observability/metrics.js'
import { asPipelineError, PipelineError } from './errors.js'
import { HANDLER_IDS, NOT_RESPONSIBLE, type DeniedHttp, type ErrorHandler, type RequestView, type Session, type Stage } from './types.js'

export type Decision =
  | {
      readonly kind: 'allow'
      readonly ruleId: string
      readonly session: Session
      /** Managed identity headers the rule does not set, plus client look-alikes of managed headers. */
      readonly removeHeaders: readonly string[]
    }
  | {
      readonly kind: 'deny'
      readonly ruleId: string | undefined
      readonly error: PipelineError
      readonly http: DeniedHttp
    }

const EMPTY: readonly string[] = Object.freeze([])

/** For callers that do not count (unit tests, tools). */
const NO_OBSERVER: PipelineObserver = { observeMatch() {}, handlerError() {} }
const codeOf = (err: unknown) => (err instanceof PipelineError ? err.code : 'ERR_INTERNAL')
const idOf = (handler: object): string => HANDLER_IDS.get(handler) ?? ''

/** Header values that would corrupt the upstream request are never emitted (security.md A21). */
const UNSAFE_HEADER_VALUE = /[\0\r\n]/

export function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === 'function'
}

/** Matches the request and runs its rule. Resolves synchronously-fast when no handler awaits. */
export async function decide(rs: RuleSet, req: RequestView, signal: AbortSignal, obs: PipelineObserver = NO_OBSERVER): Promise<Decision> {
  const t0 = performance.now()
  const m = rs.matcher.match(req.method, matchUrl(req))
  obs.observeMatch((performance.now() - t0) / 1000)
  if (m.kind === 'none') {
    return deny(rs, undefined, req, new PipelineError('ERR_NO_RULE', 'no_rule', 'Requested url does not match any rules'), obs)
  }
  if (m.kind === 'many') {
    return deny(
      rs,
      undefined,
      req,
      new PipelineError('ERR_AMBIGUOUS_RULE', 'ambiguous_rule', 'Expected exactly one rule but found multiple rules'),
      obs,
    )
  }
  const rule = m.value
  const session: Session = {
    subject: '',
    extra: {},
    header: new Map(),
    matchContext: { regexpCaptureGroups: m.groups, request: req },
  }
  // The authorizer or mutator running now, for handler_errors_total (authenticators count their own).
  let running: object | undefined
  let stage: Stage = 'authz'
  try {
    await authenticate(rule, req, session, signal, obs)
    running = rule.authorizer
    const a = rule.authorizer.authorize(req, session, signal)
    if (isThenable(a)) await a
    stage = 'mutate'
    for (const mutator of rule.mutators) {
      running = mutator
      const r = mutator.mutate(req, session, signal)
      if (isThenable(r)) await r
    }
    running = undefined
    if (signal.aborted) throw new PipelineError('ERR_UPSTREAM_UNAVAILABLE', 'deadline_exceeded', 'The check did not finish in time')
    for (const v of session.header.values()) {
      if (UNSAFE_HEADER_VALUE.test(v)) {
        throw new PipelineError('ERR_INTERNAL', 'invalid_header_value', 'A mutator produced a header value with control characters')
      }
    }
  } catch (err) {
    const e = asPipelineError(err)
    if (running !== undefined) obs.handlerError(stage, idOf(running), e.code)
    return deny(rs, rule, req, e, obs)
  }
  return { kind: 'allow', ruleId: rule.id, session, removeHeaders: removals(rs, rule, req) }
}

async function authenticate(rule: CompiledRule, req: RequestView, s: Session, signal: AbortSignal, obs: PipelineObserver): Promise<void> {
  for (const a of rule.authenticators) {
    let r
    try {
      r = a.authenticate(req, s, signal)
      if (isThenable(r)) r = await r
    } catch (err) {
      obs.handlerError('authn', idOf(a), codeOf(err))
      throw err
    }
    if (r !== NOT_RESPONSIBLE) return
  }
  throw new PipelineError('ERR_UNAUTHENTICATED', 'no_authenticator_responsible', 'No authenticator was responsible for this request')
}

/**
 * The rule's removals plus every received header that normalises (`_` → `-`, trimmed) to a managed
 * header name under another spelling: upstreams that fold `_` into `-` must not see a forged copy.
 */
function removals(rs: RuleSet, rule: CompiledRule, req: RequestView): readonly string[] {
  if (rs.managedHeaders.size === 0) return rule.removeHeaders
  let extra: string[] | undefined
  for (const name of req.headers.keys()) {
    if (!name.includes('_') && name.trim() === name) continue
    const norm = name.replaceAll('_', '-').trim()
    if (norm !== name && rs.managedHeaders.has(norm)) (extra ??= []).push(name)
  }
  if (extra === undefined) return rule.removeHeaders.length === 0 ? EMPTY : rule.removeHeaders
  return [...rule.removeHeaders, ...extra]
}

/** Picks the error handler: the rule's single responsible one, else the first responsible fallback. */
export function deny(rs: RuleSet, rule: CompiledRule | undefined, req: RequestView, error: PipelineError, obs: PipelineObserver = NO_OBSERVER): Decision {
  const ruleId = rule?.id
  try {
    let chosen: ErrorHandler | undefined
    if (rule !== undefined && rule.errors.length > 0) {
      const responsible = rule.errors.filter((h) => h.matches(error, req))
      if (responsible.length > 1) {
        const e = new PipelineError('ERR_INTERNAL', 'ambiguous_error_handler', 'Found more than one responsible error handler')
        return { kind: 'deny', ruleId, error: e, http: fallbackHttp(rs, req, e, obs) }
      }
      chosen = responsible[0]
    }
    const http = chosen !== undefined ? handleWith(chosen, error, req, obs) : fallbackHttp(rs, req, error, obs)
    return { kind: 'deny', ruleId, error, http }
  } catch (err) {
    const e = asPipelineError(err)
    return { kind: 'deny', ruleId, error: e, http: genericHttp(e) }
  }
}

function fallbackHttp(rs: RuleSet, req: RequestView, error: PipelineError, obs: PipelineObserver): DeniedHttp {
  for (const h of rs.fallback) if (h.matches(error, req)) return handleWith(h, error, req, obs)
  return genericHttp(error)
}

function handleWith(h: ErrorHandler, error: PipelineError, req: RequestView, obs: PipelineObserver): DeniedHttp {
  try {
    return h.handle(error, req)
  } catch (err) {
    obs.handlerError('error', idOf(h), codeOf(err))
    throw err
  }
}

/** When no error handler is responsible (or one fails): the code's status with a generic body. */
function genericHttp(error: PipelineError): DeniedHttp {
  const status = STATUS[error.code].http
  return {
    status,
    headers: JSON_CONTENT_TYPE,
    body: `{"error":{"code":${status},"status":"${STATUS_TEXT[status] ?? 'Error'}","message":"The request could not be authorized"}}`,
  }
}
const JSON_CONTENT_TYPE = Object.freeze([Object.freeze(['content-type', 'application/json; charset=utf-8'] as const)])
