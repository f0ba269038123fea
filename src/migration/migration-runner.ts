import { fail, kryptonError } from '../core/errors.js';
import { longField, type Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import type { Query, QuerySpecification } from '../query/query-types.js';
import type { ImportOutcome } from '../services/document-writer.js';
import { mapLimit } from '../core/map-limit.js';
import { call } from './migration-http.js';
import { nodeBase, pageSize, type Checkpoint, type MigrationTaskState } from './migration-state.js';
import { transformDocuments } from './migration-transform.js';
import { ResultPage } from './result-page.js';

/**
 * Documents written as one unit: a page is parsed and written a slice at a time, so the
 * destination's index writer and its request thread work side by side. Measured on 100,000
 * documents: 10,000 per slice kept green 28% idle and spent a quarter of its CPU in the garbage
 * collector copying the page's objects; 1,000 per slice (these objects now die young) did the same
 * work faster.
 */
const SLICE = 1_000;
/**
 * Slices written and not yet acknowledged, at most, while the next is parsed. With one (the next
 * slice waited for the one before it) the writer thread and the request thread kept waiting for
 * each other on a 2-core machine: 72-78% of both cores busy over 1,000,000 documents. Measured on
 * 100,000 documents in interleaved runs (medians of 4): 31.5k docs/s with one, 32.6k with three,
 * 33.2k with five, 32.6k with seven (garbage collection grows with what is held); 26.5k / 28.8k
 * with one / three in a slower hour. Three hold some 6 MB more.
 */
const UNACKNOWLEDGED_SLICES = 3;

/** Everything one run needs; `save` persists progress and checkpoints (after acknowledged pages). */
export interface RunContext {
  host: Host;
  state: MigrationTaskState;
  signal: AbortSignal;
  /** Headers sent with every remote call (the task owner's identity when auth is on). */
  headers: () => Record<string, string>;
  save: () => void;
  /** Writes documents into a destination factory on this host, when it is one of the destinations. */
  importLocally?: (factoryLink: string, docs: Doc[], history: boolean, overwrite: boolean) => Promise<ImportOutcome[]>;
}

/**
 * One migration run (xenon-migration.md §2, with the seeds' promises kept): resolve both groups,
 * check the factories, then for every source node stream the documents it owns in
 * (updateTime, link) order, page by page, into the destination. A page's checkpoint advances
 * only after the destination acknowledged all its documents.
 */
export async function runMigration(ctx: RunContext): Promise<void> {
  const { state } = ctx;
  const started = performance.now();
  checkExpiry(ctx);
  const processedBefore = state.progress.processedServiceCount;
  // Both groups are resolved, and both factories checked, side by side: a run starts sooner. A
  // failure of either fails the run with its own message, the source's first when both fail.
  const [sources, destinations] = await both(
    resolveNodes(ctx, state.sourceReferences, state.sourceNodeGroupReference, 'source'),
    resolveNodes(ctx, state.destinationReferences, state.destinationNodeGroupReference, 'destination'),
  );
  await both(checkFactory(ctx, sources, state.sourceFactoryLink, 'source'), checkFactory(ctx, destinations.slice(0, 1), state.destinationFactoryLink, 'destination'));
  const from = startTime(state);
  if (state.migrationOptions.includes('ESTIMATE_COUNT')) await estimate(ctx, sources[0]!, from);
  let maxSeen = state.latestSourceUpdateTimeMicros;
  const passed = passedOver(state, sources, from);
  await Promise.all(
    sources.map(async (node) => {
      const seen = await migrateNode(ctx, node, destinations, from, passed);
      maxSeen = Math.max(maxSeen, seen);
    }),
  );
  state.latestSourceUpdateTimeMicros = maxSeen;
  dropDepartedCheckpoints(state, sources);
  const seconds = (performance.now() - started) / 1000;
  state.progress.lastRunDurationMicros = Math.round(seconds * 1e6);
  state.progress.documentsPerSecond = Math.round((state.progress.processedServiceCount - processedBefore) / Math.max(seconds, 1e-3));
}

/** Both results; when both fail, the first one's error (Promise.all would reject with whichever failed first in time). */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

/** The node base URIs of a group (explicit references, or the AVAILABLE members of a node group). */
async function resolveNodes(ctx: RunContext, refs: string[], groupRef: string | undefined, side: string): Promise<string[]> {
  if (refs.length > 0) return refs.map(nodeBase);
  const url = groupRef!;
  const checks = Math.max(0, ctx.state.maximumConvergenceChecks);
  for (let attempt = 0; ; attempt++) {
    const group = await call<Doc>(ctx.host.client, url, { method: 'GET', headers: ctx.headers(), ...timeout(ctx) }, `GET ${side} node group ${url}`, ctx.signal);
    const nodes = Object.values((group['nodes'] ?? {}) as Record<string, Doc>).filter(
      (n) => !['UNAVAILABLE', 'REPLACED'].includes(n['status'] as string) && !((n['options'] as string[] | undefined) ?? []).includes('OBSERVER'),
    );
    const bases = nodes.map((n) => nodeBase(n['groupReference'] as string));
    if (bases.length === 0) fail('UNAVAILABLE', `the ${side} node group ${url} has no available node`);
    // With quorum = group size (the seeds' advice during a migration) a missing member fails the run.
    const quorum = Math.max(1, ...nodes.map((n) => Number(n['membershipQuorum'] ?? 1)));
    if (bases.length < quorum)
      fail(
        'UNAVAILABLE',
        `the ${side} node group ${url} has ${bases.length} available members, fewer than its membershipQuorum ${quorum}: start the missing members (or lower the quorum), then run the task again`,
      );
    if (await converged(ctx, nodes, group)) return bases;
    if (attempt >= checks) fail('UNAVAILABLE', `Nodegroups did not converge after ${checks} retries.`);
    await sleep(Math.min(ctx.state.maintenanceIntervalMicros / 1000, 5000), ctx.signal);
  }
}

/** Xenon's convergence check: every available member reports the same membershipUpdateTimeMicros. */
async function converged(ctx: RunContext, nodes: Doc[], group: Doc): Promise<boolean> {
  if (nodes.length <= 1) return true;
  const expected = group['membershipUpdateTimeMicros'];
  const answers = await Promise.all(
    nodes.map((n) =>
      ctx.host.client.send<Doc>(n['groupReference'] as string, { method: 'GET', headers: ctx.headers(), timeoutMs: 10_000 }).then(
        (r) => r.body['membershipUpdateTimeMicros'],
        () => undefined,
      ),
    ),
  );
  return answers.every((t) => t !== undefined && t === expected);
}

async function checkFactory(ctx: RunContext, nodes: string[], factoryLink: string, side: string): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      try {
        await call(ctx.host.client, `${n}${factoryLink}/config`, { method: 'GET', headers: ctx.headers(), ...timeout(ctx) }, `GET ${side} factory ${n}${factoryLink}`, ctx.signal);
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404) fail('VALIDATION', `the ${side} factory ${factoryLink} does not exist on ${n}: start the service that provides it, then re-run the task`);
        throw err;
      }
    }),
  );
}

