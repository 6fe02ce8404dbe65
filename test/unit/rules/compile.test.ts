import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { loadConfig } from '../../../src/config/load.js'
import { createLogger } from '../../../src/observability/logger.js'
import { TEST_DEPS } from '../../helpers/session.js'
import { defaultRegistry } from '../../../src/pipeline/registry.js'
import { deepMerge, loadRuleSet, RuleSetError, type RuleSet } from '../../../src/rules/compile.js'

const deps = { ...TEST_DEPS, log: createLogger('silent') }
const base = {
  authenticators: { anonymous: { enabled: true, config: { subject: 'guest' } }, noop: { enabled: true } },
  authorizers: { allow: { enabled: true } },
  mutators: { noop: { enabled: true }, header: { enabled: true, config: { headers: { 'X-Global': 'g' } } } },
}
const good = (id: string, url = `https://a.example/${id}`) => ({
  id,
  match: { url, methods: ['get'] },
  authenticators: [{ handler: 'anonymous' }],
  authorizer: { handler: 'allow' },
  mutators: [{ handler: 'noop' }],
})

function compile(rules: unknown, config: Record<string, unknown> = base, fileName = 'rules.yaml'): RuleSet {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-rules-'))
  writeFileSync(join(dir, fileName), typeof rules === 'string' ? rules : stringify(rules))
  writeFileSync(join(dir, 'c.yaml'), stringify({ ...config, access_rules: { repositories: [`file://./${fileName}`] } }))
  return loadRuleSet(loadConfig({ file: join(dir, 'c.yaml'), env: {} }), defaultRegistry(), deps)
}
function problems(rules: unknown, config?: Record<string, unknown>): readonly string[] {
  try {
    compile(rules, config)
  } catch (err) {
    expect(err).toBeInstanceOf(RuleSetError)
    return (err as RuleSetError).problems
  }
  throw new Error('expected RuleSetError')
}

