import { xenonFnv64 } from '../core/fnv-hash.js';

/**
 * Xenon's owner selection (ConsistentHashingNodeSelectorService, spec B.2), reproduced exactly:
 * FNV (FNVHash.compute) of the key and of every node id as signed 64-bit longs; closeness is
 * `|(nodeHash − keyHash)²|` with Java's wrapping arithmetic (`Math.abs(Long.MIN_VALUE)` stays
 * negative); the N smallest distances, compared as signed longs, are the selected nodes and the
 * smallest is the owner.
 */
export function fnvHashSigned(text: string): bigint {
  // The same arithmetic as xenonFnv64 (core/fnv-hash.ts) on two 32-bit halves: owner lookups hash a
  // link per request, and BigInt per character is ~20 times slower. A unit test compares the two.
  // h *= 2^40 + 0x1b3 (the FNV prime): hi:lo·0x1b3 plus lo shifted 40 bits (into hi, by 8).
  let hi = 0x412b79df; // 4695981039346656037 = 0x412B79DF_FA3A2325
  let lo = 0xfa3a2325;
  for (let i = 0; i < text.length; i++) {
    lo = (lo ^ (text.charCodeAt(i) << 9)) >>> 0;
    const low = lo * 0x1b3;
    const carry = Math.floor(low / 0x100000000);
    hi = (Math.imul(hi, 0x1b3) + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = low >>> 0;
  }
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

/** Reference implementation (BigInt, from core/fnv-hash.ts), for the tests. */
export function fnvHashSignedReference(text: string): bigint {
  return BigInt.asIntN(64, xenonFnv64(text));
}

/** Java `Math.abs(d * d)` of `d = nodeHash − keyHash`, all in wrapping 64-bit arithmetic. */
export function closeness(nodeHash: bigint, keyHash: bigint): bigint {
  const d = BigInt.asIntN(64, nodeHash - keyHash);
  const sq = BigInt.asIntN(64, d * d);
  return sq < 0n ? BigInt.asIntN(64, -sq) : sq;
}

export interface HashedNode<T> {
  node: T;
  hash: bigint;
}

/** Pre-hashes node ids once per membership change (keys are hashed per lookup). */
export function hashNodes<T>(nodes: readonly T[], id: (n: T) => string): HashedNode<T>[] {
  return nodes.map((node) => ({ node, hash: fnvHashSigned(id(node)) }));
}

/**
 * The `count` closest nodes to `key`, closest first (the first is the owner). Like Xenon's TreeMap
 * keyed on distance, a node with the same distance as one visited earlier replaces it.
 */
export function selectNodes<T>(key: string, nodes: readonly HashedNode<T>[], count = 1): T[] {
  if (nodes.length === 0) return [];
  if (nodes.length === 1) return [nodes[0]!.node];
  const keyHash = fnvHashSigned(key);
  if (count === 1) {
    let best: HashedNode<T> | undefined;
    let bestDistance = 0n;
    for (const n of nodes) {
      const d = closeness(n.hash, keyHash);
      if (best === undefined || d <= bestDistance) {
        best = n;
        bestDistance = d;
      }
    }
    return [best!.node];
  }
  const byDistance = new Map<bigint, T>();
  for (const n of nodes) byDistance.set(closeness(n.hash, keyHash), n.node);
  return [...byDistance.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, count)
    .map((e) => e[1]);
}
