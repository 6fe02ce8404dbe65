/**
 * Mutator `noop`: changes nothing.
 *
 * Oathkeeper's `noop` (`pipeline/mutate/mutator_noop.go`) does `session.Header = r.Header`, i.e.
 * copies **every incoming header** into the set of headers to forward. That only means something
 * in Oathkeeper's proxy mode, where the proxy builds the upstream request from that set (and in
 * its decisions mode it echoes every request header back, first value only). Under Envoy
 * ext_authz the original request, with all its headers, goes upstream anyway; `OkHttpResponse`
 * only carries *changes*. Copying the headers would just re-send them, collapse repeated headers
 * to one value and defeat the removal of managed identity headers, so this mutator does nothing.
 * @module
 */
import { z } from 'zod'
import { defineHandler } from '../types.js'
import type { HeaderSetter } from './header.js'

export const NoopMutatorConfig = z.object({}).strict().prefault({})
export type NoopMutatorConfig = z.infer<typeof NoopMutatorConfig>

const NO_HEADERS: readonly string[] = Object.freeze([])

export const noop = defineHandler('mutate', 'noop', NoopMutatorConfig, () => {
  const mutator = {
    /** Sets no header, so every managed identity header is removed on rules that only use `noop`. */
    headerNames: NO_HEADERS,
    mutate(): void {
      // Intentionally empty: see the module comment.
    },
  } satisfies HeaderSetter & { mutate(): void }
  return mutator
})
