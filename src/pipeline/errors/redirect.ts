/**
 * Error handler `redirect` (Oathkeeper `pipeline/errors/error_redirect.go`): sends the client to
 * `to` (typically a login page) with a 301 or 302, optionally telling it where to come back:
 * `Location: <to>?<return_to_query_param>=<url-encoded original URL>` (`&` when `to` already has
 * a query; a `#fragment` of `to` stays last).
 *
 * The original URL is rebuilt **only from the request view** Envoy reported
 * (`scheme://host/path?query`). Oathkeeper takes scheme, host and path from the client's
 * `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri` unconditionally, which lets any
 * client put an attacker's host in `return_to` (security.md A50); those headers are ignored here.
 *
 * `to` is operator configuration, validated at load (CVE-2021-21291-style confusions fail): it is
 * either an absolute `http(s)` URL without user information, or a path starting with exactly one
 * `/`. Protocol-relative `//host`, backslashes, whitespace, control and non-ASCII characters are
 * rejected (percent-encode them). The response has no body (Oathkeeper's `http.Redirect` writes a
 * small HTML link that no client needs).
 * @module
 */
import { z } from 'zod'
import { defineHandler, type DeniedHttp, type RequestView } from '../types.js'
import { compileWhen, WhenSchema } from './when.js'

/** Visible ASCII only: no spaces, controls (CR/LF header injection) or non-ASCII. */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/
/** Scheme and authority of an absolute target; the authority may not hold `@` or `\`. */
const ABSOLUTE = /^https?:\/\/[^/?#@\\]+(?:[/?#]|$)/i

function checkTarget(to: string): string | undefined {
  if (!VISIBLE_ASCII.test(to)) {
    return 'must not contain whitespace, control or non-ASCII characters (percent-encode them)'
  }
  if (to.includes('\\')) return 'must not contain a backslash'
  if (to.startsWith('/')) {
    return to.startsWith('//') ? 'must not be protocol-relative ("//host"); use an absolute https URL' : undefined
  }
  if (!ABSOLUTE.test(to)) return 'must be an absolute http(s) URL without user information, or a path starting with "/"'
  let url: URL
  try {
    url = new URL(to)
  } catch {
    return 'is not a valid URL'
  }
  if (url.hostname === '' || url.username !== '' || url.password !== '') return 'must name a host and no user information'
  return undefined
}

const RedirectConfigObject = z
  .object({
    /** Where to send the client: absolute http(s) URL or a path starting with `/`. Required. */
    to: z.string().superRefine((to, ctx) => {
      const problem = checkTarget(to)
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `redirect target ${problem}` })
    }),
    /** 301 or 302 (default). Oathkeeper turns any other number into 302; we reject it. */
    code: z.union([z.literal(301), z.literal(302)]).default(302),
    /** Name of the query parameter carrying the original URL; absent or `""`: none is added. */
    return_to_query_param: z.string().optional(),
    when: WhenSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const param = c.return_to_query_param
    if (param === undefined || param === '') return
    const hash = c.to.indexOf('#')
    const query = (hash < 0 ? c.to : c.to.slice(0, hash)).split('?').slice(1).join('?')
    if (new URLSearchParams(query).has(param)) {
      ctx.addIssue({
        code: 'custom',
        path: ['return_to_query_param'],
        message: `"to" already has a "${param}" query parameter`,
      })
    }
  })

/** A rule without any `config` (and no global one) reads as `{}`, so a missing key is reported by its path. */
export const RedirectConfig = z.preprocess((v) => (v === undefined ? {} : v), RedirectConfigObject)
export type RedirectConfig = z.infer<typeof RedirectConfig>

/** The URL the client asked for, from the Envoy-reported attributes only (never X-Forwarded-*). */
export function originalUrl(req: RequestView): string {
  return `${req.scheme}://${req.host}${req.path}${req.query === '' ? '' : `?${req.query}`}`
}

export const redirect = defineHandler('error', 'redirect', RedirectConfig, (config) => {
  const matches = compileWhen(config.when)
  const status = config.code
  const param = config.return_to_query_param

  if (param === undefined || param === '') {
    const response: DeniedHttp = Object.freeze({
      status,
      headers: Object.freeze([['location', config.to]] as const),
      body: '',
    })
    return { matches, handle: () => response }
  }

  // Split `to` once: everything before the fragment, the separator, and the fragment.
  const hash = config.to.indexOf('#')
  const base = hash < 0 ? config.to : config.to.slice(0, hash)
  const fragment = hash < 0 ? '' : config.to.slice(hash)
  const separator = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&'
  const prefix = `${base}${separator}${encodeURIComponent(param)}=`

  return {
    matches,
    handle(_err, req) {
      return {
        status,
        headers: [['location', `${prefix}${encodeURIComponent(originalUrl(req))}${fragment}`]],
        body: '',
      }
    },
  }
})
