/**
 * The in-process memory proof's driver (security.md §7.3, method 1): the real rule compiler builds
 * the real handlers with real dependencies (`createDeps`: a budgeted `CacheRegistry`, the pooled
 * `HttpClient`) from a real config file; the IdP stub (idp-stub.ts) answers over loopback from a
 * worker thread, so its heap is not in ours; and every request goes through the pipeline's
 * `decide()` exactly as a gRPC Check would, after `toRequestView()`, with a unique credential.
 *
 * Measurement: requests run with bounded concurrency in chunks of `sampleEvery`; between chunks
 * nothing is in flight, and the driver forces two full GCs and records `process.memoryUsage()` and
 * every cache's stats. The baseline is taken after a warm-up (JIT, connection pools, JWKS) with
 * the caches emptied, so `heapUsed − baseline` is what the caches and anything else that grows
 * with the number of credentials hold.
 *
 * Used by test/memory/bounded-memory.test.ts (CI profile) and by `run.ts --in-process` (the full
 * 2 000 000-credential run). Bounded in count (`tokens`) and time (`timeLimitMs`).
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import type { CacheStats } from '../../src/cache/auth-cache.js'
import { loadConfig } from '../../src/config/load.js'
import type { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth.js'
import type { OriginStats } from '../../src/http/client.js'
import { createDeps, disposeDeps } from '../../src/main.js'
import { createLogger } from '../../src/observability/logger.js'
import { authenticators } from '../../src/pipeline/authn/index.js'
import { authorizers } from '../../src/pipeline/authz/index.js'
import { errorHandlers } from '../../src/pipeline/errors/index.js'
import { mutators } from '../../src/pipeline/mutate/index.js'
import { Registry } from '../../src/pipeline/registry.js'
import { decide } from '../../src/pipeline/run.js'
import type { HandlerDeps, HandlerFactory } from '../../src/pipeline/types.js'
import { toRequestView } from '../../src/request/view.js'
import { loadRuleSet } from '../../src/rules/compile.js'
import { startIdpStub, type IdpStubCounts } from './idp-stub.js'
import {
  configFor,
  DEFAULT_SIZING,
  HANDLER_OF,
  HOST,
  makeJwtKeys,
  RequestStream,
  ruleFor,
  SCENARIO_IDS,
  type CacheSizing,
  type ScenarioId,
  type SoakRequest,
} from './scenarios.js'
import { DEFAULT_MIX, type TokenMix } from './tokens.js'

export interface InProcessOptions {
  /** Credentials in the measured phase. */
  readonly tokens: number
  /** Credentials before the baseline (JIT, pools, JWKS); default 20 000. */
  readonly warmup?: number
  /** Requests in flight at once; default 64. */
  readonly concurrency?: number
  /** Credentials between two samples; default 20 000. */
  readonly sampleEvery?: number
  /** Default: every scenario whose authenticator the registry has. */
  readonly scenarios?: readonly ScenarioId[]
  readonly mix?: TokenMix
  readonly sizing?: CacheSizing
  /** Factories to add to the shipped ones (e.g. an authenticator not registered yet). */
  readonly extraFactories?: readonly HandlerFactory[]
  /**
   * Counter-check only: also keep every credential in a Map that is never cleared, a deliberate
   * leak the plateau criterion must catch.
   */
  readonly leak?: boolean
  /** A full GC (`--expose-gc`). */
  readonly gc: () => void
  /** Stop early (and say so) after this long; default 10 min. */
  readonly timeLimitMs?: number
  readonly onSample?: (s: HeapSample) => void
}

export interface HeapSample {
  /** Credentials processed since the baseline. */
  readonly tokens: number
  /** Milliseconds since the baseline. */
  readonly ms: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly rss: number
  readonly external: number
  readonly arrayBuffers: number
  /** Positive + negative bytes of every cache. */
  readonly cacheBytes: number
  readonly cacheEntries: number
}

export interface CacheInfo {
  readonly name: string
  readonly reservedBytes: number
  readonly stats: CacheStats
}

