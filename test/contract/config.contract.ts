/**
 * The part of every extension point's contract that concerns configuration and construction
 * (Hono `common.case.test.ts` style: a function each handler test calls). Not a test file itself.
 * @module
 */
import { describe, expect, it } from 'vitest'
import type { z } from 'zod'
import type { HandlerFactory, Stage } from '../../src/pipeline/types.js'
import { TEST_DEPS } from '../helpers/session.js'

/** A config the handler's schema must reject, and the path of (one of) the issues it reports. */
export interface InvalidConfigCase {
  readonly name: string
  readonly config: unknown
  /** Issue path, e.g. `['headers', 'X User']`; `[]` for the config object itself. */
  readonly path: readonly PropertyKey[]
}

export interface ConfigContractOptions<S extends Stage, C> {
  readonly stage: S
  readonly factory: HandlerFactory<S, C>
  /** Configs that must be accepted; `undefined` means "no config anywhere". At least one. */
  readonly validConfigs: readonly unknown[]
  readonly invalidConfigs: readonly InvalidConfigCase[]
}

/** Parses with the handler's schema, failing the test with the issues if invalid. */
export function parseConfig<C>(factory: HandlerFactory<Stage, C>, raw: unknown): C {
  const result = factory.config.safeParse(raw)
  if (!result.success) throw new Error(`config rejected: ${JSON.stringify(result.error.issues)}`)
  return result.data
}

/** Parses and creates: what the rule compiler does once per rule. */
export function build<S extends Stage, C>(factory: HandlerFactory<S, C>, raw: unknown): ReturnType<HandlerFactory<S, C>['create']> {
  return factory.create(parseConfig(factory, raw), TEST_DEPS)
}

/** The issues of a rejected config (fails when it is accepted). */
export function issuesOf(schema: z.ZodType, raw: unknown): readonly z.core.$ZodIssue[] {
  const result = schema.safeParse(raw)
  if (result.success) throw new Error(`config accepted: ${JSON.stringify(raw)}`)
  return result.error.issues
}

const samePath = (a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean =>
  a.length === b.length && a.every((k, i) => String(k) === String(b[i]))

/** Registers the config/construction contract cases inside the caller's `describe`. */
export function runConfigContract<S extends Stage, C>(o: ConfigContractOptions<S, C>): void {
  const { factory } = o
  describe(`${o.stage} "${factory.id}" config contract`, () => {
    it('declares its stage and a snake_case, Oathkeeper-style id', () => {
      expect(factory.stage).toBe(o.stage)
      expect(factory.id).toMatch(/^[a-z][a-z0-9_]*$/)
    })

    it('has at least one valid config to test with', () => {
      expect(o.validConfigs.length).toBeGreaterThan(0)
    })

    it.each(o.validConfigs.map((config) => ({ config, label: JSON.stringify(config) ?? 'undefined' })))(
      'accepts $label',
      ({ config }) => {
        expect(() => parseConfig(factory, config)).not.toThrow()
      },
    )

    if (o.invalidConfigs.length > 0) {
      it.each(o.invalidConfigs)('rejects $name, reporting the path', ({ config, path }) => {
        const issues = issuesOf(factory.config, config)
        const paths = issues.map((i) => i.path)
        expect(
          paths.some((p) => samePath(p, path)),
          `expected an issue at [${path.join('.')}], got ${JSON.stringify(issues)}`,
        ).toBe(true)
        for (const issue of issues) expect(issue.message.length).toBeGreaterThan(0)
      })
    }

    it('rejects unknown config keys (Oathkeeper ignored them silently)', () => {
      for (const valid of o.validConfigs) {
        if (valid !== undefined && (typeof valid !== 'object' || valid === null || Array.isArray(valid))) continue
        const issues = issuesOf(factory.config, { ...(valid ?? {}), no_such_key_in_any_schema: true })
        expect(issues).toContainEqual(
          expect.objectContaining({ code: 'unrecognized_keys', keys: ['no_such_key_in_any_schema'] }),
        )
      }
    })

    it.each([
      { label: 'a string', config: 'config' },
      { label: 'a number', config: 42 },
      { label: 'an array', config: [] },
      { label: 'null', config: null },
    ])('rejects a config that is $label', ({ config }) => {
      expect(factory.config.safeParse(config).success).toBe(false)
    })

    it('builds a new, independent instance on each create()', () => {
      const first = build(factory, o.validConfigs[0])
      const second = build(factory, o.validConfigs[0])
      expect(first).not.toBe(second)
    })
  })
}
