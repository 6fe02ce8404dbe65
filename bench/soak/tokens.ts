/**
 * Unique credentials for the memory proof and the soak: every call returns a token never returned
 * before in this process (a sequence number and a per-run prefix are part of it), of a size drawn
 * from a configurable range, valid or invalid as the IdP stub (idp-stub.ts) will judge it: opaque
 * tokens starting with `v.` are valid, `x.` invalid. Sizes are log-uniform between `minBytes` and
 * `maxBytes`, so short tokens (the common case) and 4 KiB ones are both well represented.
 * Deterministic for a given seed.
 * @module
 */
import { randomBytes } from 'node:crypto'

export interface TokenMix {
  /** Shortest token, bytes (≥ 32). */
  readonly minBytes: number
  /** Longest token, bytes (≤ 16 KiB, the authenticators' limit). */
  readonly maxBytes: number
  /** Fraction of valid tokens, 0..1. */
  readonly validRatio: number
}

export const DEFAULT_MIX: TokenMix = { minBytes: 32, maxBytes: 4096, validRatio: 0.5 }

/** Parses `32-4096` (bytes) and a ratio, as given on the command line or in the environment. */
export function parseMix(sizes: string | undefined, validRatio: string | undefined): TokenMix {
  let { minBytes, maxBytes } = DEFAULT_MIX
  if (sizes !== undefined && sizes !== '') {
    const m = /^(\d+)-(\d+)$/.exec(sizes)
    if (m === null) throw new Error(`token sizes must look like 32-4096, got ${JSON.stringify(sizes)}`)
    minBytes = Number(m[1])
    maxBytes = Number(m[2])
  }
  const ratio = validRatio === undefined || validRatio === '' ? DEFAULT_MIX.validRatio : Number(validRatio)
  return checkMix({ minBytes, maxBytes, validRatio: ratio })
}

export function checkMix(mix: TokenMix): TokenMix {
  if (!Number.isInteger(mix.minBytes) || !Number.isInteger(mix.maxBytes) || mix.minBytes < 32 || mix.maxBytes > 16 * 1024 || mix.minBytes > mix.maxBytes) {
    throw new Error(`token sizes must be integers with 32 ≤ min ≤ max ≤ 16384, got ${mix.minBytes}-${mix.maxBytes}`)
  }
  if (!(mix.validRatio >= 0 && mix.validRatio <= 1)) throw new Error(`valid ratio must be within 0..1, got ${mix.validRatio}`)
  return mix
}

/** Small, fast, seedable PRNG (mulberry32): uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** base64url filler the tokens are padded with (a suffix shared by all tokens, the head is unique). */
const PAD = randomBytes(12 * 1024).toString('base64url')

export interface OpaqueToken {
  readonly token: string
  readonly valid: boolean
}

/** A stream of unique opaque tokens. */
export class TokenStream {
  readonly #mix: TokenMix
  readonly #rnd: () => number
  readonly #prefix: string
  readonly #logRange: number
  #seq = 0

  constructor(mix: TokenMix = DEFAULT_MIX, seed = 1) {
    this.#mix = checkMix(mix)
    this.#rnd = prng(seed)
    // Distinct runs (and distinct streams) never produce the same token.
    this.#prefix = randomBytes(6).toString('base64url')
    this.#logRange = Math.log(mix.maxBytes / mix.minBytes)
  }

  /** Tokens returned so far. */
  get count(): number {
    return this.#seq
  }

  /** A size from the mix (log-uniform). */
  size(): number {
    const { minBytes } = this.#mix
    return Math.min(this.#mix.maxBytes, Math.round(minBytes * Math.exp(this.#rnd() * this.#logRange)))
  }

  next(): OpaqueToken {
    const valid = this.#rnd() < this.#mix.validRatio
    const head = `${valid ? 'v' : 'x'}.${this.#prefix}.${(this.#seq++).toString(36)}.`
    const size = Math.max(head.length, this.size())
    return { token: head + PAD.slice(0, size - head.length), valid }
  }
}
