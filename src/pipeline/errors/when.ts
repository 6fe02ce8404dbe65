/**
 * The `when` conditions of error handlers (Oathkeeper `pipeline/errors/when.go`), validated at
 * rule load and compiled to one predicate per handler.
 *
 * ```yaml
 * when:
 *   - error: [unauthorized, forbidden]          # names from STATUS[code].when
 *     request:
 *       header:
 *         content_type: [application/json]
 *         accept: [text/*]
 *       remote_ip:
 *         match: [10.0.0.0/8, "2001:db8::/32"]
 * ```
 *
 * Semantics (as Oathkeeper): no `when` (or `[]`) matches everything; list entries are OR-ed;
 * within an entry `error` and every `request` condition are AND-ed; an empty list inside a
 * condition (`error: []`, `accept: []`) does not constrain.
 *
 * MIME matching is asymmetric (Oathkeeper `matchesAcceptMIME`): a handler value may be `* /*` or
 * `type/*`; a wildcard on the request side only matches the identical handler value, so
 * `Accept: * /*` (curl's default) does not match `accept: [application/json]`. A missing or empty
 * header counts as `application/octet-stream`. Parameters (`;q=0.5`, `;charset=…`) are ignored
 * and names compared case-insensitively. (The spaces in `* /*` above only keep this comment open.)
 *
 * Differences from Oathkeeper, all failing closed at load:
 * - unknown error names are rejected (Oathkeeper's schema allows four names; ours allows every
 *   name of the STATUS table, see `WHEN_ERROR_NAMES`);
 * - `remote_ip.match` works (Oathkeeper's schema calls it `request.cidr`, so it could never be
 *   configured), CIDRs are validated, and the address is the downstream peer Envoy reports;
 * - `respect_forwarded_for_header: true` is rejected: `X-Forwarded-For` is client-controlled
 *   unless every hop rewrites it, and trusting it would let a client choose its error handler;
 * - handler MIME values must be `type/subtype`, `type/*` or `* /*` without parameters;
 * - a Content-Type that is not a media type matches nothing (Oathkeeper fails the handler).
 * @module
 */
import { BlockList, isIP } from 'node:net'
import { z } from 'zod'
import type { RequestView } from '../types.js'
import type { PipelineError } from '../errors.js'
import { STATUS, WHEN_ERROR_NAMES } from '../../server/status.js'

const ERROR_NAMES: ReadonlySet<string> = new Set(WHEN_ERROR_NAMES)

const MIME_TOKEN = "[!#$%&'*+\\-.^_`|~0-9a-z]+"
/** An RFC 9110 token without `*`, so that a handler value has no stray wildcard. */
const PLAIN_TOKEN = "[!#$%&'+\\-.^_`|~0-9a-z]+"
/** A handler-side MIME value: `*` + `/*`, `type/*` or `type/subtype`, lower-case. */
const HANDLER_MIME = new RegExp(`^(?:\\*/\\*|${PLAIN_TOKEN}/(?:\\*|${PLAIN_TOKEN}))$`)
/** A request-side media range (after dropping parameters), lower-case. */
const REQUEST_MIME = new RegExp(`^(?:${MIME_TOKEN})/(?:${MIME_TOKEN})$`)
const OCTET_STREAM = 'application/octet-stream'

const MimeList = z.array(
  z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .refine((v) => HANDLER_MIME.test(v), {
      message: 'must be a media type "type/subtype", "type/*" or "*/*", without parameters',
    }),
)

/** `a.b.c.d/n` or `ipv6/n`; the host bits may be set (as Go's ParseCIDR). */
function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = cidr.lastIndexOf('/')
  if (slash < 0) return undefined
  const address = cidr.slice(0, slash)
  const prefixText = cidr.slice(slash + 1)
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined
  const prefix = Number(prefixText)
  const version = isIP(address)
  if (version === 4 && prefix <= 32) return { address, prefix, family: 'ipv4' }
  if (version === 6 && prefix <= 128 && !address.includes('%')) return { address, prefix, family: 'ipv6' }
  return undefined
}