/** ESTIMATE_COUNT: the documents this run selects (the task's query, factory and time bound), counted on one source node. */
async function estimate(ctx: RunContext, node: string, from: number): Promise<void> {
  const retrieval = retrievalSpec(ctx.state, from);
  const spec: QuerySpecification = { query: retrieval.query!, options: ['COUNT', ...(retrieval.options ?? []).filter((o) => o === 'INCLUDE_DELETED')] };
  const task = await postQuery(ctx, node, spec);
  const results = (task['results'] ?? {}) as Doc;
  // Done so far plus what this run selects: a resumed or continuous run's total stays comparable
  // with the cumulative processed + skipped counts (a progress bar's position).
  const p = ctx.state.progress;
  p.estimatedTotalServiceCount = p.processedServiceCount + p.skippedServiceCount + (longField(results, 'documentCount') ?? 0);
  ctx.state.progress.countQueryTimeDurationMicros = longField(results, 'queryTimeMicros') ?? 0;
  ctx.save();
}

/**
 * Where this run starts: the lowest checkpoint recorded, of any source node, a node that has left
 * the group included (its documents now belong to another node, which may be further on), so
 * nothing is skipped after a restart or an owner change. Without one, the task's lower bound.
 */
export function startTime(state: Pick<MigrationTaskState, 'checkpoints' | 'latestSourceUpdateTimeMicros'>): number {
  const known = Object.values(state.checkpoints).map((c) => c.updateTimeMicros);
  return known.length > 0 ? Math.min(...known) : state.latestSourceUpdateTimeMicros;
}