export interface InProcessResult {
  readonly scenarios: readonly ScenarioId[]
  readonly baseline: HeapSample
  readonly samples: readonly HeapSample[]
  /** Sum of every cache's `reservedBytes` (what the budget granted). */
  readonly reservedBytes: number
  /** Sum of every cache's positive and negative byte limits (what they can hold when full). */
  readonly capacityBytes: number
  /** `cache.max_bytes` of the config. */
  readonly cacheBudgetBytes: number
  readonly caches: readonly CacheInfo[]
  /** A cache over its byte limits at some sample (must stay empty). */
  readonly cacheViolations: readonly string[]
  /** `scenario valid|invalid → allow | deny <status> <reason>` counts. */
  readonly outcomes: Readonly<Record<string, number>>
  /** Requests whose decision was not the expected one (valid → allow, invalid → deny 401). */
  readonly mismatches: number
  readonly tokens: number
  readonly durationMs: number
  readonly stoppedEarly: boolean
  readonly stub: IdpStubCounts
  readonly http: readonly OriginStats[]
  /** Entries in the deliberate leak (0 unless `leak`). */
  readonly leaked: number
}

/** The shipped handler factories plus `extra` ones the shipped lists do not have yet. */
export function registryWith(extra: readonly HandlerFactory[] = []): Registry {
  const shipped = [...authenticators, ...authorizers, ...mutators, ...errorHandlers] as readonly HandlerFactory[]
  const have = new Set(shipped.map((f) => `${f.stage}:${f.id}`))
  return new Registry([...shipped, ...extra.filter((f) => !have.has(`${f.stage}:${f.id}`))])
}

/** The scenarios whose authenticator `registry` has. */
export function availableScenarios(registry: Registry): ScenarioId[] {
  return SCENARIO_IDS.filter((id) => registry.get('authn', HANDLER_OF[id]) !== undefined)
}

