/**
 * Error handler `www_authenticate` (Oathkeeper `pipeline/errors/error_www_authenticate.go`):
 * asks the client for HTTP Basic credentials. Always answers **401** (whatever the error was, as
 * Oathkeeper), with `WWW-Authenticate: Basic realm="<realm>"` and the body `Unauthorized\n` as
 * `text/plain` (Go's `http.Error`, which also sets `X-Content-Type-Options: nosniff`).
 *
 * Deviation: Oathkeeper writes the realm unquoted (`Basic realm=Please authenticate.`), which is
 * not a valid challenge (RFC 7617 §2: the realm is a quoted-string) and makes browsers drop or cut
 * realms with spaces. We quote it; a realm that would need escaping (`"`, `\`) or contains control
 * characters is rejected at load.
 * @module
 */
import { z } from 'zod'
import { defineHandler, type DeniedHttp } from '../types.js'
import { compileWhen, WhenSchema } from './when.js'

const DEFAULT_REALM = 'Please authenticate.'
/** RFC 9110 qdtext (ASCII part): HTAB, SP and visible characters except `"` and `\`. */
const QDTEXT = /^[\t\x20\x21\x23-\x5b\x5d-\x7e]*$/

export const WwwAuthenticateConfig = z
  .object({
    /** The protection space shown by the browser's login prompt; `""` means the default (as Oathkeeper). */
    realm: z
      .string()
      .default(DEFAULT_REALM)
      .refine((r) => QDTEXT.test(r), {
        message: 'realm may only contain printable ASCII characters other than `"` and `\\`',
      })
      .transform((r) => (r === '' ? DEFAULT_REALM : r)),
    when: WhenSchema.optional(),
  })
  .strict()
  .prefault({})
export type WwwAuthenticateConfig = z.infer<typeof WwwAuthenticateConfig>

export const wwwAuthenticate = defineHandler('error', 'www_authenticate', WwwAuthenticateConfig, (config) => {
  const matches = compileWhen(config.when)
  const response: DeniedHttp = Object.freeze({
    status: 401,
    headers: Object.freeze([
      ['www-authenticate', `Basic realm="${config.realm}"`],
      ['content-type', 'text/plain; charset=utf-8'],
      ['x-content-type-options', 'nosniff'],
    ] as const),
    body: 'Unauthorized\n',
  })
  return {
    matches,
    handle: () => response,
  }
})
