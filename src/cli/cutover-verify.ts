/**
 * Step 3 of `krypton cutover` (cutover-command.ts): the source's and the destination's documents
 * compared through `/management/factory-digest` on every member of both groups, and, when they
 * differ, the documents that tell them apart.
 */
import type { HttpClient } from '../core/http-client.js';

/** A member of a node group, by its base URI. */
export interface Member {
  id: string;
  base: string;
  status: string;
}

export interface Digest {
  documentCount: number;
  digest: string;
  newestUpdateTimeMicros: number;
}

/** Digests of the factory on every member of both groups: each group agrees within, and with the other. */
export async function verifyEqual(
  client: HttpClient,
  blue: Member[],
  green: Member[],
  sourceFactory: string,
  destinationFactory: string,
  mode: string,
  headers: Record<string, string>,
): Promise<Digest> {
  const asOf = Date.now() * 1000;
  const content = mode === 'content';
  // A destination member may still be applying the last replicated writes: a few tries before a verdict.
  let last = '';
  let odd: { side: Side; d: DigestListing } | undefined;
  let first: DigestListing | undefined;
  const sides: Side[] = [...blue.map((m) => ({ m, factory: sourceFactory, name: 'source' })), ...green.map((m) => ({ m, factory: destinationFactory, name: 'destination' }))];
  const tries = sides.length > 2 ? 5 : 1;
  for (let attempt = 0; attempt < tries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
    const all = await Promise.all(sides.map(async (side) => ({ side, d: await digestOf(client, side, asOf, headers, { from: 0, to: Number.MAX_SAFE_INTEGER, list: false, content }) })));
    const same = (x: Digest, y: Digest) => x.documentCount === y.documentCount && (mode === 'count' || x.digest === y.digest);
    const ref = all[0]!.d;
    first = ref;
    odd = all.find(({ d }) => !same(d, ref));
    if (!odd) return ref;
    last = all.map(({ side, d }) => `${side.name} ${side.m.base}: ${d.documentCount} documents, newest update ${d.newestUpdateTimeMicros}, digest ${d.digest.slice(0, 16)}…`).join('; ');
  }
  // Which documents differ, between the first source member and the first member that disagrees.
  const diff = await differences(client, sides[0]!, odd!.side, asOf, headers, [first!, odd!.d], content);
  throw new Error(`${last}${diff.length > 0 ? `\ndifferences${diff.length >= DIFF_LIMIT ? ` (the first ${DIFF_LIMIT})` : ''}:\n  ${diff.join('\n  ')}` : ''}`);
}

interface Side {
  m: Member;
  factory: string;
  name: string;
}

interface DigestListing extends Digest {
  oldestUpdateTimeMicros: number;
  /** [id, update time], and with content the first 16 hex digits of its content's SHA-256. */
  documents?: Array<[string, number, string?]>;
  splitUpdateTimesMicros?: number[];
}

/** Differences the CLI names at most. */
const DIFF_LIMIT = 20;
/** A time range holding at most this many documents on both sides together is listed, not split. */
const LIST_BELOW = 200;
/** Parts a differing range is cut into. */
const SPLIT = 16;

function digestOf(client: HttpClient, side: Side, asOf: number, headers: Record<string, string>, range: { from: number; to: number; list: boolean; content: boolean }): Promise<DigestListing> {
  const q = `&fromUpdateTimeMicros=${range.from}&toUpdateTimeMicros=${range.to}${range.list ? '&list=true' : `&split=${SPLIT}`}${range.content ? '&content=true' : ''}`;
  return client
    .send<DigestListing>(`${side.m.base}/management/factory-digest?factoryLink=${encodeURIComponent(side.factory)}&asOfMicros=${asOf}${q}`, { method: 'GET', headers, timeoutMs: 600_000 })
    .then((r) => r.body);
}

/**
 * The documents that tell two sides apart: update-time ranges whose digests differ are cut into
 * parts of about as many documents each until they hold few documents, which are then listed and compared (a bisection, as anti-entropy repairs
 * compare Merkle trees). Returns lines naming each document: only on one side, or at another update time.
 */
async function differences(client: HttpClient, a: Side, b: Side, asOf: number, headers: Record<string, string>, whole: [DigestListing, DigestListing], content: boolean): Promise<string[]> {
  /** By id: the update time and (content) the content hash of each document only one side holds so. */
  const onlyA = new Map<string, [number, string | undefined]>();
  const onlyB = new Map<string, [number, string | undefined]>();
  const found = () => onlyA.size + onlyB.size;
  const digestsOf = (from: number, to: number, list: boolean) =>
    Promise.all([digestOf(client, a, asOf, headers, { from, to, list, content }), digestOf(client, b, asOf, headers, { from, to, list, content })]);
  const walk = async (from: number, to: number, known?: [DigestListing, DigestListing]): Promise<void> => {
    if (found() >= DIFF_LIMIT) return;
    const [x, y] = known ?? (await digestsOf(from, to, false));
    if (x.documentCount === y.documentCount && x.digest === y.digest) return;
    const lo = Math.min(x.documentCount > 0 ? x.oldestUpdateTimeMicros : to, y.documentCount > 0 ? y.oldestUpdateTimeMicros : to);
    const hi = Math.max(x.newestUpdateTimeMicros, y.newestUpdateTimeMicros) + 1;
    if (x.documentCount + y.documentCount > LIST_BELOW && hi - lo > 1) {
      // Parts of about as many documents each (update times cluster: halving time would read most
      // documents again at every level), else halves of the time range.
      const cuts = [...new Set([...(x.splitUpdateTimesMicros ?? []), ...(y.splitUpdateTimesMicros ?? [])])].filter((t) => t > lo && t < hi).sort((p, q) => p - q);
      if (cuts.length === 0) cuts.push(lo + Math.floor((hi - lo) / 2));
      const bounds = [lo, ...cuts, hi];
      for (let k = 0; k + 1 < bounds.length; k++) await walk(bounds[k]!, bounds[k + 1]!);
      return;
    }
    const [lx, ly] = await digestsOf(lo, hi, true);
    const key = ([id, t, h]: [string, number, string?]) => `${id}\t${t}\t${h ?? ''}`;
    const inY = new Set((ly.documents ?? []).map(key));
    const inX = new Set((lx.documents ?? []).map(key));
    for (const d of lx.documents ?? []) if (!inY.has(key(d))) onlyA.set(d[0], [d[1], d[2]]);
    for (const d of ly.documents ?? []) if (!inX.has(key(d))) onlyB.set(d[0], [d[1], d[2]]);
  };
  await walk(0, Number.MAX_SAFE_INTEGER, whole);
  const when = (t: number) => `${t} (${new Date(t / 1000).toISOString()})`;
  const lines: string[] = [];
  for (const [id, [t]] of onlyA) {
    const other = onlyB.get(id)?.[0];
    if (other === t) lines.push(`${id}: content differs (updated ${when(t)} on both sides)`);
    else if (other !== undefined) lines.push(`${id}: updated ${when(t)} on the ${a.name} ${a.m.base}, ${when(other)} on the ${b.name} ${b.m.base}`);
    else lines.push(`${id}: only on the ${a.name} ${a.m.base} (updated ${when(t)})`);
  }
  for (const [id, [t]] of onlyB) if (!onlyA.has(id)) lines.push(`${id}: only on the ${b.name} ${b.m.base} (updated ${when(t)})`);
  return lines.slice(0, DIFF_LIMIT);
}