export const WhenEntry = z
  .object({
    /** Error names (lower-snake HTTP status texts, see `WHEN_ERROR_NAMES`). */
    error: z
      .array(
        z.string().refine((n) => ERROR_NAMES.has(n), {
          message: `unknown error name; expected one of ${WHEN_ERROR_NAMES.join(', ')}`,
        }),
      )
      .optional(),
    request: z
      .object({
        header: z
          .object({
            content_type: MimeList.optional(),
            accept: MimeList.optional(),
          })
          .strict()
          .optional(),
        remote_ip: z
          .object({
            match: z
              .array(z.string().refine((c) => parseCidr(c) !== undefined, { message: 'must be a CIDR, e.g. 10.0.0.0/8' }))
              .min(1),
            respect_forwarded_for_header: z
              .boolean()
              .optional()
              .refine((v) => v !== true, {
                message:
                  'X-Forwarded-For is not trusted: the client can set it. Match on the downstream address Envoy reports instead',
              }),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
export type WhenEntry = z.infer<typeof WhenEntry>

/** The `when` key shared by every error handler's config schema. */
export const WhenSchema = z.array(WhenEntry)
export type When = z.infer<typeof WhenSchema>

/** Is this handler responsible for this error on this request? */
export type WhenPredicate = (err: PipelineError, req: RequestView) => boolean

const ALWAYS: WhenPredicate = () => true

/** Compiles a validated `when` list to a predicate; all parsing happens here, once. */
export function compileWhen(when: When | undefined): WhenPredicate {
  if (when === undefined || when.length === 0) return ALWAYS
  const entries = when.map(compileEntry)
  if (entries.length === 1) return entries[0] ?? ALWAYS
  return function whenMatches(err, req) {
    for (const entry of entries) if (entry(err, req)) return true
    return false
  }
}

function compileEntry(entry: WhenEntry): WhenPredicate {
  const checks: WhenPredicate[] = []
  if (entry.error !== undefined && entry.error.length > 0) {
    const names: ReadonlySet<string> = new Set(entry.error)
    checks.push((err) => names.has(STATUS[err.code].when))
  }
  const header = entry.request?.header
  if (header?.content_type !== undefined && header.content_type.length > 0) {
    const accepts = compileMimeList(header.content_type)
    checks.push((_err, req) => {
      const ranges = parseMediaRanges(headerOrOctetStream(req, 'content-type'))
      // A Content-Type that is not a media type matches nothing.
      return ranges !== undefined && ranges.some(accepts)
    })
  }
  if (header?.accept !== undefined && header.accept.length > 0) {
    const accepts = compileMimeList(header.accept)
    checks.push((_err, req) => {
      const ranges = parseMediaRanges(headerOrOctetStream(req, 'accept'), true)
      return ranges !== undefined && ranges.some(accepts)
    })
  }
  const remoteIp = entry.request?.remote_ip
  if (remoteIp !== undefined) {
    const list = new BlockList()
    for (const cidr of remoteIp.match) {
      const parsed = parseCidr(cidr)
      // Unreachable after schema validation; fail closed rather than match everything.
      if (parsed === undefined) throw new Error(`invalid CIDR "${cidr}"`)
      list.addSubnet(parsed.address, parsed.prefix, parsed.family)
    }
    checks.push((_err, req) => {
      const ip = req.sourceIp
      if (ip === undefined) return false
      const version = isIP(ip)
      // Node's BlockList checks IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) against IPv4 rules.
      if (version === 4) return list.check(ip, 'ipv4')
      if (version === 6) return list.check(ip, 'ipv6')
      return false
    })
  }
  if (checks.length === 0) return ALWAYS
  return function whenEntryMatches(err, req) {
    for (const check of checks) if (!check(err, req)) return false
    return true
  }
}

function headerOrOctetStream(req: RequestView, name: string): string {
  const value = req.headers.get(name)
  return value === undefined || value.trim() === '' ? OCTET_STREAM : value
}

/**
 * Splits a header into lower-case media ranges without parameters. Returns undefined when an
 * entry is not a media type, unless `skipInvalid` (Accept lists: invalid entries are ignored).
 */
function parseMediaRanges(value: string, skipInvalid = false): string[] | undefined {
  const out: string[] = []
  for (const part of value.split(',')) {
    const semicolon = part.indexOf(';')
    const range = (semicolon < 0 ? part : part.slice(0, semicolon)).trim().toLowerCase()
    if (range === '' && skipInvalid) continue
    if (!REQUEST_MIME.test(range)) {
      if (skipInvalid) continue
      return undefined
    }
    out.push(range)
  }
  return out
}

/** The handler side of Oathkeeper's asymmetric MIME match, precomputed. */
function compileMimeList(values: readonly string[]): (requestRange: string) => boolean {
  let any = false
  const types = new Set<string>()
  const exact = new Set<string>()
  for (const v of values) {
    if (v === '*/*') any = true
    else if (v.endsWith('/*')) types.add(v.slice(0, -2))
    else exact.add(v)
  }
  if (any) return () => true
  return (range) => exact.has(range) || types.has(range.slice(0, range.indexOf('/')))
}
