/**
 * Seeded random requests for robustness tests: the same seed gives the same requests, so a failure
 * can be replayed. Bodies mix valid shapes with wrong types, odd values and random nesting.
 */

/** mulberry32: a small deterministic PRNG; returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ATOMS: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  1e20, // beyond Number.MAX_SAFE_INTEGER
  '',
  'x',
  '*',
  'a*b',
  '\u0000',
  '\ud800',
  'TERM',
  'WILDCARD',
  'PREFIX',
  'MUST_OCCUR',
  'MUST_NOT_OCCUR',
  'name',
  'counter',
  'tags.item',
  'documentSelfLink',
  'EXPAND_CONTENT',
  'COUNT',
  'SORT',
  'INCLUDE_ALL_VERSIONS',
  'CANCELLED',
  'ALLOW',
  'http://127.0.0.1:1',
  'not a uri',
  '/core/examples',
  'a'.repeat(3000),
];
const KEYS = [
  'query',
  'term',
  'booleanClauses',
  'occurance',
  'propertyName',
  'matchValue',
  'matchType',
  'range',
  'min',
  'max',
  'type',
  'options',
  'sortTerm',
  'sortOrder',
  'resultLimit',
  'taskInfo',
  'isDirect',
  'stage',
  'querySpec',
  'name',
  'counter',
  'tags',
  'keyValues',
  'documentSelfLink',
  'documentExpirationTimeMicros',
  'documentVersion',
  'documentUpdateTimeMicros',
  'documentEpoch',
  'sourceFactoryLink',
  'destinationFactoryLink',
  'sourceNodeGroupReference',
  'destinationNodeGroupReference',
  'migrationOptions',
  'continuousMigration',
  'documents',
  'latestValue',
  'membershipQuorum',
  'kind',
];
const PATHS = [
  '/core/examples',
  '/core/examples/fuzz',
  '/core/examples/fuzz/stats',
  '/core/examples/fuzz/config',
  '/core/examples/x',
  '/core/examples/none',
  '/core/query-tasks',
  '/core/local-query-tasks',
  '/core/query-page/1',
  '/core/document-index',
  '/management/migration-tasks',
  '/management/migration-import',
  '/core/node-groups/default',
  '/core/node-selectors/default',
  '/core/examples/available',
  '/',
];
const QUERIES = [
  '',
  '?expand',
  "?$filter=name%20eq%20'x'",
  '?$filter=name%20eq',
  '?$top=99999999999999999999',
  '?$limit=2&$count=true',
  '?$orderby=counter%20desc',
  '?$skip=-1',
  '?documentSelfLink=/core/examples/fuzz&documentVersion=abc',
];
const METHODS = ['GET', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** Pragmas that change how a write is taken (a migrated document keeps its version and time). */
const PRAGMAS = ['xn-from-migration', 'xn-force-index-update', 'xn-from-migration, xn-force-index-update'];

export interface FuzzRequest {
  method: (typeof METHODS)[number];
  path: string;
  body: string | undefined;
  headers: Record<string, string>;
}

/** `n` requests from `seed`. DELETE /core/management (Xenon's shutdown) is never sent. */
export function fuzzRequests(seed: number, n: number): FuzzRequest[] {
  const r = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const value = (depth: number): unknown => {
    const x = r();
    if (depth > 3 || x < 0.35) return pick(ATOMS);
    if (x < 0.55) return Array.from({ length: Math.floor(r() * 3) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(r() * 5); i >= 0; i--) o[pick(KEYS)] = value(depth + 1);
    return o;
  };
  return Array.from({ length: n }, () => {
    const method = pick(METHODS);
    const path = pick(PATHS) + pick(QUERIES);
    const body = method === 'GET' || method === 'DELETE' ? undefined : r() < 0.1 ? '{"broken": ' : JSON.stringify(value(0));
    const headers: Record<string, string> = r() < 0.25 ? { pragma: pick(PRAGMAS) } : {};
    return { method, path, body, headers };
  });
}
