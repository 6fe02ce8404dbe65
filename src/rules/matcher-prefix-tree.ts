/**
 * A radix tree (compressed trie) from string keys to values, used by the rule matcher to find,
 * for a request URL, every rule whose literal prefix is a prefix of that URL, in time
 * proportional to the URL's length rather than to the number of rules.
 *
 * Built once per rule set and then only read: the matcher walks {@link PrefixNode}s directly on
 * the hot path (`IndexedMatcher.match` in `src/rules/matcher.ts`), so the node shape is part of
 * the contract.
 * @module
 */

/** One node: the edge label that leads to it, the values whose key ends here, its children. */
export interface PrefixNode<V> {
  /** Characters on the edge from the parent; `''` only for the root. */
  readonly label: string
  /** Values inserted with exactly the key spelled from the root to here. */
  readonly values: readonly V[]
  /** Children keyed by the first UTF-16 code unit of their label; `undefined` for a leaf. */
  readonly children: ReadonlyMap<number, PrefixNode<V>> | undefined
}

interface MutableNode<V> {
  label: string
  values: V[]
  children: Map<number, MutableNode<V>> | undefined
}

/** Insert-only radix tree. */
export class PrefixTree<V> {
  private readonly rootNode: MutableNode<V> = { label: '', values: [], children: undefined }

  get root(): PrefixNode<V> {
    return this.rootNode
  }

  insert(key: string, value: V): void {
    let node = this.rootNode
    let pos = 0
    while (pos < key.length) {
      const first = key.charCodeAt(pos)
      const child = node.children?.get(first)
      if (child === undefined) {
        const leaf: MutableNode<V> = { label: key.slice(pos), values: [], children: undefined }
        ;(node.children ??= new Map()).set(first, leaf)
        node = leaf
        break
      }
      const common = commonPrefixLength(child.label, key, pos)
      if (common < child.label.length) {
        // Split the edge: node → middle (shared part) → child (rest of the old label).
        const middle: MutableNode<V> = {
          label: child.label.slice(0, common),
          values: [],
          children: new Map([[child.label.charCodeAt(common), child]]),
        }
        child.label = child.label.slice(common)
        node.children?.set(first, middle)
        node = middle
      } else {
        node = child
      }
      pos += common
    }
    node.values.push(value)
  }
}

/** Length of the common prefix of `label` and `key.slice(from)`. */
function commonPrefixLength(label: string, key: string, from: number): number {
  let n = 0
  while (n < label.length && from + n < key.length && label.charCodeAt(n) === key.charCodeAt(from + n)) n++
  return n
}
