/**
 * Every authorizer Portcullis ships, as an explicit list (no import side effects).
 * @module
 */
import { allow } from './allow.js'
import { deny } from './deny.js'

export const authorizers = [allow, deny] as const
