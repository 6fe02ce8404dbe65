/**
 * docker-compose.yml, Dockerfile and envoy/envoy.yaml must describe the same system the
 * end-to-end tests run (no Docker needed here): the same Envoy version and config file, clusters
 * that point at the compose services and the ports they listen on, and a test-side config
 * rewrite that touches nothing but socket addresses and ports.
 */
import { readFileSync } from 'node:fs'
import { join, posix, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { ENVOY_CONFIG_PATH, ENVOY_VERSION, REPO_ROOT, rewriteEnvoyConfig } from '../helpers/envoy.js'

interface Service {
  image?: string
  build?: string | { context?: string; dockerfile?: string }
  command?: string | string[]
  environment?: Record<string, string | number> | string[]
  volumes?: (string | { source: string; target: string; read_only?: boolean })[]
  ports?: (string | number | { target: number; published?: string | number; host_ip?: string })[]
  depends_on?: string[] | Record<string, unknown>
}

const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> }
const envoyConfig = parse(readFileSync(ENVOY_CONFIG_PATH, 'utf8')) as unknown
const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')

function service(name: string): Service {
  const s = compose.services[name]
  if (s === undefined) throw new Error(`docker-compose.yml has no service "${name}"`)
  return s
}

function environment(s: Service): Record<string, string> {
  const env = s.environment ?? {}
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]))
}

interface Mount {
  readonly source: string // absolute path on the host
  readonly target: string
  readonly readOnly: boolean
}

function mounts(s: Service): Mount[] {
  return (s.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: resolve(REPO_ROOT, v.source), target: v.target, readOnly: v.read_only === true }
    const [source = '', target = '', mode = ''] = v.split(':')
    return { source: resolve(REPO_ROOT, source), target, readOnly: mode.split(',').includes('ro') }
  })
}

function mountOf(s: Service, hostPath: string): Mount {
  const m = mounts(s).find((x) => x.source === hostPath)
  if (m === undefined) throw new Error(`no volume mounts ${hostPath}`)
  return m
}

interface Published {
  readonly hostIp: string | undefined
  readonly hostPort: number | undefined
  readonly containerPort: number
}

function published(s: Service): Published[] {
  return (s.ports ?? []).map((p) => {
    if (typeof p === 'number') return { hostIp: undefined, hostPort: undefined, containerPort: p }
    if (typeof p === 'object') {
      return { hostIp: p.host_ip, hostPort: p.published === undefined ? undefined : Number(p.published), containerPort: p.target }
    }
    const parts = p.replace(/\/(tcp|udp)$/, '').split(':')
    const containerPort = Number(parts.at(-1))
    const hostPort = parts.length >= 2 ? Number(parts.at(-2)) : undefined
    return { hostIp: parts.length === 3 ? parts[0] : undefined, hostPort, containerPort }
  })
}

function commandArgs(s: Service): string[] {
  return typeof s.command === 'string' ? s.command.split(/\s+/) : (s.command ?? [])
}

