/**
 * JWKS provider: the verification keys of one JSON Web Key Set URL (`http(s)://` or `file://`),
 * fetched in the background and shared by every rule and handler instance that names that URL.
 * It replaces jose's `createRemoteJWKSet`, whose fetch has no body cap, a 5 s timeout, and throws
 * once its cache is older than `cacheMaxAge` even when the IdP is merely down (security.md §2.7).
 *
 * Contract:
 * - **Fetch** at creation, then every `refreshIntervalMs` (minus up to 10 % jitter) on an unref'd
 *   timer. A failed fetch is retried sooner: 1 s, 2 s, 4 s … capped at `refreshIntervalMs`.
 *   Through the shared `HttpClient`: GET, `fetchTimeoutMs` deadline, body capped at `maxBytes`,
 *   redirects never followed (a 3xx is a failure). `file://` URLs are re-read on each refresh,
 *   with the same size cap.
 * - **Last-good keys**: a failed fetch (transport error, non-200, HTML, invalid JSON, no usable
 *   key, huge body, timeout, redirect) never replaces the keys. They stay usable until
 *   `maxStalenessMs` after the last *successful* fetch; past that `current()` is `undefined`
 *   and the caller denies with 503 (security.md §5.3).
 * - **On demand**: `refetch()` (an unknown `kid`, or no usable keys) joins the fetch in flight or
 *   starts one, at most once per `unknownKidCooldownMs` (coalesced and rate limited, so a flood of
 *   random kids costs the IdP at most one request per cooldown; Oathkeeper refetches on every
 *   miss). A caller waits at most `maxWaitMs` and never cancels the fetch for others.
 * - **Keys** are parsed and imported once per fetch (node `createPublicKey`, which validates
 *   them; signatures are checked against the `KeyObject` itself, src/credentials/jws.ts), never
 *   per request. Only public asymmetric signature keys are kept: `oct` (symmetric) keys, keys with
 *   `use` other than `sig`, keys whose `key_ops` lack `verify`, unsupported key types or curves,
 *   RSA keys under 2048 bits and malformed keys are skipped (logged). Private members (`d`, …) of
 *   a leaked private key are dropped, only the public part is used. At most `MAX_KEYS` keys.
 *
 * **Sharing and lifetime.** Providers live in a registry keyed by the process's `HttpClient`
 * (`deps.http`: one per process, and kept by the rule reloader, which hands each build a *copy* of
 * the deps object), then by (URL, settings): `jwksProviderFor()`. `HandlerDeps` has no lifecycle
 * hook, so each `jwksProviderFor()` call also takes a **lease** in `deps.caches`: a zero-size cache
 * named `jwks:<12 hex>` (≈ 400 bytes of budget). The reloader keeps the caches the new rule set
 * asked for and disposes the others, so when no rule uses a URL any more its lease is disposed and
 * the provider stops at its next timer tick. A provider also stops on `dispose()`, on
 * `disposeJwksProviders(deps)`, and by itself when a background fetch finds the `HttpClient`
 * closed (process shutdown). Its timer is unref'd, so it never keeps the process alive.
 * @module
 */
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { open } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { CREDENTIAL_KEY_LENGTH, ENTRY_OVERHEAD_BYTES, type AuthCache, type CacheOptions } from '../cache/index.js'
import type { CacheRegistry } from '../cache/registry.js'
import { OutboundError, type HttpClient } from '../http/client.js'

/** Keys kept from one JWKS document at most; the rest are ignored (logged). */
export const MAX_KEYS = 100

/** First retry delay after a failed fetch; doubles up to the refresh interval. */
const FIRST_RETRY_MS = 1000

/** Smallest RSA modulus accepted (src/credentials/jws.ts refuses smaller ones at verification too). */
const MIN_RSA_BITS = 2048

/** Node clamps timer delays above this to 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** JWS algorithms a JWKS key can verify, with the key type (and curve) each one needs. */
export const KEY_FAMILY = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
} as const satisfies Record<string, { readonly kty: string; readonly crv?: string }>

