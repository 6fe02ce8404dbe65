/**
 * The process logger: pino, JSON lines on stdout. Credentials are never logged: decision lines
 * carry only rule id, outcome, reason, status and timing, and the redact list below catches
 * header objects that might be logged by mistake.
 * @module
 */
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'portcullis' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]', 'headers["x-api-key"]', 'token', 'credential'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  )
}
