/**
 * Every error handler Portcullis ships, as an explicit list (no import side effects).
 * @module
 */
import { json } from './json.js'
import { wwwAuthenticate } from './www-authenticate.js'
import { redirect } from './redirect.js'

export const errorHandlers = [json, wwwAuthenticate, redirect] as const
