/**
 * Every authenticator Portcullis ships, as an explicit list (no import side effects). Adding one
 * means adding its file and its entry here; the registry rejects duplicate ids at boot.
 * @module
 */
import { noop } from './noop.js'
import { anonymous } from './anonymous.js'
import { unauthorized } from './unauthorized.js'

export const authenticators = [noop, anonymous, unauthorized] as const
