/**
 * `estimateBytes`: a conservative estimate of the V8 heap a cached value retains, for the
 * `sizeBytes` that loaders report to `AuthCache`. The cache cannot measure a value itself, and the
 * byte limit is only as good as this number, so it errs high: the constants are V8's layouts on
 * 64-bit Node without pointer compression (the default builds), rounded up, and property names are
 * counted for every object even though V8 usually shares them. test/unit/cache/memory.test.ts checks
 * that the estimate is at least the measured heap for session-like values.
 * @module
 */

const WORD = 8
/** Header of a heap string (map, hash, length), before its characters. */
const STRING_HEADER = 16
/** Header of a plain object (map, properties, elements). */
const OBJECT_HEADER = 24
/** Per property, covering both in-object fields and dictionary-mode entries (3 words). */
const PROPERTY = 3 * WORD
/** JSArray header plus its FixedArray backing store header. */
const ARRAY_HEADER = 32 + 16
/** A boxed double (HeapNumber). */
const HEAP_NUMBER = 16
/** Per entry of a Map or Set (OrderedHashTable: key, value, chain, plus bucket). */
const HASH_ENTRY = 5 * WORD

/** Characters outside Latin-1 make V8 store the whole string with two bytes per character. */
const TWO_BYTE = /[^\u0000-\u00ff]/

/**
 * Estimated heap bytes retained by `value`: strings, numbers, bigints, arrays, plain objects (and
 * class instances, by their own enumerable properties), Map, Set, Date, typed arrays and buffers.
 * Objects reachable twice are counted once. Iterative, so deep JSON cannot overflow the stack.
 */
export function estimateBytes(value: unknown): number {
  let total = 0
  const seen = new Set<object>()
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    switch (typeof v) {
      case 'string':
        total += stringBytes(v)
        continue
      case 'number':
        // Small integers are stored inline (Smi); everything else may be boxed.
        total += Number.isInteger(v) && Math.abs(v) < 2 ** 31 ? 0 : HEAP_NUMBER
        continue
      case 'bigint':
        total += HEAP_NUMBER + WORD * Math.ceil(v.toString(16).length / 16)
        continue
      case 'object':
      case 'function':
        if (v === null || seen.has(v)) continue
        seen.add(v)
        total += objectBytes(v, stack)
        continue
      default:
        // boolean, undefined, symbol: shared oddballs, the referencing slot is counted by its parent.
        continue
    }
  }
  return total
}

function stringBytes(s: string): number {
  return align(STRING_HEADER + (TWO_BYTE.test(s) ? 2 * s.length : s.length))
}

/** Bytes of `o` itself; pushes what it references onto `stack`. */
function objectBytes(o: object, stack: unknown[]): number {
  if (ArrayBuffer.isView(o)) return OBJECT_HEADER + 64 + align(o.byteLength)
  if (o instanceof ArrayBuffer) return OBJECT_HEADER + 64 + align(o.byteLength)
  if (o instanceof Date) return OBJECT_HEADER + HEAP_NUMBER
  if (Array.isArray(o)) {
    for (const item of o) stack.push(item)
    return ARRAY_HEADER + WORD * o.length
  }
  if (o instanceof Map) {
    for (const [k, item] of o) stack.push(k, item)
    return OBJECT_HEADER + 64 + HASH_ENTRY * o.size
  }
  if (o instanceof Set) {
    for (const item of o) stack.push(item)
    return OBJECT_HEADER + 64 + HASH_ENTRY * o.size
  }
  let bytes = OBJECT_HEADER
  for (const key of Object.keys(o)) {
    bytes += PROPERTY + stringBytes(key)
    stack.push((o as Record<string, unknown>)[key])
  }
  return bytes
}

function align(n: number): number {
  return Math.ceil(n / WORD) * WORD
}