export async function runInProcess(o: InProcessOptions): Promise<InProcessResult> {
  const warmup = o.warmup ?? 20_000
  const concurrency = o.concurrency ?? 64
  const sampleEvery = o.sampleEvery ?? 20_000
  const timeLimitMs = o.timeLimitMs ?? 600_000
  const registry = registryWith(o.extraFactories)
  const scenarios = o.scenarios ?? availableScenarios(registry)
  const sizing = o.sizing ?? DEFAULT_SIZING
  const mix = o.mix ?? DEFAULT_MIX
  const jwtKeys = scenarios.includes('jwt') ? makeJwtKeys() : undefined
  const gc = o.gc
  const started = performance.now()

  const stub = await startIdpStub({ jwks: jwtKeys?.jwks })
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-memory-'))
  let deps: HandlerDeps | undefined
  try {
    const budget = 64 * 1024 * 1024
    writeFileSync(join(dir, 'rules.yaml'), stringify(scenarios.map((id) => ruleFor(id, stub.origin, sizing))))
    writeFileSync(
      join(dir, 'portcullis.yaml'),
      stringify({
        ...configFor(scenarios, budget),
        access_rules: { repositories: ['file://./rules.yaml'] },
        log: { level: 'silent' },
      }),
    )
    const loaded = loadConfig({ file: join(dir, 'portcullis.yaml'), env: {} })
    deps = createDeps(loaded, createLogger('silent'))
    const rs = loadRuleSet(loaded, registry, deps)
    const d = deps

    const outcomes = new Map<string, number>()
    let mismatches = 0
    const leak = o.leak === true ? new Map<string, string>() : undefined
    const stream = new RequestStream(scenarios, mix, jwtKeys, 7)
    let stoppedEarly = false
    const outOfTime = (): boolean => performance.now() - started > timeLimitMs

    const one = async (r: SoakRequest, n: number): Promise<void> => {
      const view = toRequestView(checkRequest(r, n))
      // One signal per request, as the gRPC handler does (handlers add abort listeners to it).
      const decision = await decide(rs, view, new AbortController().signal)
      let outcome: string
      let ok: boolean
      if (decision.kind === 'allow') {
        outcome = 'allow'
        ok = r.valid && decision.session.subject !== '' && decision.session.header.get('x-user') === decision.session.subject
      } else {
        outcome = `deny ${decision.http.status} ${decision.error.reason}`
        ok = !r.valid && decision.http.status === 401
      }
      if (!ok) mismatches++
      const key = `${r.scenario} ${r.valid ? 'valid' : 'invalid'} → ${outcome}`
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
      leak?.set(r.headers['authorization'] ?? r.headers['cookie'] ?? '', outcome)
    }

    /** Runs `count` requests, at most `concurrency` at once; resolves when none is in flight. */
    const chunk = async (count: number): Promise<number> => {
      let issued = 0
      const worker = async (): Promise<void> => {
        while (issued < count) {
          const n = stream.count
          issued++
          await one(stream.next(), n)
        }
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
      return issued
    }

    // Warm-up, then empty caches: the baseline holds the process, not cached credentials.
    for (let done = 0; done < warmup && !outOfTime(); ) done += await chunk(Math.min(sampleEvery, warmup - done))
    for (const name of d.caches.names()) d.caches.get(name)?.clear()
    outcomes.clear()
    mismatches = 0
    leak?.clear()

    const caches = (): CacheInfo[] =>
      d.caches.names().map((name) => {
        const c = d.caches.get(name)!
        return { name, reservedBytes: c.reservedBytes, stats: c.stats() }
      })
    const violations: string[] = []
    const t0 = performance.now()
    const sample = (tokens: number): HeapSample => {
      gc()
      gc()
      const m = process.memoryUsage()
      let cacheBytes = 0
      let cacheEntries = 0
      for (const { name, stats: s } of caches()) {
        cacheBytes += s.bytes + s.negativeBytes
        cacheEntries += s.entries + s.negativeEntries
        if (s.bytes > s.maxBytes || s.negativeBytes > s.negativeMaxBytes) {
          violations.push(`${name} at ${tokens}: ${s.bytes}/${s.maxBytes} positive, ${s.negativeBytes}/${s.negativeMaxBytes} negative bytes`)
        }
      }
      const s: HeapSample = {
        tokens,
        ms: Math.round(performance.now() - t0),
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        rss: m.rss,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
        cacheBytes,
        cacheEntries,
      }
      o.onSample?.(s)
      return s
    }

    const baseline = sample(0)
    const samples: HeapSample[] = [baseline]
    let done = 0
    while (done < o.tokens) {
      if (outOfTime()) {
        stoppedEarly = true
        break
      }
      done += await chunk(Math.min(sampleEvery, o.tokens - done))
      samples.push(sample(done))
    }

    const info = caches()
    return {
      scenarios,
      baseline,
      samples,
      reservedBytes: info.reduce((a, c) => a + c.reservedBytes, 0),
      capacityBytes: info.reduce((a, c) => a + c.stats.maxBytes + c.stats.negativeMaxBytes, 0),
      cacheBudgetBytes: budget,
      caches: info,
      cacheViolations: violations,
      outcomes: Object.fromEntries([...outcomes].sort()),
      mismatches,
      tokens: done,
      durationMs: Math.round(performance.now() - t0),
      stoppedEarly,
      stub: await stub.counts(),
      http: d.http.stats(),
      leaked: leak?.size ?? 0,
    }
  } finally {
    if (deps !== undefined) await disposeDeps(deps)
    await stub.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The CheckRequest Envoy would send for `r` (hand-built: decoding is not what is measured). */
function checkRequest(r: SoakRequest, n: number): CheckRequest {
  return {
    attributes: {
      source: { address: { socketAddress: { address: '10.0.0.7', portValue: 40000 } } },
      request: {
        http: {
          id: `req-${n}`,
          method: 'GET',
          scheme: 'https',
          host: HOST,
          path: r.path,
          protocol: 'HTTP/1.1',
          headers: { ':authority': HOST, ':method': 'GET', ':path': r.path, ':scheme': 'https', ...r.headers },
        },
      },
    },
  } as unknown as CheckRequest
}
