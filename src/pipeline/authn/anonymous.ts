/**
 * Authenticator `anonymous` (Oathkeeper `pipeline/authn/authenticator_anonymous.go`): gives
 * requests that carry no `Authorization` header the configured subject.
 *
 * It declares itself **not responsible** (returns `NOT_RESPONSIBLE`, so the next authenticator
 * runs) as soon as the request has a non-empty `Authorization` header: a client that presents a
 * credential must have it checked, never be silently downgraded to "anonymous". Cookies and other
 * headers do not matter, exactly as in Oathkeeper.
 * @module
 */
import { z } from 'zod'
import { defineHandler, NOT_RESPONSIBLE } from '../types.js'

const DEFAULT_SUBJECT = 'anonymous'

export const AnonymousConfig = z
  .object({
    /** The subject given to anonymous requests. Oathkeeper also turns `""` into the default. */
    subject: z
      .string()
      .default(DEFAULT_SUBJECT)
      .transform((s) => (s === '' ? DEFAULT_SUBJECT : s)),
  })
  .strict()
  .prefault({})
export type AnonymousConfig = z.infer<typeof AnonymousConfig>

export const anonymous = defineHandler('authn', 'anonymous', AnonymousConfig, (config) => {
  const subject = config.subject
  return {
    authenticate(req, s) {
      // RequestView joins repeated headers with ",", so a present header is never lost; an empty
      // value counts as absent (Oathkeeper: `r.Header.Get("Authorization") == ""`).
      const authorization = req.headers.get('authorization')
      if (authorization !== undefined && authorization !== '') return NOT_RESPONSIBLE
      s.subject = subject
      return undefined
    },
  }
})
