import { describe, expect, it } from 'vitest'
import { header, isHeaderSetter } from '../../../../src/pipeline/mutate/header.js'
import { PipelineError } from '../../../../src/pipeline/errors.js'
import { runMutatorContract } from '../../../contract/mutator.contract.js'
import { build, issuesOf } from '../../../contract/config.contract.js'
import { makeRequest, makeSession, NO_ABORT } from '../../../helpers/session.js'

const SUBJECT = '{{ print .Subject }}'

describe('mutate header', () => {
  runMutatorContract({
    factory: header,
    validConfigs: [
      { headers: {} },
      { headers: { 'X-User': SUBJECT, 'X-Portcullis-Rule': 'public' } },
      { headers: { 'x-tenant': '{{ print .Extra.tenant }}' } },
    ],
    invalidConfigs: [
      { name: 'a missing headers key', config: undefined, path: ['headers'] },
      { name: 'an empty config', config: {}, path: ['headers'] },
      { name: 'headers that are not a map', config: { headers: ['X-User'] }, path: ['headers'] },
      { name: 'a non-string template', config: { headers: { 'X-User': 1 } }, path: ['headers', 'X-User'] },
      { name: 'a header name with a space', config: { headers: { 'X User': 'a' } }, path: ['headers', 'X User'] },
      { name: 'a header name with a colon (pseudo-header)', config: { headers: { ':authority': 'a' } }, path: ['headers', ':authority'] },
      { name: 'an empty header name', config: { headers: { '': 'a' } }, path: ['headers', ''] },
      { name: 'a non-ASCII header name', config: { headers: { 'X-Usér': 'a' } }, path: ['headers', 'X-Usér'] },
      { name: 'the same name twice in different case', config: { headers: { 'X-User': 'a', 'x-user': 'b' } }, path: ['headers', 'x-user'] },
      { name: 'the host header', config: { headers: { Host: 'evil.example' } }, path: ['headers', 'Host'] },
      { name: 'a hop-by-hop header', config: { headers: { Connection: 'close' } }, path: ['headers', 'Connection'] },
      { name: 'a template with a syntax error', config: { headers: { 'X-User': '{{ print .Subject ' } }, path: ['headers', 'X-User'] },
    ],
  })

  it('lower-cases the header names it declares and sets', () => {
    const m = build(header, { headers: { 'X-User': SUBJECT, 'X-Portcullis-Rule': 'public' } })
    expect(isHeaderSetter(m) && m.headerNames).toEqual(['x-user', 'x-portcullis-rule'])
  })

  const cases: {
    name: string
    headers: Record<string, string>
    session: { subject?: string; extra?: Record<string, unknown>; header?: Record<string, string> }
    want: Record<string, string>
  }[] = [
    { name: 'renders the subject', headers: { 'X-User': SUBJECT }, session: { subject: 'alice' }, want: { 'x-user': 'alice' } },
    {
      name: 'renders a value from extra',
      headers: { 'X-Tenant': '{{ print .Extra.tenant }}' },
      session: { extra: { tenant: 't-42' } },
      want: { 'x-tenant': 't-42' },
    },
    { name: 'sets a literal value', headers: { 'X-Portcullis-Rule': 'public' }, session: {}, want: { 'x-portcullis-rule': 'public' } },
    {
      name: 'overwrites a value set earlier in the chain',
      headers: { 'X-User': SUBJECT },
      session: { subject: 'alice', header: { 'x-user': 'from-authorizer' } },
      want: { 'x-user': 'alice' },
    },
    {
      name: 'sets an empty value when the template renders nothing (scrubs a client copy)',
      headers: { 'X-User': SUBJECT },
      session: { subject: '' },
      want: { 'x-user': '' },
    },
    {
      name: 'keeps headers it does not manage',
      headers: { 'X-User': SUBJECT },
      session: { subject: 'alice', header: { 'x-other': 'kept' } },
      want: { 'x-other': 'kept', 'x-user': 'alice' },
    },
  ]

  it.each(cases)('$name', ({ headers, session, want }) => {
    const req = makeRequest({ headers: { 'x-user': 'client-supplied' } })
    const s = makeSession(req, session)
    build(header, { headers }).mutate(req, s, NO_ABORT)
    expect(Object.fromEntries(s.header)).toEqual(want)
  })

  it('never reads the client-supplied copy of a managed header', () => {
    const req = makeRequest({ headers: { 'X-User': 'admin' } })
    const s = makeSession(req, { subject: 'anonymous' })
    build(header, { headers: { 'X-User': SUBJECT } }).mutate(req, s, NO_ABORT)
    expect(s.header.get('x-user')).toBe('anonymous')
  })

  it.each([
    { name: 'CR LF (header injection)', subject: 'alice\r\nx-admin: true' },
    { name: 'a bare LF', subject: 'alice\nx' },
    { name: 'NUL', subject: 'alice\0' },
  ])('denies with ERR_INTERNAL instead of emitting a value containing $name', ({ subject }) => {
    const req = makeRequest()
    const s = makeSession(req, { subject, header: { 'x-before': 'v' } })
    const m = build(header, { headers: { 'X-Rule': 'r', 'X-User': SUBJECT } })
    let thrown: unknown
    try {
      m.mutate(req, s, NO_ABORT)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(PipelineError)
    expect((thrown as PipelineError).code).toBe('ERR_INTERNAL')
    expect((thrown as PipelineError).reason).toBe('mutator_header_invalid_value')
    expect((thrown as PipelineError).message).not.toContain('alice')
    // Nothing was half-applied.
    expect(Object.fromEntries(s.header)).toEqual({ 'x-before': 'v' })
  })

  it('reports a template syntax error with its position, at load', () => {
    const issues = issuesOf(header.config, { headers: { 'X-User': '{{ print .Subject ' } })
    expect(issues).toContainEqual(expect.objectContaining({ path: ['headers', 'X-User'], message: expect.stringMatching(/^invalid template: .*line 1/) }))
  })

  it('turns a render-time template fault into ERR_INTERNAL naming the header, and sets nothing', () => {
    const req = makeRequest()
    const s = makeSession(req, { extra: {} })
    const m = build(header, { headers: { 'X-Rule': 'r', 'X-Deep': '{{ print .Extra.a.b }}' } })
    let thrown: unknown
    try {
      m.mutate(req, s, NO_ABORT)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(PipelineError)
    expect(thrown).toMatchObject({ code: 'ERR_INTERNAL', reason: 'template_error' })
    expect((thrown as PipelineError).message).toMatch(/^Template for header "x-deep" failed: template error at line 1/)
    expect(s.header.size).toBe(0)
  })

  it('renders each request from the templates compiled at create()', () => {
    const m = build(header, { headers: { 'X-User': SUBJECT } })
    const req = makeRequest()
    for (const subject of ['a', 'b', 'c']) {
      const s = makeSession(req, { subject })
      m.mutate(req, s, NO_ABORT)
      expect(s.header.get('x-user')).toBe(subject)
    }
  })
})