export type AsymmetricAlgorithm = keyof typeof KEY_FAMILY
export const ASYMMETRIC_ALGORITHMS = Object.keys(KEY_FAMILY) as readonly AsymmetricAlgorithm[]

export function isAsymmetricAlgorithm(alg: string): alg is AsymmetricAlgorithm {
  return Object.hasOwn(KEY_FAMILY, alg)
}

/** Timing and size limits of one provider; all in milliseconds or bytes. */
export interface JwksSettings {
  /** Background refresh period after a successful fetch. */
  readonly refreshIntervalMs: number
  /** How long after the last successful fetch its keys may still be used. */
  readonly maxStalenessMs: number
  /** Least time between two on-demand (unknown kid / no keys) fetches. */
  readonly unknownKidCooldownMs: number
  /** Deadline of one fetch (connect, headers, body, retries). */
  readonly fetchTimeoutMs: number
  /** Body (or file) size cap. */
  readonly maxBytes: number
}

/** What a provider needs from the process: the `HandlerDeps` subset. */
export interface JwksDeps {
  readonly http: HttpClient
  readonly log: Logger
  /** Wall clock (epoch ms); staleness and rate limits are measured with it. */
  readonly now: () => number
  /** Where leases are taken (see the module comment); without it a provider lives until disposed. */
  readonly caches?: CacheRegistry
}

/** One verification key of a fetched set. Immutable. */
export interface VerificationKey {
  readonly kid: string | undefined
  readonly kty: 'RSA' | 'EC' | 'OKP'
  readonly crv: string | undefined
  /** The JWK's `alg`, when it restricts the key to one algorithm. */
  readonly alg: string | undefined
  readonly key: KeyObject
  /** RFC 7638 thumbprint (SHA-256, base64url): identifies the key across fetches. */
  readonly thumbprint: string
}

/** The keys of one successful fetch. */
export interface KeySet {
  readonly fetchedAtMs: number
  readonly keys: readonly VerificationKey[]
  readonly thumbprints: ReadonlySet<string>
}

/** Counters since creation. */
export interface JwksStats {
  /** Fetches started (background, initial and on demand). */
  readonly fetches: number
  readonly fetchFailures: number
  /** On-demand fetches started by `refetch()`. */
  readonly onDemandFetches: number
  /** `refetch()` calls answered without a fetch because of the cooldown. */
  readonly rateLimited: number
  /** `select()` calls: one per key resolution (signature verification about to happen). */
  readonly selections: number
  /** Keys in the current set (0 when none was ever fetched). */
  readonly keys: number
  /** When the current set was fetched (epoch ms), if any. */
  readonly fetchedAtMs: number | undefined
  /** Reason id of the last failure since the last success, if any. */
  readonly lastError: string | undefined
}

/** Why a fetch failed; `reason` is a bounded id, `message` is safe to log (no body, no query). */
class JwksFetchError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message)
    this.name = 'JwksFetchError'
  }
}

/** The verification keys of one JWKS URL. Create through `jwksProviderFor`. */
export class JwksProvider {
  readonly url: string
  readonly settings: JwksSettings
  /** `scheme://host:port/path` (no query, no userinfo) or the file path: for logs. */
  readonly #where: string
  readonly #target: URL
  readonly #deps: JwksDeps
  readonly #onDispose: (() => void) | undefined
  readonly #abort = new AbortController()
  #keys: KeySet | undefined
  #fetching: Promise<void> | undefined
  #bounded: { readonly pending: Promise<void>; readonly ms: number; readonly wait: Promise<void> } | undefined
  readonly #leases = new Set<AuthCache<unknown>>()
  #timer: NodeJS.Timeout | undefined
  #failuresInARow = 0
  #lastOnDemandMs = Number.NEGATIVE_INFINITY
  #disposed = false
  #fetches = 0
  #fetchFailures = 0
  #onDemandFetches = 0
  #rateLimited = 0
  #selections = 0
  #lastError: string | undefined