/**
 * The checkpoint a run starts exactly at, when its documents need not be read again: with one
 * source node, recorded as the only checkpoint, the documents sorted up to it (its update time, a
 * link not after its link) were acknowledged by an earlier run, and none can have moved onto that
 * node from another since. They are passed over instead of being counted as skipped on every
 * continuous run. With several nodes, a document that moved between them may sit behind a
 * checkpoint without having been migrated, so every document from startTime is read again (the skip
 * rule makes that harmless).
 */
export function passedOver(state: Pick<MigrationTaskState, 'checkpoints'>, sources: readonly string[], from: number): Checkpoint | undefined {
  const nodes = Object.keys(state.checkpoints);
  if (sources.length !== 1 || nodes.length !== 1 || nodes[0] !== sources[0]) return undefined;
  const c = state.checkpoints[nodes[0]!]!;
  return c.updateTimeMicros === from && c.link !== '' ? c : undefined;
}

/** Whether a source document sorts at or before a checkpoint with the same update time (links compare as the index does: UTF-8 bytes). */
function atOrBefore(doc: Doc, c: Checkpoint): boolean {
  return longField(doc, 'documentUpdateTimeMicros') === c.updateTimeMicros && Buffer.compare(Buffer.from(String(doc['documentSelfLink'])), Buffer.from(c.link)) <= 0;
}

/** After a complete run from startTime, checkpoints of nodes no longer in the source group are covered: dropped. */
export function dropDepartedCheckpoints(state: Pick<MigrationTaskState, 'checkpoints'>, sources: readonly string[]): void {
  for (const node of Object.keys(state.checkpoints)) if (!sources.includes(node)) delete state.checkpoints[node];
}

function prefixClause(factoryLink: string): Query {
  const prefix = factoryLink.endsWith('/') ? factoryLink : `${factoryLink}/`;
  return { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: prefix, matchType: 'PREFIX' } };
}

/** The retrieval query: the user's query (a single term is honoured), the factory prefix and the time bound. */
export function retrievalSpec(state: MigrationTaskState, fromMicros: number): QuerySpecification {
  const user = state.querySpec ?? {};
  const clauses: Query[] = [prefixClause(state.sourceFactoryLink)];
  const q = user.query;
  if (q && (q.term || (q.booleanClauses && q.booleanClauses.length > 0))) {
    const isPrefixOnly = q.booleanClauses?.length === 1 && JSON.stringify(q.booleanClauses[0]).includes('"matchType":"PREFIX"') && JSON.stringify(q).includes(state.sourceFactoryLink);
    if (!isPrefixOnly) clauses.push(q.term ? { ...q, occurance: 'MUST_OCCUR' } : { occurance: 'MUST_OCCUR', booleanClauses: q.booleanClauses! });
  }
  if (fromMicros > 0) {
    clauses.push({
      occurance: 'MUST_OCCUR',
      term: { propertyName: 'documentUpdateTimeMicros', range: { type: 'LONG', min: fromMicros, isMinInclusive: true, isMaxInclusive: false, precisionStep: 16 } },
    });
  }
  const keep = (user.options ?? []).filter((o) => ['INCLUDE_DELETED'].includes(o));
  return {
    query: { occurance: 'MUST_OCCUR', booleanClauses: clauses },
    options: ['EXPAND_CONTENT', 'OWNER_SELECTION', 'SORT', ...keep],
    resultLimit: pageSize(user),
    sortTerm: { propertyName: 'documentUpdateTimeMicros', propertyType: 'LONG' },
    sortOrder: 'ASC',
    additionalSortTerms: [{ propertyName: 'documentSelfLink', propertyType: 'STRING', sortOrder: 'ASC' }],
  };
}

async function postQuery(ctx: RunContext, node: string, spec: QuerySpecification): Promise<Doc> {
  const body: Doc = { taskInfo: { isDirect: true }, querySpec: spec };
  const exp = longField(ctx.state, 'documentExpirationTimeMicros');
  if (exp) body['documentExpirationTimeMicros'] = exp;
  return call<Doc>(ctx.host.client, `${node}/core/local-query-tasks`, { method: 'POST', headers: ctx.headers(), body, ...timeout(ctx) }, `query on source ${node}`, ctx.signal);
}

async function fetchPage(ctx: RunContext, node: string, link: string): Promise<ResultPage> {
  const started = performance.now();
  const text = await call<string>(ctx.host.client, `${node}${link}`, { method: 'GET', headers: ctx.headers(), timeoutMs: 300_000, rawBody: true }, `GET source page ${node}${link}`, ctx.signal);
  const page = ResultPage.parse(text);
  // Xenon's retrieval stats: the page GET's wall time, and the source's query time per node.
  const progress = ctx.state.progress;
  progress.retrievalOperationsDurationMicros = Math.round((performance.now() - started) * 1000);
  progress.retrievalQueryTimeDurationMicros ??= {};
  progress.retrievalQueryTimeDurationMicros[new URL(node).host] = page.queryTimeMicros ?? 0;
  return page;
}