/** The value after `flag` in the Dockerfile's exec-form CMD. */
function dockerfileCmdFlag(flag: string): string | undefined {
  const line = dockerfile.split('\n').find((l) => /^CMD\s+\[/.test(l))
  if (line === undefined) throw new Error('Dockerfile has no exec-form CMD')
  const cmd = JSON.parse(line.replace(/^CMD\s+/, '')) as string[]
  const i = cmd.indexOf(flag)
  return i === -1 ? undefined : cmd[i + 1]
}

function get(value: unknown, ...path: (string | number)[]): unknown {
  let v = value
  for (const key of path) v = (v as Record<string | number, unknown> | undefined)?.[key]
  return v
}

interface ClusterEndpoint {
  readonly cluster: string
  readonly address: string
  readonly port: number
}

function clusterEndpoints(config: unknown): ClusterEndpoint[] {
  const clusters = get(config, 'static_resources', 'clusters') as { name: string; load_assignment: unknown }[]
  return clusters.flatMap((c) =>
    (get(c.load_assignment, 'endpoints') as { lb_endpoints: unknown[] }[]).flatMap((e) =>
      e.lb_endpoints.map((lb) => ({
        cluster: c.name,
        address: get(lb, 'endpoint', 'address', 'socket_address', 'address') as string,
        port: get(lb, 'endpoint', 'address', 'socket_address', 'port_value') as number,
      })),
    ),
  )
}

function listenerPort(config: unknown): number {
  return get(config, 'static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value') as number
}

/** The config file mounted into the portcullis service, as loaded by the server. */
function portcullisConfig(): { mount: Mount; config: unknown } {
  const mount = mountOf(service('portcullis'), join(REPO_ROOT, 'portcullis.yaml'))
  return { mount, config: parse(readFileSync(mount.source, 'utf8')) as unknown }
}

/** The port a compose service listens on inside its container. */
function servicePort(name: string): number {
  switch (name) {
    case 'portcullis': {
      const override = environment(service(name))['PORTCULLIS_SERVE_GRPC_PORT']
      return Number(override ?? get(portcullisConfig().config, 'serve', 'grpc', 'port'))
    }
    case 'echo':
      return Number(environment(service(name))['PORT'] ?? 8080)
    default:
      throw new Error(`don't know which port compose service "${name}" listens on`)
  }
}

/** Blanks every socket_address's address and port, wherever it is. */
function withoutSocketAddresses(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSocketAddresses)
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) =>
      k === 'socket_address' ? [k, { ...(v as object), address: '<address>', port_value: '<port>' }] : [k, withoutSocketAddresses(v)],
    ),
  )
}

