/**
 * Authenticator `bearer_token` (Oathkeeper `pipeline/authn/authenticator_bearer_token.go`): sends
 * the request's token to a session endpoint (e.g. Ory Kratos `/sessions/whoami` with a session
 * token) and takes the subject (`subject_from`, default **`sub`**) and extra (`extra_from`, default
 * `extra`) from its JSON answer. The outbound call, the answer's meaning, the deviations from
 * Oathkeeper and the cache are shared with `cookie_session`: see shared/session-check.ts.
 *
 * Responsibility: the token is read with `token_from` (default `Authorization: Bearer <token>`,
 * strict: a merged `Bearer a, Bearer b` is a 401, security.md A48) and the authenticator is
 * responsible iff it is non-empty **and** starts with `prefix` (default `""`). Otherwise it is
 * **not responsible**, so the next authenticator can handle another kind of token.
 *
 * What carries the token to the session endpoint (deviation: Oathkeeper always forwards
 * `Authorization` and nothing else, so a token taken from another header or a cookie never reached
 * the endpoint unless listed in `forward_http_headers`):
 * - default / `{header: X}`: header X (`Authorization` by default) is always forwarded;
 * - `{cookie: name}`: the `Cookie` header is always forwarded;
 * - `{query_parameter: name}`: the request's query is the only way, so `preserve_query: false` is
 *   required (rejected at load otherwise).
 * `Authorization` is not added when the token comes from elsewhere; list it in
 * `forward_http_headers` if the endpoint needs it.
 * @module
 */
import { z } from 'zod'
import { defineHandler, NOT_RESPONSIBLE } from '../types.js'
import { tokenExtractor, TokenFromSchema, type TokenFrom } from './shared/token.js'
import { checkSessionCheckConfig, createSessionCheck, sessionCheckShape } from './shared/session-check.js'

export const BearerTokenConfig = z
  .strictObject({
    ...sessionCheckShape('sub'),
    /** Where the token is: `{header}`, `{query_parameter}` or `{cookie}`; default/null `Authorization: Bearer`. */
    token_from: TokenFromSchema.nullable().optional(),
    /** Responsible only for tokens starting with this (e.g. `ory_st_`). */
    prefix: z.string().max(1024).default(''),
  })
  .check((ctx) => {
    const cfg = ctx.value
    checkSessionCheckConfig(ctx.issues, cfg, carriersOf(cfg.token_from))
    if (cfg.token_from != null && 'query_parameter' in cfg.token_from && cfg.preserve_query) {
      ctx.issues.push({
        code: 'custom',
        input: cfg.preserve_query,
        path: ['preserve_query'],
        message: 'must be false when token_from is a query_parameter, or the token never reaches check_session_url',
      })
    }
  })
export type BearerTokenConfig = z.output<typeof BearerTokenConfig>

/** The request headers that carry the token: always forwarded, never overwritten. */
function carriersOf(from: TokenFrom | null | undefined): readonly string[] {
  if (from == null) return ['authorization']
  if ('header' in from) return [from.header.toLowerCase()]
  if ('cookie' in from) return ['cookie']
  return []
}

export const bearerToken = defineHandler('authn', 'bearer_token', BearerTokenConfig, (config, deps) => {
  const extract = tokenExtractor(config.token_from ?? undefined)
  const prefix = config.prefix
  const check = createSessionCheck(config, deps, { handlerId: 'bearer_token', carriers: carriersOf(config.token_from) })

  return {
    authenticate(req, s, signal) {
      const token = extract(req)
      // No token, or one of another kind (prefix): not ours, the next authenticator may take it.
      if (token === undefined || !token.startsWith(prefix)) return NOT_RESPONSIBLE
      return check(req, s, token, signal)
    },
  }
})
