/**
 * Configuration of the HTTP API server (`serve.api`, Oathkeeper's API port): health probes and the
 * Oathkeeper-compatible decisions API (src/server/http-api.ts, src/server/decisions.ts).
 *
 * ```yaml
 * serve:
 *   api:
 *     host: 127.0.0.1            # default; Oathkeeper's port is 4456
 *     port: 4456                 # 0 picks a free port (tests); the chosen port is logged
 *     trusted_proxies:           # peers whose X-Forwarded-* headers are honoured
 *       - 127.0.0.0/8            # default: loopback only
 *       - ::1/128
 *     max_check_duration_ms: 1000
 *     max_header_bytes: 32768
 *     timeout: { read: 5s, write: 10s, idle: 120s }
 * ```
 *
 * `trusted_proxies` takes CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses (`10.1.2.3`,
 * meaning /32 or /128). An empty list trusts nobody: every request carrying an `X-Forwarded-*` or
 * `Forwarded` header is then refused, and decisions use the request as received (Envoy's
 * `http_service` mode works without forwarded headers, but then sees every request as `http`).
 * @module
 */
import { BlockList, isIP } from 'node:net'
import { z } from 'zod'
import { DurationSchema } from '../config/duration.js'

const KiB = 1024

/** A parsed CIDR: network address, prefix length, address family. */
export interface Cidr {
  readonly address: string
  readonly prefix: number
  readonly family: 'ipv4' | 'ipv6'
}

/**
 * Parses `a.b.c.d/n`, `x:y::z/n` or a bare address (full-length prefix). Zone ids (`fe80::1%eth0`)
 * and prefixes with leading zeros are rejected. Returns undefined for anything else.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.lastIndexOf('/')
  const address = slash < 0 ? text : text.slice(0, slash)
  const version = isIP(address)
  if (version === 0 || address.includes('%')) return undefined
  const max = version === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const digits = text.slice(slash + 1)
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(digits)) return undefined
    prefix = Number(digits)
    if (prefix > max) return undefined
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' }
}

const CidrString = z.string().refine((s) => parseCidr(s) !== undefined, {
  message: 'must be an IP address or a CIDR, e.g. 10.0.0.0/8 or fd00::/8',
})

/** Loopback: the proxy runs on the same host or in the same pod (the common sidecar layout). */
export const DEFAULT_TRUSTED_PROXIES: readonly string[] = Object.freeze(['127.0.0.0/8', '::1/128'])

/** Node's timers take whole milliseconds; below 10 ms nothing useful can happen. */
const Timeout = z.number().min(10, 'must be at least 10ms').max(3_600_000, 'must be at most 1h').transform(Math.ceil)

export const ApiConfigSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  /** Oathkeeper's API port. 0 picks a free port (tests); the chosen port is logged. */
  port: z.int().min(0).max(65535).default(4456),
  /**
   * Peers (the TCP source address of the connection) whose `X-Forwarded-Method/-Proto/-Host/-Uri`
   * headers describe the request to decide on. A request from any other peer that carries an
   * `X-Forwarded-*` or `Forwarded` header is refused with 403.
   */
  trusted_proxies: z.array(CidrString).default([...DEFAULT_TRUSTED_PROXIES]),
  /**
   * Upper bound for one decision, in milliseconds (as `serve.grpc.max_check_duration_ms`). When
   * Envoy sends `x-envoy-expected-rq-timeout-ms`, Portcullis answers (deny 503) shortly before that
   * instead of letting Envoy time out.
   */
  max_check_duration_ms: z.int().min(1).max(60_000).default(1000),
  /** Largest request head (request line + headers) accepted; larger requests get 431. */
  max_header_bytes: z
    .int()
    .min(4 * KiB)
    .max(64 * KiB)
    .default(32 * KiB),
  timeout: z
    .strictObject({
      /** Time to receive the whole request (head and any body); slow-loris bound. Go duration. */
      read: DurationSchema.pipe(Timeout).prefault('5s'),
      /**
       * Socket inactivity while a request is open, including the wait for its decision, so it must
       * exceed `max_check_duration_ms`. Go duration.
       */
      write: DurationSchema.pipe(Timeout).prefault('10s'),
      /**
       * Keep-alive: how long an idle connection stays open between requests. Keep it above the
       * proxy's own idle timeout (nginx `keepalive_timeout` 60 s, Envoy cluster `idle_timeout`), so
       * the proxy closes first and never sends a decision on a connection being closed. Go duration.
       */
      idle: DurationSchema.pipe(Timeout).prefault('120s'),
    })
    .prefault({}),
}).superRefine((c, ctx) => {
  if (c.timeout.write <= c.max_check_duration_ms) {
    ctx.addIssue({
      code: 'custom',
      path: ['timeout', 'write'],
      message: `must be longer than max_check_duration_ms (${c.max_check_duration_ms} ms), or waiting decisions are cut off`,
    })
  }
})

export type ApiConfig = z.infer<typeof ApiConfigSchema>

/** Is this TCP peer a trusted proxy? `undefined` (socket already gone) is never trusted. */
export type TrustedProxies = (peer: string | undefined) => boolean

/** Compiles a validated `trusted_proxies` list into a membership test (built once at start). */
export function compileTrustedProxies(cidrs: readonly string[]): TrustedProxies {
  if (cidrs.length === 0) return () => false
  const list = new BlockList()
  for (const text of cidrs) {
    const c = parseCidr(text)
    // Unreachable after schema validation; fail closed rather than trust everything.
    if (c === undefined) throw new Error(`invalid trusted proxy CIDR "${text}"`)
    list.addSubnet(c.address, c.prefix, c.family)
  }
  return function isTrustedProxy(peer) {
    if (peer === undefined) return false
    const ip = unmapIpv4(peer)
    const version = isIP(ip)
    if (version === 4) return list.check(ip, 'ipv4')
    if (version === 6) return list.check(ip, 'ipv6')
    return false
  }
}

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) → `1.2.3.4`; anything else unchanged. */
export function unmapIpv4(ip: string): string {
  if (ip.length > 7 && ip.charCodeAt(0) === 0x3a && /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip)) return ip.slice(7)
  return ip
}
