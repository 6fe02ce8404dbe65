/**
 * Every mutator Portcullis ships, as an explicit list (no import side effects).
 * @module
 */
import { noop } from './noop.js'
import { header } from './header.js'

export const mutators = [noop, header] as const
