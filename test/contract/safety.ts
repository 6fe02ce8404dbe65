/**
 * Shared assertions of the contract suites about errors and credential safety.
 * @module
 */
import { expect } from 'vitest'
import { PipelineError } from '../../src/pipeline/errors.js'
import { STATUS } from '../../src/server/status.js'
import { expectNoSecret } from '../helpers/session.js'

/** A thrown value must be a PipelineError with a known code, a stable reason and a safe message. */
export function expectSafePipelineError(err: unknown, where: string): asserts err is PipelineError {
  expect(err, `${where} threw something else than a PipelineError`).toBeInstanceOf(PipelineError)
  const e = err as PipelineError
  expect(Object.keys(STATUS)).toContain(e.code)
  expect(e.reason).toMatch(/^[a-z0-9_]+$/)
  expect(e.message.length).toBeGreaterThan(0)
  expectNoSecret(e.message, `${where}: error message`)
  expectNoSecret(e.reason, `${where}: error reason`)
  for (const [name, value] of e.headers) expectNoSecret(`${name}: ${value}`, `${where}: error header`)
}

/** Runs `fn`, returning its outcome or the thrown error (checked with expectSafePipelineError). */
export async function outcomeOf<T>(
  fn: () => T | Promise<T>,
  where: string,
): Promise<{ ok: true; value: T } | { ok: false; error: PipelineError }> {
  try {
    return { ok: true, value: await fn() }
  } catch (err) {
    expectSafePipelineError(err, where)
    return { ok: false, error: err }
  }
}
