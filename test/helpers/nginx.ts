/**
 * A real nginx for end-to-end tests of the decisions API with `auth_request`: the Debian `nginx`
 * package (installed on demand when the tests run as root, as in CI), started as a single
 * foreground process with its own prefix, temp, pid and log paths in a temporary folder, listening
 * on 127.0.0.1 only.
 *
 * {@link authRequestServer} is the nginx recipe for Portcullis, commented for copy-paste:
 * `auth_request` to `/decisions` with `X-Forwarded-Method/-Proto/-Host/-Uri`, identity headers
 * copied from the decision (`auth_request_set` + `proxy_set_header`, which also replaces or drops a
 * client-sent copy), and optional `error_page` handling for denials other than 401/403.
 * @module
 */
import { execFile, spawn } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './ports.js'

const execFileAsync = promisify(execFile)

/**
 * How the package is installed (Debian/Ubuntu, as root). `DPkg::Lock::Timeout` waits for a
 * concurrent apt instead of failing; the Docker images' policy-rc.d (exit 101) keeps the package's
 * own nginx service from starting on port 80.
 */
export const NGINX_APT_UPDATE = ['apt-get', '-o', 'DPkg::Lock::Timeout=300', 'update'] as const
export const NGINX_APT_INSTALL = [
  'apt-get', '-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'nginx',
] as const

/** Where Debian puts the binary (not on a non-root user's PATH). */
const WELL_KNOWN = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']

/** Returns the nginx binary on PATH or in a well-known place, or undefined. */
export function findNginx(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && isExecutable(join(dir, 'nginx'))) return join(dir, 'nginx')
  }
  return WELL_KNOWN.find(isExecutable)
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Returns the nginx binary, installing the Debian package first if there is none. Installing
 * needs root (CI runs as root) and apt; otherwise this throws with the command to run by hand.
 */
export async function ensureNginx(): Promise<{ bin: string; version: string; installed: boolean }> {
  let bin = findNginx()
  let installed = false
  if (bin === undefined) {
    const manual = `run as root: ${NGINX_APT_UPDATE.join(' ')} && ${NGINX_APT_INSTALL.join(' ')}`
    if (process.getuid?.() !== 0) throw new Error(`nginx is not installed and the tests are not running as root; ${manual}`)
    if (!existsSync('/usr/bin/apt-get')) throw new Error(`nginx is not installed and there is no apt-get; install the nginx package (${manual})`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    try {
      await execFileAsync(NGINX_APT_UPDATE[0], NGINX_APT_UPDATE.slice(1), { env, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 })
      await execFileAsync(NGINX_APT_INSTALL[0], NGINX_APT_INSTALL.slice(1), { env, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 })
    } catch (err) {
      const e = err as { stderr?: string; message?: string }
      const detail = (e.stderr ?? e.message ?? String(err)).trim().split('\n').slice(-15).join('\n')
      throw new Error(`could not install nginx with apt-get (${manual}):\n${detail}`)
    }
    bin = findNginx()
    if (bin === undefined) throw new Error('apt-get installed nginx, but no nginx binary was found')
    installed = true
  }
  // `nginx -v` prints to stderr: "nginx version: nginx/1.22.1".
  const { stderr } = await execFileAsync(bin, ['-v'], { timeout: 10_000 })
  return { bin, version: stderr.trim().replace(/^nginx version:\s*/, ''), installed }
}

// ---------------------------------------------------------------------------------------------
// Config

export interface AuthRequestServer {
  /** Port of this `server` block's listener on 127.0.0.1. */
  readonly listen: number
  /** Name of the http{}-level `upstream` block for Portcullis's HTTP API ({@link portcullisUpstream}). */
  readonly decisions: string
  /** Port of the application behind nginx. */
  readonly upstream: number
  /** Identity headers Portcullis sets (e.g. `X-User`); each is copied from the decision. */
  readonly identityHeaders: readonly string[]
  /**
   * Also turn Portcullis denials other than 401/403 into the client's answer (redirects, 404,
   * 503) with `error_page`. Without it nginx answers 500 for every such status.
   */
  readonly errorPages: boolean
}

/**
 * An http{}-level `upstream` block for Portcullis's HTTP API (`serve.api`) with a keep-alive pool,
 * so each decision does not pay for a new TCP connection. Keep Portcullis's `timeout.idle`
 * (default 120 s) above nginx's `keepalive_timeout` here (default 60 s), so nginx closes first.
 */
export function portcullisUpstream(name: string, port: number): string {
  return `
  upstream ${name} {
    server 127.0.0.1:${port};
    keepalive 16;
  }
`
}

/** nginx variable name for a header: `X-User` → `x_user`. */
function varName(header: string): string {
  return header.toLowerCase().replaceAll('-', '_')
}

/**
 * One `server` block protecting `location /` with Portcullis. What nginx does with the answer of
 * the `auth_request` subrequest (ngx_http_auth_request_module): 2xx → the request goes upstream;
 * 401 and 403 → that status to the client (with the decision's `WWW-Authenticate` on 401, but
 * nginx's own body); any other status → 500, unless `error_page 500` sends it to a location that
 * looks at the decision's status, as `errorPages` does here.
 */
export function authRequestServer(o: AuthRequestServer): string {
  const copies = o.identityHeaders
    .map((h) => {
      const v = `$portcullis_${varName(h)}`
      // An empty value (the rule did not set the header) makes nginx omit it, so a client-sent
      // copy never reaches the upstream either way.
      return `      auth_request_set ${v} $upstream_http_${varName(h)};\n      proxy_set_header ${h} ${v};`
    })
    .join('\n')
  const errorPages = o.errorPages
    ? `
      # Denials other than 401/403 (redirects, no rule, unavailable): nginx turns them into 500;
      # look at the decision's own status instead.
      auth_request_set $portcullis_status $upstream_status;
      auth_request_set $portcullis_location $upstream_http_location;
      error_page 500 = @portcullis_denied;`
    : ''
  const deniedLocation = o.errorPages
    ? `
    location @portcullis_denied {
      if ($portcullis_status = 301) { return 301 $portcullis_location; }
      if ($portcullis_status = 302) { return 302 $portcullis_location; }
      if ($portcullis_status = 400) { return 400; }
      if ($portcullis_status = 404) { return 404; }
      if ($portcullis_status = 429) { return 429; }
      if ($portcullis_status = 503) { return 503; }
      return 500;
    }`
    : ''
  return `
  server {
    listen 127.0.0.1:${o.listen};

    location / {
      auth_request /_portcullis;
${copies}${errorPages}
      proxy_pass http://127.0.0.1:${o.upstream};
    }

    # The subrequest: Portcullis's decisions API, told what the original request was.
    location = /_portcullis {
      internal;
      proxy_pass http://${o.decisions}/decisions;
      # The decision needs no body; do not send one.
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      # The raw target as the client sent it, query included: the upstream gets the same bytes
      # (proxy_pass without a URI part), so both see the same path.
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }${deniedLocation}
  }
`
}

/**
 * The whole nginx.conf: every path under `dir`, a readiness listener on `readyPort`, `servers`
 * inside http{}. `daemon off;` is given on the command line (`-g`).
 */
export function nginxConf(dir: string, readyPort: number, servers: string): string {
  return `
# Test config: one process (no master/worker pair whose workers could outlive a killed master).
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log stderr notice;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path ${join(dir, 'tmp', 'client_body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};

  # Readiness probe for the test harness.
  server {
    listen 127.0.0.1:${readyPort};
    location = /_ready { return 204; }
  }
${servers}
}
`
}

// ---------------------------------------------------------------------------------------------
// Running nginx

export interface NginxProcess {
  /** The listener ports, by the names given to {@link startNginx}. */
  readonly ports: Readonly<Record<string, number>>
  /** nginx's error log (stderr) lines so far. */
  logs(): string[]
  stop(): Promise<void>
}

const START_ATTEMPTS = 3

/**
 * Starts nginx with `servers(ports)` as the body of its http{} block; `listeners` names the ports
 * to allocate (free 127.0.0.1 ports; the start is retried if one was taken in the meantime).
 * Resolves when nginx answers on its readiness listener.
 */
export async function startNginx(o: {
  bin: string
  listeners: readonly string[]
  servers: (ports: Readonly<Record<string, number>>) => string
}): Promise<NginxProcess> {
  let last: Error | undefined
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(o)
    } catch (err) {
      last = err as Error
      if (!/Address already in use/.test(last.message)) throw last
    }
  }
  throw last ?? new Error('nginx did not start')
}

