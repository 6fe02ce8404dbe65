/**
 * Behaviour of compiled header templates: the Oathkeeper examples, every supported construct, Go's
 * printing rules, load-time rejection of invalid and unsupported syntax (with positions), render-time
 * faults, and the compiled form (constants, direct property reads). The byte-exact comparison with Go
 * itself is in go-golden.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { PipelineError } from '../../../src/pipeline/errors.js'
import type { Session } from '../../../src/pipeline/types.js'
import { compileTemplate, TemplateError } from '../../../src/template/index.js'

interface SessionOptions {
  subject?: string
  extra?: Record<string, unknown>
  header?: Record<string, string>
  groups?: string[]
  method?: string
  scheme?: string
  host?: string
  path?: string
  query?: string
  requestHeaders?: Record<string, string>
}

/** A session as the pipeline builds it: lower-case header names, a normalised RequestView. */
function makeSession(o: SessionOptions = {}): Session {
  const lower = (h: Record<string, string> | undefined): Map<string, string> =>
    new Map(Object.entries(h ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
  return {
    subject: o.subject ?? 'alice',
    extra: o.extra ?? {},
    header: lower(o.header),
    matchContext: {
      regexpCaptureGroups: o.groups ?? [],
      request: {
        id: 'req-1',
        method: o.method ?? 'GET',
        scheme: o.scheme ?? 'https',
        host: o.host ?? 'api.example.com',
        path: o.path ?? '/users/42',
        query: o.query ?? '',
        headers: lower(o.requestHeaders),
        sourceIp: '10.0.0.1',
        contextExtensions: {},
      },
    },
  }
}

const render = (template: string, o?: SessionOptions): string => compileTemplate(template)(makeSession(o))

function renderError(template: string, o?: SessionOptions): PipelineError {
  const t = compileTemplate(template)
  try {
    t(makeSession(o))
  } catch (e) {
    if (e instanceof PipelineError) return e
    throw e
  }
  throw new Error(`expected ${template} to fail at render time`)
}

function compileError(template: string): TemplateError {
  try {
    compileTemplate(template)
  } catch (e) {
    if (e instanceof TemplateError) return e
    throw e
  }
  throw new Error(`expected ${template} to be rejected at compile time`)
}

const RICH: SessionOptions = {
  subject: 'alice',
  extra: {
    a: { b: 'deep' },
    name: 'Bob',
    roles: ['admin', 'dev'],
    email: 'Alice@Example.COM',
    n: 1,
    f: 1.5,
    big: 1e21,
    million: 1000000,
    t: true,
    z: 0,
    empty: '',
    list: [],
    nil: null,
    obj: { b: 2, a: 'z' },
  },
  header: { 'X-Prev': 'p' },
  groups: ['g0', 'g1'],
  method: 'POST',
  scheme: 'https',
  host: 'api.example.com:8443',
  path: '/users/42',
  query: 'view=full&x=1',
  requestHeaders: { 'x-foo': 'bar', 'x-tenant-id': 'acme' },
}

interface Case {
  readonly name: string
  readonly template: string
  readonly want: string
  readonly session?: SessionOptions
}

describe('Oathkeeper examples', () => {
  const cases: Case[] = [
    { name: 'print subject', template: '{{ print .Subject }}', want: 'alice' },
    { name: 'nested extra', template: '{{ .Extra.a.b }}', want: 'deep' },
    { name: 'capture group by index', template: '{{ index .MatchContext.RegexpCaptureGroups 0 }}', want: 'g0' },
    { name: 'request header', template: '{{ .MatchContext.Header.Get "X-Foo" }}', want: 'bar' },
    { name: 'request header, any case', template: '{{ .MatchContext.Header.Get "x-FOO" }}', want: 'bar' },
    { name: 'absent request header', template: '{{ .MatchContext.Header.Get "X-Missing" }}', want: '' },
    { name: 'printIndex out of range', template: '{{ printIndex .MatchContext.RegexpCaptureGroups 5 }}', want: '' },
    { name: 'printIndex in range', template: '{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}', want: 'g1' },
    { name: 'default, value present', template: '{{ default "anon" .Extra.name }}', want: 'Bob' },
    { name: 'default, value missing', template: '{{ default "anon" .Extra.missing }}', want: 'anon' },
    { name: 'default in a pipeline', template: '{{ .Extra.missing | default "anon" }}', want: 'anon' },
    { name: 'join from a pipeline', template: '{{ .Extra.roles | join "," }}', want: 'admin,dev' },
    { name: 'join with arguments', template: '{{ join ", " .Extra.roles }}', want: 'admin, dev' },
    { name: 'quote', template: '{{ quote .Subject }}', want: '"alice"' },
    { name: 'session header set earlier', template: '{{ .Header.Get "X-Prev" }}', want: 'p' },
    { name: 'method', template: '{{ .MatchContext.Method }}', want: 'POST' },
    { name: 'whole URL', template: '{{ .MatchContext.URL }}', want: 'https://api.example.com:8443/users/42?view=full&x=1' },
    { name: 'URL.String', template: '{{ .MatchContext.URL.String }}', want: 'https://api.example.com:8443/users/42?view=full&x=1' },
    {
      name: 'URL fields',
      template: '{{ .MatchContext.URL.Scheme }}|{{ .MatchContext.URL.Host }}|{{ .MatchContext.URL.Path }}|{{ .MatchContext.URL.RawQuery }}',
      want: 'https|api.example.com:8443|/users/42|view=full&x=1',
    },
    { name: 'URL query parameter', template: '{{ .MatchContext.URL.Query.Get "view" }}', want: 'full' },
    { name: 'extra as JSON', template: '{{ .Extra.roles | toJson }}', want: '["admin","dev"]' },
    {
      name: 'remote_json payload',
      template: '{"subject": {{ toJson .Subject }}, "tenant": "{{ .MatchContext.Header.Get "X-Tenant-Id" }}"}',
      want: '{"subject": "alice", "tenant": "acme"}',
    },
    { name: 'guarded optional claim', template: '{{ if .Extra }}{{ if .Extra.name }}{{ print .Extra.name }}{{ end }}{{ end }}', want: 'Bob' },
    { name: 'nested parentheses', template: '{{ print (((.Extra.a).b)) }}', want: 'deep' },
  ]
  it.each(cases)('$name: $template', ({ template, want, session }) => {
    expect(render(template, session ?? RICH)).toBe(want)
  })
})

describe('supported syntax', () => {
  const cases: Case[] = [
    { name: 'plain text', template: 'static value', want: 'static value' },
    { name: 'empty template', template: '', want: '' },
    { name: 'text around actions', template: 'user={{ .Subject }};role={{ index .Extra.roles 0 }}', want: 'user=alice;role=admin' },
    { name: 'no spaces in the action', template: '{{.Subject}}', want: 'alice' },
    { name: 'root variable', template: '{{ $.Subject }}', want: 'alice' },
    { name: 'newlines inside an action', template: '{{\n  print\n  .Subject\n}}', want: 'alice' },
    { name: 'left trim marker', template: 'a \n\t{{- .Subject }}', want: 'aalice' },
    { name: 'right trim marker', template: '{{ .Subject -}} \n b', want: 'aliceb' },
    { name: 'both trim markers', template: 'a  {{- .Subject -}}  b', want: 'aaliceb' },
    { name: 'minus without space is a number', template: '{{-3}}', want: '-3' },
    { name: 'comment', template: 'a{{/* a comment */}}b', want: 'ab' },
    { name: 'trimmed multi-line comment', template: 'a \n {{- /* line 1\nline 2 */ -}} \n b', want: 'ab' },
    { name: 'pipeline', template: '{{ .Extra.email | lower | quote }}', want: '"alice@example.com"' },
    { name: 'pipeline into a method', template: '{{ "x-foo" | .MatchContext.Header.Get }}', want: 'bar' },
    { name: 'parenthesised argument', template: '{{ upper (print .Subject) }}', want: 'ALICE' },
    { name: 'parenthesised pipeline', template: '{{ (.Extra.missing | default "x") | quote }}', want: '"x"' },
    { name: 'field of a parenthesised value', template: '{{ (index .Extra "a").b }}', want: 'deep' },
    { name: 'double-quoted string escapes', template: '{{ "a\\tb\\\\\\"\\u00e9\\x41" }}', want: 'a\tb\\"éA' },
    { name: 'raw string', template: '{{ `no \\n {{ escapes }}` }}', want: 'no \\n {{ escapes }}' },
    { name: 'delimiters inside a string', template: '{{ print "}}" }}', want: '}}' },
    { name: 'int literal', template: '{{ 42 }}', want: '42' },
    { name: 'float literal', template: '{{ 2.50 }}', want: '2.5' },
    { name: 'bool literal', template: '{{ true }}', want: 'true' },
    { name: 'if true', template: '{{ if .Extra.t }}yes{{ else }}no{{ end }}', want: 'yes' },
    { name: 'if zero', template: '{{ if .Extra.z }}yes{{ else }}no{{ end }}', want: 'no' },
    { name: 'if empty string', template: '{{ if .Extra.empty }}yes{{ else }}no{{ end }}', want: 'no' },
    { name: 'if empty list', template: '{{ if .Extra.list }}yes{{ else }}no{{ end }}', want: 'no' },
    { name: 'if missing key', template: '{{ if .Extra.missing }}yes{{ else }}no{{ end }}', want: 'no' },
    { name: 'if null', template: '{{ if .Extra.nil }}yes{{ else }}no{{ end }}', want: 'no' },
    { name: 'if non-empty map', template: '{{ if .Extra.obj }}yes{{ end }}', want: 'yes' },
    { name: 'if without else', template: '[{{ if .Extra.z }}x{{ end }}]', want: '[]' },
    { name: 'else if', template: '{{ if .Extra.z }}a{{ else if .Extra.t }}b{{ else }}c{{ end }}', want: 'b' },
    { name: 'else if falls through', template: '{{ if .Extra.z }}a{{ else if .Extra.empty }}b{{ else }}c{{ end }}', want: 'c' },
    { name: 'if with comparison', template: '{{ if eq .Subject "alice" }}admin{{ else }}user{{ end }}', want: 'admin' },
    { name: 'nested ifs', template: '{{ if .Extra.t }}{{ if not .Extra.z }}in{{ end }}{{ end }}', want: 'in' },
    {
      name: 'trim markers around if/else',
      template: 'a\n{{- if .Extra.t }}\n  yes\n{{- else }}\n  no\n{{- end }}\nb',
      want: 'a\n  yes\nb',
    },
    { name: 'constant if', template: '{{ if 1 }}one{{ else }}zero{{ end }}', want: 'one' },
  ]
  it.each(cases)('$name: $template', ({ template, want, session }) => {
    expect(render(template, session ?? RICH)).toBe(want)
  })
})

describe('Go printing (fmt %v, text/template rules)', () => {
  const cases: Case[] = [
    { name: 'missing key prints <no value>', template: '{{ .Extra.missing }}', want: '<no value>' },
    { name: 'null prints <no value>', template: '{{ .Extra.nil }}', want: '<no value>' },
    { name: 'print of nil is empty', template: '{{ print .Extra.missing }}', want: '' },
    { name: 'JSON integer', template: '{{ .Extra.n }}', want: '1' },
    { name: 'JSON fraction', template: '{{ .Extra.f }}', want: '1.5' },
    { name: 'large float uses an exponent', template: '{{ .Extra.big }}', want: '1e+21' },
    { name: 'a million is a float64 too', template: '{{ .Extra.million }}', want: '1e+06' },
    { name: 'bool', template: '{{ .Extra.t }}', want: 'true' },
    { name: 'list', template: '{{ .Extra.roles }}', want: '[admin dev]' },
    { name: 'map, sorted keys', template: '{{ .Extra.obj }}', want: 'map[a:z b:2]' },
    { name: 'capture groups', template: '{{ .MatchContext.RegexpCaptureGroups }}', want: '[g0 g1]' },
    { name: 'headers', template: '{{ .MatchContext.Header }}', want: 'map[X-Foo:[bar] X-Tenant-Id:[acme]]' },
    { name: 'print of a list', template: '{{ print .Extra.roles }}', want: '[admin dev]' },
  ]
  it.each(cases)('$name: $template', ({ template, want, session }) => {
    expect(render(template, session ?? RICH)).toBe(want)
  })

  it('renders a subject with quotes, backslashes and newlines literally', () => {
    const subject = 'a "quoted"\\ \nsubject\r\n'
    expect(render('{{ print .Subject }}', { subject })).toBe(subject)
    expect(render('{{ .Subject }}', { subject })).toBe(subject)
  })

  it('escapes for JSON as Go does (HTML-safe)', () => {
    expect(render('{{ toJson .Subject }}', { subject: '<a href="x">&\n' })).toBe('"\\u003ca href=\\"x\\"\\u003e\\u0026\\n"')
  })
})

describe('functions', () => {
  const cases: Case[] = [
    { name: 'upper', template: '{{ upper .Subject }}', want: 'ALICE' },
    { name: 'lower', template: '{{ lower .Extra.email }}', want: 'alice@example.com' },
    { name: 'trim', template: '[{{ trim "  x \\t\\n" }}]', want: '[x]' },
    { name: 'quote escapes', template: '{{ quote "say \\"hi\\"\\n" }}', want: '"say \\"hi\\"\\n"' },
    { name: 'quote several', template: '{{ quote .Subject .Extra.n .Extra.missing }}', want: '"alice" "1"' },
    { name: 'b64enc', template: '{{ b64enc .Subject }}', want: 'YWxpY2U=' },
    { name: 'urlquery', template: '{{ urlquery "a b&c/é" }}', want: 'a+b%26c%2F%C3%A9' },
    { name: 'toJson of a map', template: '{{ toJson .Extra.obj }}', want: '{"a":"z","b":2}' },
    { name: 'toJson of nil', template: '{{ toJson .Extra.missing }}', want: 'null' },
    { name: 'len of a list', template: '{{ len .Extra.roles }}', want: '2' },
    { name: 'len counts UTF-8 bytes', template: '{{ len "é" }}', want: '2' },
    { name: 'index into a map', template: '{{ index .Extra "a" "b" }}', want: 'deep' },
    { name: 'index into a list', template: '{{ index .Extra.roles 1 }}', want: 'dev' },
    { name: 'eq', template: '{{ eq .Subject "alice" }}', want: 'true' },
    { name: 'eq with alternatives', template: '{{ eq .Subject "bob" "alice" }}', want: 'true' },
    { name: 'eq of a JSON number and a float literal', template: '{{ eq .Extra.n 1.0 }}', want: 'true' },
    { name: 'eq of nil and a string', template: '{{ eq .Extra.missing "x" }}', want: 'false' },
    { name: 'ne', template: '{{ ne .Subject "bob" }}', want: 'true' },
    { name: 'lt / ge', template: '{{ lt 1 2 }} {{ ge "a" "b" }}', want: 'true false' },
    { name: 'not', template: '{{ not .Extra.list }}', want: 'true' },
    { name: 'and returns the first falsy value', template: '{{ and .Extra.t .Extra.z .Extra.name }}', want: '0' },
    { name: 'and returns the last value', template: '{{ and .Extra.t .Extra.name }}', want: 'Bob' },
    { name: 'or returns the first truthy value', template: '{{ or .Extra.empty .Extra.name }}', want: 'Bob' },
    { name: 'and short-circuits', template: '{{ and .Extra.z (index .Extra.roles 99) }}', want: '0' },
    { name: 'or short-circuits', template: '{{ or .Subject (index .Extra.roles 99) }}', want: 'alice' },
  ]
  it.each(cases)('$name: $template', ({ template, want, session }) => {
    expect(render(template, session ?? RICH)).toBe(want)
  })
})

describe('rejected at load', () => {
  const cases: { template: string; message: string; at?: [line: number, column: number, offset: number] }[] = [
    { template: '{{ .Subject', message: 'invalid template: unclosed action', at: [1, 1, 0] },
    { template: '{{ range }}', message: 'unsupported template syntax: {{range}} actions', at: [1, 4, 3] },
    { template: 'x\n  {{ range .Extra.roles }}{{ end }}', message: 'unsupported template syntax: {{range}} actions', at: [2, 6, 7] },
    { template: '{{ with .Extra }}{{ end }}', message: 'unsupported template syntax: {{with}} actions' },
    { template: '{{ define "x" }}{{ end }}', message: 'unsupported template syntax: {{define}} actions' },
    { template: '{{ template "x" }}', message: 'unsupported template syntax: {{template}} actions' },
    { template: '{{ block "x" . }}{{ end }}', message: 'unsupported template syntax: {{block}} actions' },
    { template: '{{ $x := 1 }}', message: 'unsupported template syntax: variables', at: [1, 4, 3] },
    { template: '{{ print $x }}', message: 'unsupported template syntax: variables', at: [1, 10, 9] },
    { template: '{{ nosuch .Subject }}', message: 'unsupported template syntax: function "nosuch" is not defined', at: [1, 4, 3] },
    { template: '{{ printf "%s" .Subject }}', message: 'unsupported template syntax: function "printf" is not implemented' },
    { template: '{{ .Subject | hasPrefix "a" }}', message: 'unsupported template syntax: function "hasPrefix" is not implemented', at: [1, 15, 14] },
    { template: '{{ .Subjekt }}', message: 'invalid template: unknown field "Subjekt" in type *authn.AuthenticationSession' },
    { template: '{{ .MatchContext.Foo }}', message: 'invalid template: unknown field "Foo" in type authn.MatchContext' },
    { template: '{{ .MatchContext.URL.Bar }}', message: 'invalid template: unknown field "Bar" in type *url.URL' },
    { template: '{{ .Subject.Length }}', message: "invalid template: can't evaluate field Length in type string" },
    { template: '{{ .Header.Set "a" "b" }}', message: 'unsupported template syntax: http.Header.Set' },
    { template: '{{ "abc }}', message: 'invalid template: unterminated quoted string', at: [1, 4, 3] },
    { template: '{{ `abc }}', message: 'invalid template: unterminated raw quoted string' },
    { template: '{{ "\\q" }}', message: 'invalid template: unknown escape sequence' },
    { template: "{{ 'a' }}", message: 'unsupported template syntax: character constants' },
    { template: '{{ 0x1F }}', message: 'unsupported template syntax: number literal 0x1F' },
    { template: '{{ if .Subject }}x', message: 'invalid template: unexpected EOF: missing {{end}}' },
    { template: '{{ end }}', message: 'invalid template: unexpected {{end}}' },
    { template: '{{ else }}', message: 'invalid template: unexpected {{else}}' },
    { template: '{{ }}', message: 'invalid template: missing value for command' },
    { template: '{{ if }}x{{ end }}', message: 'invalid template: missing value for if' },
    { template: '{{ print }}', message: 'invalid template: wrong number of args for print: want 1 got 0' },
    { template: '{{ print "a" "b" }}', message: 'invalid template: wrong number of args for print: want 1 got 2' },
    { template: '{{ .MatchContext.Header.Get }}', message: 'invalid template: wrong number of args for Get: want 1 got 0' },
    { template: '{{ upper 1 }}', message: 'invalid template: expected string; found 1' },
    { template: '{{ printIndex .MatchContext.RegexpCaptureGroups "0" }}', message: 'invalid template: expected integer; found "0"' },
    { template: '{{ upper .MatchContext.RegexpCaptureGroups }}', message: 'invalid template: wrong type for value; expected string; got []string' },
    { template: '{{ .Subject "x" }}', message: 'invalid template: Subject has arguments but cannot be invoked as function' },
    { template: '{{ "a" "b" }}', message: "invalid template: can't give argument to non-function \"a\"" },
    { template: '{{ nil }}', message: 'invalid template: nil is not a command' },
    { template: '{{ .Subject | "x" }}', message: 'invalid template: non executable command in pipeline stage 2' },
    { template: '{{ /* not a comment */ }}', message: 'invalid template: unexpected "/" in command' },
    { template: '{{/* c */ }}', message: 'invalid template: comment ends before closing delimiter' },
    { template: '{{.Subject-}}', message: 'invalid template: bad character U+002D' },
    { template: '{{ print (.Subject }}', message: 'invalid template: unclosed left paren' },
    { template: '{{ print .Subject) }}', message: 'invalid template: unexpected right paren' },
    { template: `{{ ${'('.repeat(101)}1${')'.repeat(101)} }}`, message: 'unsupported template syntax: more than 100 nested parentheses' },
    { template: `${'{{ if 1 }}'.repeat(101)}${'{{ end }}'.repeat(101)}`, message: 'unsupported template syntax: more than 100 nested {{if}} actions' },
  ]
  it.each(cases)('$template', ({ template, message, at }) => {
    const err = compileError(template)
    expect(err.message).toContain(message)
    if (at !== undefined) {
      expect([err.line, err.column, err.offset]).toEqual(at)
      expect(err.message).toContain(`(line ${at[0]}, column ${at[1]}, offset ${at[2]})`)
    }
  })
})

describe('render-time faults (Go execution errors)', () => {
  const cases: { template: string; message: string }[] = [
    { template: '{{ index .MatchContext.RegexpCaptureGroups 5 }}', message: 'line 1, column 4: index out of range: 5' },
    { template: '{{ .Extra.missing.b }}', message: 'nil pointer evaluating interface {}.b' },
    { template: '{{ .Extra.name.first }}', message: "can't evaluate field first in type string" },
    { template: '{{ upper .Extra.n }}', message: 'wrong type for value; expected string; got float64' },
    { template: '{{ .Extra.missing | lower }}', message: 'invalid value; expected string' },
    { template: '{{ eq .Extra.n 1 }}', message: 'incompatible types for comparison: float64 and int' },
    { template: '{{ len .Extra.missing }}', message: 'len of nil pointer' },
    { template: '{{ printIndex .Extra.roles -1 }}', message: 'slice index out of range' },
  ]
  it.each(cases)('$template', ({ template, message }) => {
    const err = renderError(template, RICH)
    expect(err.code).toBe('ERR_INTERNAL')
    expect(err.reason).toBe('template_error')
    expect(err.message).toContain(message)
  })

  it('only faults when the failing branch runs', () => {
    const t = compileTemplate('{{ if .Extra.t }}{{ index .Extra.roles 9 }}{{ end }}ok')
    expect(t(makeSession({ extra: { t: false, roles: [] } }))).toBe('ok')
    expect(() => t(makeSession({ extra: { t: true, roles: [] } }))).toThrow(PipelineError)
  })

  it('reports the position of the failing action', () => {
    expect(renderError('ok\n  {{ .Subject }} {{ index .Extra.roles 7 }}', RICH).message).toContain('line 2, column 21')
  })

  it('bounds the nesting it prints instead of overflowing the stack', () => {
    let deep: unknown = 'leaf'
    for (let i = 0; i < 10_000; i++) deep = [deep]
    expect(renderError('{{ .Extra.deep }}', { extra: { deep } }).message).toContain('nested more than')
    expect(renderError('{{ toJson .Extra.deep }}', { extra: { deep } }).message).toContain('nested more than')
  })
})

describe('safety', () => {
  it('never reaches JavaScript prototype properties through .Extra', () => {
    const extra = JSON.parse('{"__proto__": {"polluted": "yes"}, "x": 1}') as Record<string, unknown>
    expect(render('{{ .Extra.constructor }}|{{ .Extra.toString }}|{{ index .Extra "hasOwnProperty" }}', { extra })).toBe(
      '<no value>|<no value>|<no value>',
    )
    expect(render('{{ .Extra.__proto__.polluted }}', { extra })).toBe('yes')
    expect(() => compileTemplate('{{ constructor }}')).toThrow('function "constructor" is not defined')
    expect(() => compileTemplate('{{ .toString }}')).toThrow('unknown field "toString"')
  })
})

describe('compiled form', () => {
  /** A session that fails the test on any property read except the allowed ones. */
  function guarded(allowed: readonly string[]): Session {
    const base = makeSession(RICH)
    return new Proxy(base, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && !allowed.includes(prop)) throw new Error(`unexpected read of session.${prop}`)
        return Reflect.get(target, prop, receiver) as unknown
      },
    })
  }

  it('returns the constant for a template without actions', () => {
    const t = compileTemplate('X-Static {{/* comment */}}value')
    expect(t(guarded([]))).toBe('X-Static value')
  })

  it('folds literal-only actions at load', () => {
    expect(compileTemplate('{{ upper "a" }}-{{ if eq 1 1 }}{{ quote "b" }}{{ end }}')(guarded([]))).toBe('A-"b"')
  })

  it('compiles print .Subject to a single property read', () => {
    const t = compileTemplate('{{ print .Subject }}')
    expect(t(guarded(['subject']))).toBe('alice')
    expect(t.toString()).toMatch(/^\(?s\)? => s\.subject$/)
  })

  it('reads a header with a name lower-cased at load', () => {
    const t = compileTemplate('{{ .MatchContext.Header.Get "X-Tenant-Id" }}')
    expect(t(guarded(['matchContext']))).toBe('acme')
  })

  it('is reusable across sessions', () => {
    const t = compileTemplate('{{ .Subject }}:{{ default "none" .Extra.role }}')
    expect(t(makeSession({ subject: 'a', extra: { role: 'r' } }))).toBe('a:r')
    expect(t(makeSession({ subject: 'b' }))).toBe('b:none')
  })
})
