import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, envName, loadConfig } from '../../../src/config/load.js'

const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'))
function file(name: string, text: string): string {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}
function problems(fn: () => unknown): readonly string[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected a ConfigError')
}

describe('loadConfig', () => {
  it('embeds defaults: loopback gRPC on 50051, 8 MiB messages, regexp, json error handler on', () => {
    const { config } = loadConfig({ env: {} })
    expect(config.serve.grpc).toMatchObject({ host: '127.0.0.1', port: 50051, max_receive_message_length: 8 * 1024 * 1024 })
    expect(config.access_rules.matching_strategy).toBe('regexp')
    expect(config.errors.fallback).toEqual(['json'])
    expect(config.errors.handlers['json']?.enabled).toBe(true)
    expect(Object.isFrozen(config.serve.grpc)).toBe(true)
  })

  it('reads YAML and JSON, resolving relative paths against the file', () => {
    const y = loadConfig({ file: file('a.yaml', 'serve:\n  grpc:\n    port: 6000\n'), env: {} })
    expect(y.config.serve.grpc.port).toBe(6000)
    expect(y.baseDir).toBe(dir)
    const j = loadConfig({ file: file('a.json', '{"access_rules":{"matching_strategy":"glob"}}'), env: {} })
    expect(j.config.access_rules.matching_strategy).toBe('glob')
  })

  it('applies PORTCULLIS_* environment overrides over the file', () => {
    const { config } = loadConfig({
      file: file('b.yaml', 'serve:\n  grpc:\n    port: 6000\n'),
      env: { PORTCULLIS_SERVE_GRPC_PORT: '7000', PORTCULLIS_SERVE_GRPC_HOST: '0.0.0.0', PORTCULLIS_ACCESS_RULES_REPOSITORIES: 'file://a.yaml, b/' },
    })
    expect(config.serve.grpc).toMatchObject({ port: 7000, host: '0.0.0.0' })
    expect(config.access_rules.repositories).toEqual(['file://a.yaml', 'b/'])
    expect(envName(['serve', 'grpc', 'port'])).toBe('PORTCULLIS_SERVE_GRPC_PORT')
  })

  const bad: { name: string; yaml?: string; env?: Record<string, string>; expect: RegExp }[] = [
    { name: 'unknown top-level key', yaml: 'serv: {}\n', expect: /^\(top level\): unknown key\(s\) "serv"/ },
    { name: 'unknown nested key', yaml: 'serve:\n  grpc:\n    prot: 1\n', expect: /^serve\.grpc: unknown key\(s\) "prot"/ },
    { name: 'port out of range', yaml: 'serve:\n  grpc:\n    port: 70000\n', expect: /^serve\.grpc\.port: / },
    { name: 'wrong strategy', yaml: 'access_rules:\n  matching_strategy: prefix\n', expect: /^access_rules\.matching_strategy: / },
    { name: 'handler switch typo', yaml: 'authenticators:\n  noop:\n    enable: true\n', expect: /^authenticators\.noop: unknown key\(s\) "enable"/ },
    { name: 'non-numeric env', env: { PORTCULLIS_SERVE_GRPC_PORT: 'abc' }, expect: /^serve\.grpc\.port: environment variable PORTCULLIS_SERVE_GRPC_PORT="abc" is not a number/ },
    { name: 'not a mapping', yaml: '- a\n- b\n', expect: /top level must be a mapping/ },
    { name: 'invalid YAML', yaml: 'a: [\n', expect: /not valid YAML or JSON/ },
    { name: 'duplicate keys', yaml: 'log: {}\nlog: {}\n', expect: /not valid YAML or JSON/ },
  ]
  it.each(bad)('rejects $name with the key path', (c) => {
    const f = c.yaml === undefined ? undefined : file(`bad-${c.name.replaceAll(' ', '-')}.yaml`, c.yaml)
    const p = problems(() => loadConfig({ file: f, env: c.env ?? {} }))
    expect(p.some((x) => c.expect.test(x)), p.join('\n')).toBe(true)
  })

  it('reports a missing file by path', () => {
    const p = problems(() => loadConfig({ file: join(dir, 'nope.yaml'), env: {} }))
    expect(p[0]).toMatch(/cannot read file/)
  })
})