  /** Starts the first fetch at once. Prefer `jwksProviderFor`, which shares providers. */
  constructor(url: string, settings: JwksSettings, deps: JwksDeps, onDispose?: () => void) {
    this.url = url
    this.settings = settings
    this.#deps = deps
    this.#onDispose = onDispose
    this.#target = new URL(url)
    this.#where = this.#target.protocol === 'file:' ? fileURLToPath(this.#target) : `${this.#target.origin}${this.#target.pathname}`
    void this.#startFetch()
  }

  /**
   * The keys, if a fetch ever succeeded and did so at most `maxStalenessMs` ago; else `undefined`
   * (deny with 503).
   */
  current(): KeySet | undefined {
    const set = this.#keys
    if (set === undefined) return undefined
    return this.#deps.now() - set.fetchedAtMs <= this.settings.maxStalenessMs ? set : undefined
  }

  /**
   * The keys of `set` that can verify a token with header `alg` and `kid`: key type and curve of
   * the algorithm's family, the JWK's own `alg` equal to it when present, and — when the token
   * names a `kid` — that `kid`. Counted in `stats().selections`.
   */
  select(set: KeySet, alg: AsymmetricAlgorithm, kid: string | undefined): VerificationKey[] {
    this.#selections++
    const family: { readonly kty: string; readonly crv?: string } = KEY_FAMILY[alg]
    const out: VerificationKey[] = []
    for (const k of set.keys) {
      if (kid !== undefined && k.kid !== kid) continue
      if (k.kty !== family.kty) continue
      if (family.crv !== undefined && k.crv !== family.crv) continue
      if (k.alg !== undefined && k.alg !== alg) continue
      out.push(k)
    }
    return out
  }

  /**
   * Fetches again because a token named a key the set lacks, or because there are no usable keys:
   * joins the fetch in flight, or starts one unless another on-demand fetch started less than
   * `unknownKidCooldownMs` ago. Resolves when that fetch settles, after `maxWaitMs`, or when
   * `signal` fires, whichever comes first (the `maxWaitMs` clock starts with the fetch's first
   * waiter); never rejects. The fetch itself is never cancelled.
   */
  async refetch(maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#disposed) return
    let pending = this.#fetching
    if (pending === undefined) {
      const now = this.#deps.now()
      if (now - this.#lastOnDemandMs < this.settings.unknownKidCooldownMs) {
        this.#rateLimited++
        return
      }
      this.#lastOnDemandMs = now
      this.#onDemandFetches++
      pending = this.#startFetch()
    }
    const wait = this.#boundedWait(pending, maxWaitMs)
    return signal === undefined ? wait : untilAborted(wait, signal)
  }

