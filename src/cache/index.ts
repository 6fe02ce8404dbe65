/**
 * The cache module: one bounded, coalescing `AuthCache` per (handler, config), all created through
 * a `CacheRegistry` that holds them to the global `cache.max_bytes` budget. See auth-cache.ts for
 * the contract, config.ts for the configuration keys, key.ts for keys.
 * @module
 */
export {
  AuthCache,
  CacheAbortError,
  cacheReservation,
  DEFAULT_MAX_INFLIGHT,
  ENTRY_OVERHEAD_BYTES,
  SLOT_BYTES,
  type CacheDeps,
  type CacheOptions,
  type CacheStats,
  type LoadResult,
  type Lookup,
  type NegativeResult,
  type PositiveResult,
} from './auth-cache.js'
export { CacheBudget, CacheBudgetError, formatBytes } from './budget.js'
export {
  CACHE_DEFAULTS,
  CacheConfigSchema,
  cacheConfigSchema,
  cacheName,
  cacheOptionsFrom,
  type CacheConfig,
  type CacheDefaults,
} from './config.js'
export { CREDENTIAL_KEY_LENGTH, credentialKey, isCredentialKey } from './key.js'
export { CacheRegistry } from './registry.js'
export { estimateBytes } from './size.js'
