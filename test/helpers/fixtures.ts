/**
 * Loads the CheckRequest fixtures in test/fixtures/check-requests/: real-shaped Envoy payloads in
 * proto3 JSON (lowerCamelCase field names, `bytes` as base64, int64 as strings), parsed with the
 * generated `CheckRequest.fromJSON` exactly as a test or benchmark would receive them.
 *
 * | name                   | what Envoy would send for                                                 |
 * |------------------------|---------------------------------------------------------------------------|
 * | `anonymous-get`        | `curl https://api.example.com/public/index.html?lang=en`                  |
 * | `bearer-admin`         | `curl --http2 -X POST -H 'authorization: Bearer …' …/admin/users?dry_run=true` |
 * | `raw-header-map`       | a GET with `encode_raw_headers: true`: `header_map` with raw bytes, two `x-tenant` and two `cookie` lines, a Latin-1 (non-UTF-8) `x-file-name` |
 * | `forwarded-headers`    | `http://api.example.com/admin/users` carrying spoofed `x-forwarded-*`, `x-original-url`, `x-envoy-original-path`, `:authority`/`host` (security.md A13) |
 * | `merged-authorization` | two `authorization` lines, merged by Envoy into `Bearer <a>,Bearer <b>` (A48) |
 * @module
 */
import { readFileSync } from 'node:fs'
import { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth.js'

/** Fixture names listed above; any other file in the folder loads too. */
export type CheckRequestFixture =
  | 'anonymous-get'
  | 'bearer-admin'
  | 'raw-header-map'
  | 'forwarded-headers'
  | 'merged-authorization'
  | (string & {})

const DIR = new URL('../fixtures/check-requests/', import.meta.url)

/** Parses test/fixtures/check-requests/`name`.json into a fresh CheckRequest. */
export function loadCheckRequest(name: CheckRequestFixture): CheckRequest {
  return CheckRequest.fromJSON(loadCheckRequestJson(name))
}

/** The fixture as plain JSON, for tests that modify it before parsing. */
export function loadCheckRequestJson(name: CheckRequestFixture): unknown {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`bad fixture name ${JSON.stringify(name)}`)
  return JSON.parse(readFileSync(new URL(`${name}.json`, DIR), 'utf8')) as unknown
}
