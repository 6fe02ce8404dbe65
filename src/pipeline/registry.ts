/**
 * The handler registry: an explicit list of factories (no import side effects), indexed by
 * (stage, id). Duplicate ids fail at boot.
 * @module
 */
import type { HandlerFactory, Stage } from './types.js'
import { authenticators } from './authn/index.js'
import { authorizers } from './authz/index.js'
import { mutators } from './mutate/index.js'
import { errorHandlers } from './errors/index.js'

export class Registry {
  readonly #byStage = new Map<Stage, Map<string, HandlerFactory>>()

  constructor(factories: readonly HandlerFactory[]) {
    for (const f of factories) {
      let m = this.#byStage.get(f.stage)
      if (!m) this.#byStage.set(f.stage, (m = new Map()))
      if (m.has(f.id)) throw new Error(`duplicate ${f.stage} handler id "${f.id}"`)
      m.set(f.id, f)
    }
  }

  get(stage: Stage, id: string): HandlerFactory | undefined {
    return this.#byStage.get(stage)?.get(id)
  }

  ids(stage: Stage): readonly string[] {
    return [...(this.#byStage.get(stage)?.keys() ?? [])]
  }
}

/** Every handler Portcullis ships, by stage. */
export function defaultRegistry(): Registry {
  return new Registry([...authenticators, ...authorizers, ...mutators, ...errorHandlers] as readonly HandlerFactory[])
}