  /**
   * `pending`, or `ms` after the first waiter arrived, whichever comes first: one timer shared by
   * every waiter of a fetch (a flood of unknown kids must not create a timer per request).
   */
  #boundedWait(pending: Promise<void>, ms: number): Promise<void> {
    const b = this.#bounded
    if (b !== undefined && b.pending === pending && b.ms === ms) return b.wait
    const wait = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      const done = (): void => {
        clearTimeout(timer)
        resolve()
      }
      pending.then(done, done)
    })
    this.#bounded = { pending, ms, wait }
    return wait
  }

  /** Fetches now (joining one in flight) and resolves when it settled; for tests and tooling. */
  refresh(): Promise<void> {
    return this.#fetching ?? this.#startFetch()
  }

  stats(): JwksStats {
    return {
      fetches: this.#fetches,
      fetchFailures: this.#fetchFailures,
      onDemandFetches: this.#onDemandFetches,
      rateLimited: this.#rateLimited,
      selections: this.#selections,
      keys: this.#keys?.keys.length ?? 0,
      fetchedAtMs: this.#keys?.fetchedAtMs,
      lastError: this.#lastError,
    }
  }

  get disposed(): boolean {
    return this.#disposed
  }

  /** Keeps the provider alive while `lease` (a cache of the rule set using it) is not disposed. */
  addLease(lease: AuthCache<unknown>): void {
    for (const l of this.#leases) if (l.disposed) this.#leases.delete(l)
    this.#leases.add(lease)
  }

  /** True when leases were taken and every one of them has been disposed: no rule uses us. */
  get released(): boolean {
    if (this.#leases.size === 0) return false
    for (const l of this.#leases) if (!l.disposed) return false
    return true
  }

  /** Stops the timer, aborts a fetch in flight, forgets the keys. Idempotent. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#abort.abort()
    this.#keys = undefined
    this.#onDispose?.()
  }

  /** Starts a fetch (the caller checked none is in flight); clears `#fetching` when settled. */
  #startFetch(): Promise<void> {
    if (this.#disposed) return Promise.resolve()
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    const p = this.#fetchOnce().finally(() => {
      if (this.#fetching === p) this.#fetching = undefined
      this.#schedule()
    })
    this.#fetching = p
    return p
  }

  async #fetchOnce(): Promise<void> {
    this.#fetches++
    const log = this.#deps.log
    try {
      const doc = await this.#read()
      const { set, skipped } = parseJwks(doc, this.#deps.now())
      const changed = !sameKeys(this.#keys, set)
      if (this.#disposed) return
      this.#keys = set
      const recovered = this.#lastError !== undefined
      this.#failuresInARow = 0
      this.#lastError = undefined
      if (skipped.length > 0 && changed) log.warn({ jwks_url: this.#where, skipped }, 'jwks: some keys were ignored')
      if (changed || recovered) log.info({ jwks_url: this.#where, keys: set.keys.length }, 'jwks: keys loaded')
    } catch (err) {
      if (this.#disposed) return
      const e = asFetchError(err)
      this.#failuresInARow++
      this.#fetchFailures++
      this.#lastError = e.reason
      const set = this.#keys
      const ageMs = set === undefined ? undefined : this.#deps.now() - set.fetchedAtMs
      log.warn(
        {
          jwks_url: this.#where,
          reason: e.reason,
          err: e.message,
          failures_in_a_row: this.#failuresInARow,
          ...(ageMs === undefined
            ? { keys: 'none' }
            : { keys_age_ms: ageMs, keys_usable: ageMs <= this.settings.maxStalenessMs }),
        },
        'jwks: fetch failed; keeping the last good keys',
      )
      // The shared client only aborts our own calls when it is closed: the process is stopping.
      if (err instanceof OutboundError && err.kind === 'aborted') this.dispose()
    }
  }

  /** The JWKS document: HTTP GET through the shared client, or the file. */
  async #read(): Promise<unknown> {
    const { fetchTimeoutMs, maxBytes } = this.settings
    if (this.#target.protocol === 'file:') return readJsonFile(this.#where, maxBytes)
    const res = await this.#deps.http.request({
      url: this.#target,
      method: 'GET',
      headers: { accept: 'application/jwk-set+json, application/json;q=0.9' },
      timeoutMs: fetchTimeoutMs,
      maxBytes,
      retryable: true,
      signal: this.#abort.signal,
    })
    if (res.status >= 300 && res.status < 400) {
      throw new JwksFetchError('redirect', `status ${res.status} (redirects are not followed)`)
    }
    if (res.status !== 200) throw new JwksFetchError(`status_${res.status}`, `status ${res.status}`)
    try {
      return JSON.parse(res.body.toString('utf8')) as unknown
    } catch {
      throw new JwksFetchError('not_json', 'response body is not JSON')
    }
  }

  #schedule(): void {
    if (this.#disposed || this.#fetching !== undefined) return
    const { refreshIntervalMs } = this.settings
    let delay: number
    if (this.#failuresInARow === 0) {
      delay = refreshIntervalMs * (0.9 + 0.1 * Math.random())
    } else {
      delay = Math.min(refreshIntervalMs, FIRST_RETRY_MS * 2 ** Math.min(30, this.#failuresInARow - 1))
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.released) {
        this.#deps.log.info({ jwks_url: this.#where }, 'jwks: no rule uses this key set any more; stopped')
        this.dispose()
        return
      }
      if (this.#fetching === undefined) void this.#startFetch()
    }, Math.min(MAX_TIMER_MS, Math.max(1, Math.round(delay))))
    this.#timer.unref()
  }
}

/** Resolves when `p` settles or when `signal` fires; never rejects. */
function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
    p.then(done, done)
  })
}

function asFetchError(err: unknown): JwksFetchError {
  if (err instanceof JwksFetchError) return err
  if (err instanceof OutboundError) return new JwksFetchError(err.kind, err.message)
  const code = (err as { code?: unknown } | null)?.code
  return new JwksFetchError('read_failed', typeof code === 'string' ? `cannot read the file (${code})` : 'cannot read the JWKS')
}

/** Reads at most `maxBytes` of a file and parses it as JSON. */
async function readJsonFile(path: string, maxBytes: number): Promise<unknown> {
  const fh = await open(path, 'r')
  try {
    const { size } = await fh.stat()
    if (size > maxBytes) throw new JwksFetchError('too_large', `file exceeds ${maxBytes} bytes`)
    const buf = Buffer.alloc(Math.min(maxBytes, size) + 1)
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    if (bytesRead > maxBytes) throw new JwksFetchError('too_large', `file exceeds ${maxBytes} bytes`)
    try {
      return JSON.parse(buf.subarray(0, bytesRead).toString('utf8')) as unknown
    } catch {
      throw new JwksFetchError('not_json', 'file is not JSON')
    }
  } finally {
    await fh.close()
  }
}

/** Public members per key type, in RFC 7638 (thumbprint) order. */
const PUBLIC_MEMBERS = { RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] } as const
const EC_CURVES: ReadonlySet<string> = new Set(['P-256', 'P-384', 'P-521'])
const B64URL = /^[A-Za-z0-9_-]+$/

/**
 * Parses a JWKS document into its usable verification keys (see the module comment for what is
 * skipped). Throws `JwksFetchError` when the document is not a key set or no key is usable.
 * Exported for tests.
 */
export function parseJwks(doc: unknown, fetchedAtMs: number): { set: KeySet; skipped: string[] } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new JwksFetchError('malformed', 'the document is not a JSON object')
  }
  const list = (doc as { keys?: unknown }).keys
  if (!Array.isArray(list)) throw new JwksFetchError('malformed', 'the document has no "keys" array')
  const keys: VerificationKey[] = []
  const skipped: string[] = []
  const skip = (i: number, why: string): void => void skipped.push(`keys[${i}]: ${why}`)
  for (let i = 0; i < list.length; i++) {
    if (keys.length >= MAX_KEYS) {
      skip(i, `more than ${MAX_KEYS} keys; the rest are ignored`)
      break
    }
    const k = parseKey(list[i])
    if (typeof k === 'string') skip(i, k)
    else keys.push(k)
  }
  if (keys.length === 0) {
    throw new JwksFetchError('no_usable_keys', `no usable signature key (${list.length} in the document)`)
  }
  return { set: { fetchedAtMs, keys, thumbprints: new Set(keys.map((k) => k.thumbprint)) }, skipped }
}

/** One JWK → a verification key, or why it is skipped. */
function parseKey(raw: unknown): VerificationKey | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not an object'
  const jwk = raw as Record<string, unknown>
  const { kty, kid, use, alg, crv } = jwk
  const keyOps = jwk['key_ops']
  if (kty === 'oct') return 'symmetric (oct) keys are never used'
  if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return `unsupported kty ${typeof kty === 'string' ? kty.slice(0, 16) : typeof kty}`
  if (kid !== undefined && typeof kid !== 'string') return 'kid is not a string'
  if (use !== undefined && use !== 'sig') return 'use is not "sig"'
  if (keyOps !== undefined && (!Array.isArray(keyOps) || !keyOps.includes('verify'))) return 'key_ops lacks "verify"'
  if (alg !== undefined && (typeof alg !== 'string' || !isAsymmetricAlgorithm(alg) || KEY_FAMILY[alg].kty !== kty)) {
    return 'alg is not a signature algorithm for this key type'
  }
  if (kty === 'EC' && (typeof crv !== 'string' || !EC_CURVES.has(crv))) return 'unsupported EC curve'
  if (kty === 'OKP' && crv !== 'Ed25519') return 'unsupported OKP curve'
  const members = PUBLIC_MEMBERS[kty]
  const pub: Record<string, string> = {}
  for (const m of members) {
    const v = jwk[m]
    if (typeof v !== 'string' || (m !== 'kty' && m !== 'crv' && !B64URL.test(v))) return `missing or invalid "${m}"`
    pub[m] = v
  }
  let key: KeyObject
  try {
    key = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' })
  } catch {
    return 'invalid key material'
  }
  if (kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    return `RSA modulus under ${MIN_RSA_BITS} bits`
  }
  // RFC 7638: the required members, lexicographic order, no whitespace.
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, pub[m]])))
  return Object.freeze({
    kid,
    kty,
    crv: typeof crv === 'string' ? crv : undefined,
    alg: alg as string | undefined,
    key,
    thumbprint: createHash('sha256').update(canonical).digest('base64url'),
  })
}