async function startOnce(o: {
  bin: string
  listeners: readonly string[]
  servers: (ports: Readonly<Record<string, number>>) => string
}): Promise<NginxProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-nginx-'))
  await mkdir(join(dir, 'tmp'))
  const ports: Record<string, number> = {}
  for (const name of o.listeners) ports[name] = await freePort()
  const readyPort = await freePort()
  const conf = nginxConf(dir, readyPort, o.servers(ports))
  const confPath = join(dir, 'nginx.conf')
  await writeFile(confPath, conf)

  // -p: prefix for relative paths; -e: the start-up error log (before the config's error_log
  // applies), which would otherwise be /var/log/nginx/error.log.
  // -g 'daemon off;': stay in the foreground as this process's child.
  const child = spawn(o.bin, ['-p', dir, '-c', confPath, '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const collect = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''))
  }
  child.stdout.on('data', collect)
  child.stderr.on('data', collect)
  let running = true
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false
      resolve()
    })
    child.once('error', (err) => {
      lines.push(`could not run ${o.bin}: ${err.message}`)
      running = false
      resolve()
    })
  })
  // Never leave nginx behind if the test process dies without calling stop().
  const killOnExit = (): void => void child.kill('SIGKILL')
  process.once('exit', killOnExit)

  const stop = async (): Promise<void> => {
    if (running) {
      // SIGQUIT: graceful shutdown; SIGKILL if it takes too long.
      child.kill('SIGQUIT')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
    process.off('exit', killOnExit)
    await rm(dir, { recursive: true, force: true })
  }

  try {
    const deadline = Date.now() + 15_000
    for (;;) {
      const status = await probe(readyPort)
      if (status === 204) break
      if (!running) throw new Error(`nginx exited during start-up:\n${lines.join('\n')}\n--- nginx.conf ---\n${conf}`)
      if (Date.now() > deadline) throw new Error(`nginx not ready in time:\n${lines.join('\n')}`)
      await new Promise((r) => setTimeout(r, 25))
    }
    return { ports, logs: () => [...lines], stop }
  } catch (err) {
    await stop()
    throw err
  }
}

function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/_ready', timeout: 1_000 }, (res) => {
      res.resume()
      resolve(res.statusCode)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end()
  })
}