/**
 * Streams one source node's documents. The next page is fetched while this one is written, a
 * slice at a time (see SLICE). Checkpoints advance in order, each only after its slice (and every
 * slice before it) is acknowledged.
 */
async function migrateNode(ctx: RunContext, node: string, destinations: string[], from: number, passed: Checkpoint | undefined): Promise<number> {
  const first = await postQuery(ctx, node, retrievalSpec(ctx.state, from));
  let nextLink = ((first['results'] ?? {}) as Doc)['nextPageLink'] as string | undefined;
  let pending = nextLink ? fetchPage(ctx, node, nextLink) : undefined;
  let maxSeen = 0;
  /** Each slice's acknowledgement (with its checkpoint), oldest first; the last is the newest slice's. */
  const acknowledged: Array<Promise<void>> = [];
  /** Slice writes in flight. */
  const writing = new Set<Promise<void>>();
  try {
    await pageLoop();
  } catch (err) {
    // Slices already being written finish first, so they are counted and checkpointed (a cancel
    // or a failure does not leave written documents out of the task's progress).
    await Promise.allSettled([...writing]);
    await acknowledged.at(-1)?.catch(() => undefined);
    throw err;
  }
  await acknowledged.at(-1);
  if (!ctx.state.checkpoints[node]) ctx.state.checkpoints[node] = { updateTimeMicros: from, link: '' };
  return maxSeen;

  async function pageLoop(): Promise<void> {
    while (pending) {
      checkExpiry(ctx);
      const page = await pending;
      nextLink = page.nextPageLink;
      pending = nextLink ? fetchPage(ctx, node, nextLink) : undefined;
      pending?.catch(() => undefined);
      for (let at = 0; at < page.links.length; at += SLICE) {
        let docs = page.documentsBetween(at, at + SLICE);
        if (passed && docs.length > 0 && atOrBefore(docs[0]!, passed)) {
          const fetched = docs.length;
          docs = docs.filter((d) => !atOrBefore(d, passed));
          ctx.state.progress.fetchedDocumentCount += fetched - docs.length;
        }
        if (docs.length > 0) await writeSlice(docs);
      }
    }
  }

  /** Starts writing a slice and returns once at most UNACKNOWLEDGED_SLICES are unacknowledged; its checkpoint follows every earlier one. */
  async function writeSlice(docs: Doc[]): Promise<void> {
    ctx.state.progress.fetchedDocumentCount += docs.length;
    for (const d of docs) maxSeen = Math.max(maxSeen, longField(d, 'documentUpdateTimeMicros') ?? 0);
    const last = docs[docs.length - 1]!;
    const checkpoint = { updateTimeMicros: longField(last, 'documentUpdateTimeMicros') ?? 0, link: last['documentSelfLink'] as string };
    const prior = acknowledged.at(-1);
    const write = writePage(ctx, node, docs, destinations);
    writing.add(write);
    write.then(
      () => writing.delete(write),
      () => writing.delete(write),
    );
    const done = Promise.all([write, prior]).then(() => {
      ctx.state.checkpoints[node] = checkpoint;
      ctx.save();
    });
    done.catch(() => undefined); // awaited below (or its failure surfaces through the next slice's)
    acknowledged.push(done);
    if (acknowledged.length > UNACKNOWLEDGED_SLICES) await acknowledged.shift();
  }
}

