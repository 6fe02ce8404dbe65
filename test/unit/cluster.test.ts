/**
 * The pure parts of src/cluster.ts: `serve.workers` validation, the per-worker cache budget, and
 * the worker-labelled metrics rendering. The cluster itself is tested with the built CLI in
 * test/integration/workers.test.ts.
 */
import { availableParallelism } from 'node:os'
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { ClusterConfigError, configuredWorkers, MAX_WORKERS, perWorkerCacheBytes, withWorkerLabel, WorkersSchema } from '../../src/cluster.js'

describe('serve.workers', () => {
  it('defaults to 1 and accepts 1 … 2 × availableParallelism()', () => {
    expect(MAX_WORKERS).toBe(availableParallelism() * 2)
    expect(WorkersSchema.parse(undefined)).toBe(1)
    expect(configuredWorkers({})).toBe(1)
    expect(configuredWorkers({ serve: {} })).toBe(1)
    expect(configuredWorkers({ serve: { workers: 2 } })).toBe(2)
    expect(configuredWorkers({ serve: { workers: MAX_WORKERS } })).toBe(MAX_WORKERS)
  })

  it.each([0, -1, 1.5, MAX_WORKERS + 1, '2'])('rejects %j', (v) => {
    expect(() => configuredWorkers({ serve: { workers: v } })).toThrow(ClusterConfigError)
    expect(() => configuredWorkers({ serve: { workers: v } })).toThrow(/serve\.workers/)
  })
})

describe('perWorkerCacheBytes', () => {
  it('divides cache.max_bytes across the workers', () => {
    expect(perWorkerCacheBytes(256 * 1024 * 1024, 2)).toBe(128 * 1024 * 1024)
    expect(perWorkerCacheBytes(10 * 1024 * 1024 + 1, 3)).toBe(Math.floor((10 * 1024 * 1024 + 1) / 3))
  })

  it('refuses a share below the 1 MiB minimum, saying what to change', () => {
    expect(() => perWorkerCacheBytes(3 * 1024 * 1024, 4)).toThrow(/below the 1 MiB minimum: raise cache.max_bytes or lower serve.workers/)
  })
})

describe('withWorkerLabel', () => {
  it('renders every worker\'s series side by side, none summed or dropped', async () => {
    const worker = async (n: number): Promise<unknown[]> => {
      const r = new Registry()
      new Gauge({ name: 'rules_loaded', help: 'h', registers: [r] }).set(10)
      new Counter({ name: 'decisions_total', help: 'h', labelNames: ['decision'], registers: [r] }).inc({ decision: 'allow' }, n)
      new Gauge({ name: 'first_only', help: 'h', registers: [r], aggregator: 'omit' }).set(n)
      new Histogram({ name: 'check_seconds', help: 'h', buckets: [0.001], registers: [r] }).observe(0.0008 * n)
      return r.getMetricsAsJSON()
    }
    const text = await AggregatorRegistry.aggregate([withWorkerLabel(await worker(1), 1), withWorkerLabel(await worker(2), 2)]).metrics()
    expect(text).toContain('rules_loaded{worker="1"} 10\nrules_loaded{worker="2"} 10')
    expect(text).toContain('decisions_total{decision="allow",worker="1"} 1')
    expect(text).toContain('decisions_total{decision="allow",worker="2"} 2')
    expect(text).toContain('first_only{worker="2"} 2')
    expect(text).toContain('check_seconds_bucket{le="0.001",worker="1"} 1')
    expect(text).toContain('check_seconds_bucket{le="0.001",worker="2"} 0')
    expect(text).toContain('check_seconds_count{worker="2"} 1')
  })
})
