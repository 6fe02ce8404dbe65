/**
 * V8 settings of the server process, applied before any other module is evaluated (src/cli.ts
 * imports this module first).
 *
 * **Allocation-site pretenuring off.** V8 watches which allocation sites produce objects that
 * survive a young-generation GC and, past a threshold, allocates everything from those sites
 * directly in the old generation. A burst of concurrent Checks (start-up, a reload, a stall) is
 * enough to make it pretenure the request path: from then on every Check's objects are born old,
 * and the young objects they point to (decoded header strings, the request view, the session) are
 * kept alive by them through every scavenge and copied into the old generation. Measured on the
 * benchmark machine (bench/RESULTS.md, "GC and the latency tail"): at 1 500 cached-JWT Checks/s,
 * ≈ 3 MB promoted per scavenge and 5–8 ms scavenges with it on; ≈ 4 KB and 0.6 ms with it off,
 * and old-generation growth (so major GCs) almost gone. Request-scoped objects never outlive
 * their Check, so pretenuring them is always wrong here; the long-lived data (rules, caches) is
 * promoted once, normally. `node --allocation-site-pretenuring portcullis …` turns it back on.
 *
 * V8 reads this flag at every GC and compilation, so setting it at start-up, before the hot code
 * is compiled, takes full effect (it is not one of the flags fixed when the heap is created).
 * @module
 */
import { setFlagsFromString } from 'node:v8'

if (!process.execArgv.some((a) => a === '--allocation-site-pretenuring')) {
  setFlagsFromString('--no-allocation-site-pretenuring')
}