function sameKeys(a: KeySet | undefined, b: KeySet): boolean {
  if (a === undefined || a.keys.length !== b.keys.length) return false
  return a.keys.every((k, i) => {
    const o = b.keys[i]
    return o !== undefined && o.thumbprint === k.thumbprint && o.kid === k.kid && o.alg === k.alg
  })
}

// ---------------------------------------------------------------------------------------------
// Registry: one provider per (process HTTP client, URL, settings).

const registries = new WeakMap<HttpClient, Map<string, JwksProvider>>()

/**
 * The provider for `url` with `settings`, shared by every caller with the same `deps.http` (the
 * process's client); created, and its first fetch started, on first use. Takes a lease in
 * `deps.caches` when given (see the module comment); throws what `CacheRegistry.create` throws.
 */
export function jwksProviderFor(deps: JwksDeps, url: string, settings: JwksSettings): JwksProvider {
  let registry = registries.get(deps.http)
  if (registry === undefined) {
    registry = new Map()
    registries.set(deps.http, registry)
  }
  const key = `${url}\n${settings.refreshIntervalMs}|${settings.maxStalenessMs}|${settings.unknownKidCooldownMs}|${settings.fetchTimeoutMs}|${settings.maxBytes}`
  let provider = registry.get(key)
  if (provider === undefined || provider.disposed) {
    const map = registry
    const created: JwksProvider = new JwksProvider(url, settings, deps, () => {
      if (map.get(key) === created) map.delete(key)
    })
    map.set(key, created)
    provider = created
  }
  if (deps.caches !== undefined) provider.addLease(deps.caches.create<unknown>(leaseOptions(key)))
  return provider
}

/** The smallest cache the registry accepts: it holds nothing, its name and life are the lease. */
function leaseOptions(key: string): CacheOptions {
  return {
    name: `jwks:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`,
    ttlMs: 1,
    maxBytes: ENTRY_OVERHEAD_BYTES + CREDENTIAL_KEY_LENGTH,
    maxEntries: 1,
    cleanupIntervalMs: MAX_TIMER_MS,
    negativeTtlMs: 0,
    negativeMaxBytes: 0,
  }
}

/** Every live provider sharing `deps.http`. */
export function jwksProviders(deps: Pick<JwksDeps, 'http'>): JwksProvider[] {
  return [...(registries.get(deps.http)?.values() ?? [])]
}

/** Disposes every provider sharing `deps.http` (process shutdown); returns how many. */
export function disposeJwksProviders(deps: Pick<JwksDeps, 'http'>): number {
  const all = jwksProviders(deps)
  for (const p of all) p.dispose()
  return all.length
}
