#!/usr/bin/env node
// Regenerates src/gen (or the folder given as argv[2]) from the Envoy API protos shipped in the
// npm package @grpc/grpc-js-xds (folder deps/). See proto/README.md.
import { execFileSync } from 'node:child_process'
import { rmSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const out = resolve(root, process.argv[2] ?? 'src/gen')
const deps = join(root, 'node_modules/@grpc/grpc-js-xds/deps')
const pkg = JSON.parse(readFileSync(join(root, 'node_modules/@grpc/grpc-js-xds/package.json'), 'utf8'))
const expected = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies['@grpc/grpc-js-xds']
if (pkg.version !== expected) {
  console.error(`@grpc/grpc-js-xds ${pkg.version} installed, package.json pins ${expected}: run npm ci`)
  process.exit(1)
}
// buf workspace: the four proto roots of deps/ as modules, given inline so nothing is written
// into node_modules; lint/breaking are not used.
const config = JSON.stringify({
  version: 'v2',
  modules: ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((path) => ({ path })),
})
const template = readFileSync(join(root, 'proto/buf.gen.yaml'), 'utf8')
  .replace('./node_modules/.bin/protoc-gen-ts_proto', join(root, 'node_modules/.bin/protoc-gen-ts_proto'))
  .replace('out: src/gen', `out: ${out}`)
rmSync(out, { recursive: true, force: true })
execFileSync(
  join(root, 'node_modules/.bin/buf'),
  ['generate', '--config', config, '--template', template, '--path', 'envoy-api/envoy/service/auth/v3/external_auth.proto'],
  { cwd: deps, stdio: 'inherit' },
)
