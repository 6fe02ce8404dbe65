/**
 * Authenticator `cookie_session` (Oathkeeper `pipeline/authn/authenticator_cookie_session.go`):
 * checks the request's cookies against a session endpoint such as Ory Kratos `/sessions/whoami`
 * and takes the subject (`subject_from`, default `subject`; `identity.id` for Kratos) and extra
 * (`extra_from`, default `extra`) from its JSON answer. The outbound call, the answer's meaning,
 * the deviations from Oathkeeper and the cache are shared with `bearer_token` and documented in
 * shared/session-check.ts.
 *
 * Responsibility: with `only` empty, any cookie makes it responsible; otherwise one of the `only`
 * cookies must be present with a non-empty value. It is **not responsible** (the next
 * authenticator runs) when there is no such cookie, so a rule can chain `cookie_session` →
 * `bearer_token` → `anonymous` for browsers, API clients and the rest.
 *
 * The whole `Cookie` header is sent to the session endpoint (as Oathkeeper). A cookie the decision
 * depends on that appears twice (`session=a; session=b`, security.md A49) is ambiguous: the session
 * endpoint and the upstream could each read a different one, so it is a 401. With `only`, that
 * applies to the `only` names; without `only`, to every cookie name.
 * @module
 */
import { z } from 'zod'
import { defineHandler, NOT_RESPONSIBLE } from '../types.js'
import { parseCookies, tokenExtractor } from './shared/token.js'
import { checkSessionCheckConfig, createSessionCheck, sessionCheckShape } from './shared/session-check.js'

const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/

/** The credential's carrier: always forwarded, never overwritten by `additional_headers`. */
const CARRIERS = ['cookie'] as const

export const CookieSessionConfig = z
  .strictObject({
    ...sessionCheckShape('subject'),
    /** Cookie names this authenticator is responsible for; empty means any cookie. */
    only: z.array(z.string().regex(COOKIE_NAME, 'must be a cookie name')).max(64).default([]),
  })
  .check((ctx) => checkSessionCheckConfig(ctx.issues, ctx.value, CARRIERS))
export type CookieSessionConfig = z.output<typeof CookieSessionConfig>

export const cookieSession = defineHandler('authn', 'cookie_session', CookieSessionConfig, (config, deps) => {
  const check = createSessionCheck(config, deps, { handlerId: 'cookie_session', carriers: CARRIERS })
  // One strict extractor per `only` name: each throws 401 when its cookie is duplicated.
  const onlyCookies = [...new Set(config.only)].map((name) => tokenExtractor({ cookie: name }))

  return {
    authenticate(req, s, signal) {
      const header = req.headers.get('cookie')
      // No cookie at all (or none of the `only` ones): not ours, so a chain can fall through to
      // an authenticator for another kind of credential. Oathkeeper: `cookieSessionResponsible`.
      if (header === undefined || header === '') return NOT_RESPONSIBLE
      if (onlyCookies.length === 0) {
        if (parseCookies(header).size === 0) return NOT_RESPONSIBLE
      } else {
        let present = false
        // Every name is looked at (no early exit), so a duplicate of any of them is rejected.
        for (const extract of onlyCookies) if (extract(req) !== undefined) present = true
        if (!present) return NOT_RESPONSIBLE
      }
      return check(req, s, header, signal)
    },
  }
})
