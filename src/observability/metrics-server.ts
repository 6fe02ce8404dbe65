/**
 * The Prometheus endpoint: a small `node:http` server on `serve.prometheus.{host,port}` that
 * answers `GET`/`HEAD` on `metrics_path` only. Every other path is 404 (Oathkeeper serves its
 * metrics on every path of its metrics port, because `metrics_path` is registered on a mux it
 * never uses); other methods on the path are 405.
 *
 * Concurrent scrapes share one rendering, so a burst of scrapers costs one pass over the
 * registry. Slow or idle clients are cut off by short header/request/keep-alive timeouts, and the
 * number of connections is capped: the endpoint cannot be used to hold sockets open.
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import type { Logger } from './logger.js'
import type { PrometheusConfig } from './metrics-config.js'

export interface MetricsServer {
  readonly host: string
  /** The bound port (the chosen one when configured as 0). */
  readonly port: number
  /** `http://host:port/metrics_path`, for logs and tests. */
  readonly url: string
  /** Stops listening and closes every connection. */
  close(): Promise<void>
}

/** Connections held at most (Prometheus keeps one per scraper). */
export const MAX_CONNECTIONS = 64
const HEADERS_TIMEOUT_MS = 5_000
const REQUEST_TIMEOUT_MS = 10_000
const KEEP_ALIVE_TIMEOUT_MS = 30_000

const TEXT = 'text/plain; charset=utf-8'

/**
 * Listens on `cfg.host:cfg.port` and serves `registry` at `cfg.metrics_path`. Rejects when the
 * address cannot be bound (the error names it). `cfg.enabled` is the caller's business.
 */
export async function startMetricsServer(
  registry: Registry,
  cfg: Pick<PrometheusConfig, 'host' | 'port' | 'metrics_path'>,
  log?: Logger,
): Promise<MetricsServer> {
  const path = cfg.metrics_path
  let rendering: Promise<string> | undefined
  const render = (): Promise<string> => {
    rendering ??= registry.metrics().finally(() => {
      rendering = undefined
    })
    return rendering
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const reqPath = q === -1 ? url : url.slice(0, q)
    if (reqPath !== path) return void plain(res, 404, '404 page not found\n')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return void plain(res, 405, 'method not allowed\n')
    }
    render().then(
      (body) => {
        res.writeHead(200, {
          'content-type': registry.contentType,
          'content-length': Buffer.byteLength(body),
          'cache-control': 'no-store',
        })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (err: unknown) => {
        log?.error({ err: (err as Error).message }, 'metrics collection failed')
        plain(res, 500, 'metrics collection failed\n')
      },
    )
  }

  const server = createServer(
    { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, maxHeaderSize: 16 * 1024 },
    handle,
  )
  server.maxConnections = MAX_CONNECTIONS
  server.maxHeadersCount = 100

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new Error(`serve.prometheus: cannot listen on ${formatHost(cfg.host)}:${cfg.port}: ${err.message}`, { cause: err }))
    }
    server.once('error', onError)
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  server.on('error', (err) => log?.error({ err: err.message }, 'metrics server error'))
  const port = (server.address() as AddressInfo).port
  const url = `http://${formatHost(cfg.host)}:${port}${path}`
  log?.info({ host: cfg.host, port, path }, 'metrics server listening')

  let closing: Promise<void> | undefined
  return {
    host: cfg.host,
    port,
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': TEXT, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