describe('docker-compose.yml runs what the end-to-end tests run', () => {
  it('pins the Envoy image to the version the tests install', () => {
    expect(service('envoy').image).toBe(`envoyproxy/envoy:v${ENVOY_VERSION}`)
  })

  it('mounts envoy/envoy.yaml, the file the tests load, where Envoy reads its config', () => {
    const envoy = service('envoy')
    const m = mountOf(envoy, ENVOY_CONFIG_PATH)
    expect(m.readOnly).toBe(true)
    const args = commandArgs(envoy)
    // The image's default command reads /etc/envoy/envoy.yaml.
    const configArg = args.includes('-c') ? args[args.indexOf('-c') + 1] : '/etc/envoy/envoy.yaml'
    expect(configArg).toBe(m.target)
  })

  it('points each Envoy cluster at a compose service and the port that service listens on', () => {
    const endpoints = clusterEndpoints(envoyConfig)
    expect(endpoints.map((e) => e.cluster).sort()).toEqual(['portcullis', 'upstream'])
    for (const e of endpoints) {
      expect(Object.keys(compose.services), `cluster ${e.cluster}`).toContain(e.address)
      expect(e.port, `cluster ${e.cluster} → ${e.address}`).toBe(servicePort(e.address))
    }
    expect(endpoints.find((e) => e.cluster === 'portcullis')?.address).toBe('portcullis')
    expect(endpoints.find((e) => e.cluster === 'upstream')?.address).toBe('echo')
  })

  it('publishes the Envoy listener, and the admin API on the host loopback only', () => {
    const ports = published(service('envoy'))
    const port = listenerPort(envoyConfig)
    expect(ports).toContainEqual({ hostIp: undefined, hostPort: port, containerPort: port })
    const adminPort = get(envoyConfig, 'admin', 'address', 'socket_address', 'port_value') as number
    expect(ports).toContainEqual({ hostIp: '127.0.0.1', hostPort: adminPort, containerPort: adminPort })
  })

  it('starts Envoy after Portcullis and the upstream', () => {
    const deps = service('envoy').depends_on ?? []
    expect(Array.isArray(deps) ? deps : Object.keys(deps)).toEqual(expect.arrayContaining(['portcullis', 'echo']))
  })

  it('builds portcullis from the repo Dockerfile, with the repo portcullis.yaml and rules/ mounted read-only', () => {
    const s = service('portcullis')
    const context = typeof s.build === 'string' ? s.build : s.build?.context
    expect(resolve(REPO_ROOT, context ?? '<no build>')).toBe(REPO_ROOT)
    expect(typeof s.build === 'object' ? s.build.dockerfile : undefined).toBeUndefined()

    const { mount, config } = portcullisConfig()
    expect(mount.readOnly).toBe(true)
    // Rules are found relative to the config file (file://./rules), so the mount must sit there.
    const repos = get(config, 'access_rules', 'repositories') as string[]
    const rulesDir = join(REPO_ROOT, 'rules')
    const rules = mountOf(s, rulesDir)
    expect(rules.readOnly).toBe(true)
    expect(repos.map((r) => posix.join(posix.dirname(mount.target), r.replace(/^file:\/\//, '')))).toContain(rules.target)
  })

  it('has Portcullis listen on all interfaces of its container', () => {
    expect(environment(service('portcullis'))['PORTCULLIS_SERVE_GRPC_HOST']).toBe('0.0.0.0')
  })

  it('runs the Dockerfile CMD with the config path compose mounts', () => {
    expect(dockerfileCmdFlag('--config')).toBe(portcullisConfig().mount.target)
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/src\/cli\.js", "serve"/m)
  })

  it('runs the echo upstream from envoy/echo-server.mjs with PORT set', () => {
    const s = service('echo')
    const m = mountOf(s, join(REPO_ROOT, 'envoy', 'echo-server.mjs'))
    expect(m.readOnly).toBe(true)
    expect(commandArgs(s)).toContain(m.target)
    expect(environment(s)['PORT']).toBeDefined()
  })
})

describe('envoy/envoy.yaml', () => {
  const hcm = get(
    envoyConfig,
    'static_resources', 'listeners', 0, 'filter_chains', 0, 'filters', 0, 'typed_config',
  ) as Record<string, unknown>
  const httpFilters = hcm['http_filters'] as { name: string; typed_config: Record<string, unknown> }[]

  it('keeps the hardening settings (security.md §5.1)', () => {
    expect(hcm).toMatchObject({
      normalize_path: true,
      merge_slashes: true,
      path_with_escaped_slashes_action: 'REJECT_REQUEST',
      common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
    })
    expect(httpFilters.map((f) => f.name)).toEqual(['envoy.filters.http.ext_authz', 'envoy.filters.http.router'])
    expect(httpFilters[0]?.typed_config).toMatchObject({
      grpc_service: { envoy_grpc: { cluster_name: 'portcullis' }, timeout: '0.25s' },
      transport_api_version: 'V3',
      failure_mode_allow: false,
      status_on_error: { code: 'ServiceUnavailable' },
      encode_raw_headers: true,
      validate_mutations: true,
      include_peer_certificate: false,
    })
  })

  it('changes only socket addresses and ports when the tests rewrite it', () => {
    const rewritten = rewriteEnvoyConfig(envoyConfig, {
      listener: { address: '127.0.0.1', port: 1001 },
      admin: { address: '127.0.0.1', port: 1002 },
      clusters: { portcullis: { address: '127.0.0.1', port: 1003 }, upstream: { address: '127.0.0.1', port: 1004 } },
    })
    expect(withoutSocketAddresses(rewritten)).toEqual(withoutSocketAddresses(envoyConfig))
    // ...and every address was rewritten: nothing still names a compose host.
    expect(listenerPort(rewritten)).toBe(1001)
    expect(get(rewritten, 'admin', 'address', 'socket_address')).toEqual({ address: '127.0.0.1', port_value: 1002 })
    expect(clusterEndpoints(rewritten)).toEqual([
      { cluster: 'portcullis', address: '127.0.0.1', port: 1003 },
      { cluster: 'upstream', address: '127.0.0.1', port: 1004 },
    ])
    // The original is untouched.
    expect(clusterEndpoints(envoyConfig).map((e) => e.address)).toEqual(['portcullis', 'echo'])
  })

  it('refuses to rewrite a config whose clusters it does not know', () => {
    const addresses = {
      listener: { address: '127.0.0.1', port: 1 },
      admin: { address: '127.0.0.1', port: 2 },
    }
    expect(() => rewriteEnvoyConfig(envoyConfig, { ...addresses, clusters: { portcullis: addresses.listener } })).toThrow(
      /cluster "upstream"/,
    )
    expect(() =>
      rewriteEnvoyConfig(envoyConfig, {
        ...addresses,
        clusters: { portcullis: addresses.listener, upstream: addresses.listener, extra: addresses.listener },
      }),
    ).toThrow(/no cluster "extra"/)
  })
})
