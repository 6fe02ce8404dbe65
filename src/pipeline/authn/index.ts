/**
 * Every authenticator Portcullis ships, as an explicit list (no import side effects). Adding one
 * means adding its file and its entry here; the registry rejects duplicate ids at boot.
 * @module
 */
import { noop } from './noop.js'
import { anonymous } from './anonymous.js'
import { unauthorized } from './unauthorized.js'
import { oauth2Introspection } from './oauth2-introspection.js'
import { oauth2ClientCredentials } from './oauth2-client-credentials.js'
import { jwt } from './jwt.js'
import { cookieSession } from './cookie-session.js'
import { bearerToken } from './bearer-token.js'

export const authenticators = [
  noop,
  anonymous,
  unauthorized,
  jwt,
  oauth2Introspection,
  oauth2ClientCredentials,
  bearerToken,
  cookieSession,
] as const