describe('loadRuleSet', () => {
  it('compiles valid rules, methods case-insensitive', () => {
    const rs = compile([good('one'), good('two')])
    expect(rs.rules.map((r) => r.id)).toEqual(['one', 'two'])
    const m = rs.matcher.match('GET', 'https://a.example/two')
    expect(m.kind === 'one' && m.value.id).toBe('two')
  })

  it('reads a directory of JSON and YAML files, skipping dot-entries (ConfigMap ..data)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-dir-'))
    mkdirSync(join(dir, 'rules'))
    mkdirSync(join(dir, 'rules', '..2026_11_27'))
    writeFileSync(join(dir, 'rules', '..2026_11_27', 'a.json'), JSON.stringify([good('a')]))
    symlinkSync('..2026_11_27', join(dir, 'rules', '..data'))
    symlinkSync(join('..data', 'a.json'), join(dir, 'rules', 'a.json'))
    writeFileSync(join(dir, 'rules', 'b.yml'), stringify([good('b')]))
    writeFileSync(join(dir, 'rules', 'notes.txt'), 'ignored')
    writeFileSync(join(dir, 'c.yaml'), stringify({ ...base, access_rules: { repositories: ['rules'] } }))
    const rs = loadRuleSet(loadConfig({ file: join(dir, 'c.yaml'), env: {} }), defaultRegistry(), deps)
    expect(rs.rules.map((r) => r.id)).toEqual(['a', 'b'])
  })

  it('merges the global handler config under the rule config', () => {
    const rs = compile([{ ...good('h'), mutators: [{ handler: 'header', config: { headers: { 'X-Rule': 'r' } } }] }, good('plain')])
    expect([...rs.managedHeaders].sort()).toEqual(['x-global', 'x-rule'])
    expect(rs.rules.find((r) => r.id === 'plain')!.removeHeaders).toEqual(expect.arrayContaining(['x-global', 'x-rule']))
    expect(rs.rules.find((r) => r.id === 'h')!.removeHeaders).toEqual([])
  })

  const bad: { name: string; rules: unknown; config?: Record<string, unknown>; expect: RegExp }[] = [
    { name: 'not an array', rules: 'id: x\n', expect: /rules\.yaml: a rule file must hold an array of rules/ },
    { name: 'unparseable YAML', rules: '- id: [\n', expect: /rules\.yaml: cannot parse/ },
    { name: 'unknown key match.headers', rules: [{ ...good('x'), match: { url: 'https://a/', methods: ['GET'], headers: {} } }], expect: /rules\[0\] \(id "x"\)\.match: unknown key\(s\) "headers"/ },
    { name: 'typo authenticator', rules: [{ ...good('x'), authenticator: [] }], expect: /rules\[0\] \(id "x"\): unknown key\(s\) "authenticator"/ },
    { name: 'missing mutators', rules: [{ ...good('x'), mutators: [] }], expect: /rules\[0\] \(id "x"\)\.mutators: / },
    { name: 'missing id', rules: [{ ...good('x'), id: undefined }], expect: /rules\[0\]\.id: / },
    { name: 'duplicate id', rules: [good('x'), good('x', 'https://b/')], expect: /rules\[1\] \(id "x"\)\.id: duplicate rule id/ },
    { name: 'unknown handler', rules: [{ ...good('x'), authorizer: { handler: 'keto' } }], expect: /rules\[0\] \(id "x"\)\.authorizer\.handler: unknown authorizer "keto" \(known: allow, deny\)/ },
    { name: 'disabled handler', rules: [{ ...good('x'), authorizer: { handler: 'deny' } }], expect: /authorizer "deny" is not enabled \(set authorizers\.deny\.enabled: true\)/ },
    { name: 'bad handler config', rules: [{ ...good('x'), authenticators: [{ handler: 'anonymous', config: { subjekt: 'a' } }] }], expect: /rules\[0\] \(id "x"\)\.authenticators\[0\]\.config: unknown key\(s\) "subjekt" \(authenticator "anonymous"\)/ },
    { name: 'bad template', rules: [{ ...good('x'), mutators: [{ handler: 'header', config: { headers: { 'X-A': '{{ range .Extra }}' } } }] }], expect: /rules\[0\] \(id "x"\)\.mutators\[0\]\.config/ },
    { name: 'unbalanced pattern', rules: [good('x', 'https://a/<.*')], expect: /rules\[0\] \(id "x"\)\.match\.url: / },
    { name: 'lookahead pattern', rules: [good('x', 'https://a/<(?!admin).*>')], expect: /rules\[0\] \(id "x"\)\.match\.url: / },
    { name: 'unknown global handler section', rules: [good('x')], config: { ...base, authorizers: { allow: { enabled: true }, remote: { enabled: true } } }, expect: /^authorizers\.remote: unknown authorizer/ },
  ]
  it.each(bad)('rejects $name, naming file, rule and field', (c) => {
    const p = problems(c.rules, c.config)
    expect(p.some((x) => c.expect.test(x)), p.join('\n')).toBe(true)
  })

  it('reports every problem at once', () => {
    const p = problems([{ ...good('a'), authorizer: { handler: 'nope' } }, { ...good('b'), match: { url: 'x' } }])
    expect(p.length).toBeGreaterThanOrEqual(2)
  })
})

describe('deepMerge', () => {
  it('merges maps deeply, replaces arrays and scalars, keeps __proto__ as data', () => {
    const m = deepMerge({ a: { b: 1, c: [1, 2] }, d: 1 }, JSON.parse('{"a":{"c":[3]},"d":2,"__proto__":{"x":1}}'))
    expect(m).toEqual(JSON.parse('{"a":{"b":1,"c":[3]},"d":2,"__proto__":{"x":1}}'))
    expect(({} as Record<string, unknown>)['x']).toBeUndefined()
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype)
  })
})