/** Scrubs self links to ids (Xenon §2.7, without the regex bug), transforms, writes, counts. */
async function writePage(ctx: RunContext, node: string, docs: Doc[], destinations: string[]): Promise<void> {
  const { state } = ctx;
  const history = state.migrationOptions.includes('ALL_VERSIONS');
  const versions = history ? (await withHistory(ctx, node, docs)).flat() : docs;
  for (const v of versions) scrub(v, state.sourceFactoryLink);
  let byFactory: Map<string, Doc[][]>;
  if (state.transformationServiceLink) {
    const t = await transformDocuments(ctx, versions, destinations);
    state.progress.skippedServiceCount += t.empty;
    byFactory = t.groups;
  } else byFactory = new Map([[state.destinationFactoryLink, groupByLink(versions)]]);
  const overwrite = state.migrationOptions.includes('DELETE_AFTER');
  for (const [factory, groups] of byFactory) {
    const outcomes = await importInto(ctx, destinations, factory, history ? groups.map((g) => ({ versions: g })) : groups.map((g) => g[0]!), history, overwrite);
    for (const o of outcomes) {
      if (o.result === 'migrated') state.progress.processedServiceCount += o.versions ?? 1;
      else if (o.result === 'skipped') state.progress.skippedServiceCount++;
      else if (o.result === 'deleted') state.progress.deletedDocumentCount++;
    }
    const failed = outcomes.find((o) => o.result === 'failed');
    if (failed) fail('VALIDATION', `destination ${factory} rejected ${failed.link}: ${failed.error}`);
  }
}

function groupByLink(versions: Doc[]): Doc[][] {
  const groups = new Map<string, Doc[]>();
  for (const v of versions) {
    const key = String(v['documentSelfLink']);
    const g = groups.get(key);
    if (g) g.push(v);
    else groups.set(key, [v]);
  }
  return [...groups.values()];
}

/** Rewrites the self link to the id in place: the documents were parsed for this slice alone. */
function scrub(doc: Doc, sourceFactoryLink: string): void {
  const link = doc['documentSelfLink'];
  if (typeof link === 'string' && link.startsWith(sourceFactoryLink)) doc['documentSelfLink'] = link.slice(sourceFactoryLink.length);
}

/** ALL_VERSIONS: each document's retained history on the source node, oldest first. */
async function withHistory(ctx: RunContext, node: string, docs: Doc[]): Promise<Doc[][]> {
  return mapLimit(docs, 16, async (d) => {
    const spec: QuerySpecification = {
      query: { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: d['documentSelfLink'] as string, matchType: 'TERM' } },
      options: ['INCLUDE_ALL_VERSIONS', 'EXPAND_CONTENT', 'SORT'],
      sortTerm: { propertyName: 'documentVersion', propertyType: 'LONG' },
      sortOrder: 'ASC',
    };
    const task = await postQuery(ctx, node, spec);
    const r = (task['results'] ?? {}) as Doc;
    const links = (r['documentLinks'] as string[]) ?? [];
    const versions = links.map((l) => (r['documents'] as Record<string, Doc>)[l]!).filter(Boolean);
    for (const v of versions) {
      const action = v['documentUpdateAction'];
      if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(action as string)) {
        fail('VALIDATION', `action=${String(action)} is not supported for ALL_VERSIONS migration. selfLink=${String(v['documentSelfLink'])}, version=${String(v['documentVersion'])}`);
      }
    }
    return versions.length > 0 ? versions : [d];
  });
}

/** Writes a batch into the destination: in-process when this host is a destination, else over HTTP. */
async function importInto(ctx: RunContext, destinations: string[], factory: string, documents: Doc[], history: boolean, overwrite: boolean): Promise<ImportOutcome[]> {
  if (ctx.importLocally && destinations.includes(ctx.host.uri)) return ctx.importLocally(factory, documents, history, overwrite);
  const dest = destinations[Math.floor(Math.random() * destinations.length)]!;
  const res = await call<{ outcomes: ImportOutcome[] }>(
    ctx.host.client,
    `${dest}/management/migration-import`,
    { method: 'POST', headers: ctx.headers(), body: { destinationFactoryLink: factory, documents, history, overwrite }, ...timeout(ctx) },
    `write to destination ${dest}${factory}`,
    ctx.signal,
  );
  if (!Array.isArray(res?.outcomes)) throw kryptonError('REMOTE', `destination ${dest} answered the import without outcomes`);
  return res.outcomes;
}

/** A task past its documentExpirationTimeMicros fails (its query pages expire with it anyway). */
function checkExpiry(ctx: RunContext): void {
  const expiry = longField(ctx.state, 'documentExpirationTimeMicros') ?? 0;
  if (expiry > 0 && expiry <= ctx.host.clock.nowMicros()) {
    fail('TIMEOUT', 'the migration task expired (documentExpirationTimeMicros passed) before it finished; raise documentExpirationTimeMicros and re-run: documents already migrated are skipped');
  }
}

export function timeout(ctx: RunContext): { timeoutMs?: number } {
  const t = ctx.state.operationTimeoutMicros;
  return t && t > 0 ? { timeoutMs: Math.ceil(t / 1000) } : { timeoutMs: 120_000 };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
