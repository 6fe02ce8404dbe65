/**
 * Error handler `json` (Oathkeeper `pipeline/errors/error_json.go`, the default fallback): answers
 * with the error's HTTP status and a herodot-style JSON body
 *
 * ```json
 * {"error":{"code":401,"status":"Unauthorized","message":"The request could not be authorized"}}
 * ```
 *
 * With `verbose: false` (the default) the message is herodot's generic text for the status and
 * nothing else is said about the cause. With `verbose: true` the body carries the PipelineError's
 * `message` (always credential-free) and its stable `reason`. Headers attached to the error (e.g.
 * `Retry-After` on 429) are always copied, as Oathkeeper copies rate-limit headers.
 * @module
 */
import { STATUS_CODES } from 'node:http'
import { z } from 'zod'
import { defineHandler, type DeniedHttp } from '../types.js'
import type { PipelineError, PipelineErrorCode } from '../errors.js'
import { STATUS } from '../../server/status.js'
import { compileWhen, WhenSchema } from './when.js'

export const JsonConfig = z
  .object({
    /** Show the error's message and reason instead of the generic text for the status. */
    verbose: z.boolean().default(false),
    when: WhenSchema.optional(),
  })
  .strict()
  .prefault({})
export type JsonConfig = z.infer<typeof JsonConfig>

/** herodot's default messages (`herodot.ErrUnauthorized` …); other statuses get a generic one. */
const GENERIC_MESSAGES: Readonly<Record<number, string>> = {
  400: 'The request was malformed or contained invalid parameters',
  401: 'The request could not be authorized',
  403: 'The requested action was forbidden',
  404: 'The requested resource could not be found',
  429: 'Too many requests, please try again later',
  500: 'An internal server error occurred, please contact the system administrator',
  503: 'The service is temporarily unavailable, please try again later',
}

const CONTENT_TYPE = ['content-type', 'application/json; charset=utf-8'] as const
/** Headers the handler owns; an error cannot override them. */
const OWN_HEADERS = new Set(['content-type', 'content-length'])

function statusText(http: number): string {
  return STATUS_CODES[http] ?? 'Error'
}

function genericMessage(http: number): string {
  return GENERIC_MESSAGES[http] ?? (http >= 500 ? 'An error occurred on the server' : 'The request could not be processed')
}

function bodyOf(http: number, message: string, reason?: string): string {
  const error: Record<string, string | number> = { code: http, status: statusText(http), message }
  if (reason !== undefined) error['reason'] = reason
  return JSON.stringify({ error })
}

/** The non-verbose bodies depend only on the code: built once for the process. */
const GENERIC_BODIES = new Map<PipelineErrorCode, string>(
  (Object.keys(STATUS) as PipelineErrorCode[]).map((code) => {
    const http = STATUS[code].http
    return [code, bodyOf(http, genericMessage(http))]
  }),
)

function headersOf(err: PipelineError): DeniedHttp['headers'] {
  if (err.headers.length === 0) return [CONTENT_TYPE]
  const out: (readonly [string, string])[] = [CONTENT_TYPE]
  for (const [name, value] of err.headers) {
    const lower = name.toLowerCase()
    if (!OWN_HEADERS.has(lower)) out.push([lower, value])
  }
  return out
}

export const json = defineHandler('error', 'json', JsonConfig, (config) => {
  const matches = compileWhen(config.when)
  const verbose = config.verbose
  return {
    matches,
    handle(err) {
      const http = STATUS[err.code].http
      const body = verbose
        ? bodyOf(http, err.message, err.reason)
        : (GENERIC_BODIES.get(err.code) ?? bodyOf(http, genericMessage(http)))
      return { status: http, headers: headersOf(err), body }
    },
  }
})
