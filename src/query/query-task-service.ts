import { randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, toServiceErrorResponse } from '../core/errors.js';
import type { Host } from '../core/host.js';
import { requestLong, type Doc } from '../core/document.js';
import { JsonStream, RawJson, type Operation, type ReadScope, type Reply } from '../core/operation.js';
import { childId, type Service } from '../core/service.js';
import {
  elapsedMicros,
  hasOption,
  MAX_PAGE_BYTES,
  moreWithin,
  planQuery,
  readOn,
  resultEnd,
  resultJson,
  runPage,
  STREAM_BATCH,
  streamResultRows,
  type QueryPage,
  type QueryPlan,
} from './query-engine.js';
import type { Snapshot } from '../store/snapshots.js';
import { MAX_UNPAGED, type QueryPages } from './query-pages.js';
import type { QuerySpecification } from './query-types.js';
import { normalizeQuerySpec } from './query-validator.js';
import { distinctSelected, expandSelected } from './selected-links.js';
import { ContinuousQueries, ContinuousResults, type MatchedUpdate } from './continuous-queries.js';
import { genericUtility } from '../services/utility-handlers.js';

export const QUERY_TASK_KIND = 'com:vmware:xenon:services:common:QueryTask';
const RESULTS_TOKEN = `krypton-results-${randomUUID()}`;
/**
 * Results of asynchronous tasks kept in memory, in all (bytes of JSON): beyond it a task's results
 * go to a file like large ones, so many tasks alive until they expire cannot exhaust memory.
 */
export const MAX_RESULTS_IN_MEMORY = 64 * 1024 * 1024;

/** The first batch of an unpaged query, read on `snapshot` (released already when nothing follows). */
interface FirstBatch {
  plan: QueryPlan;
  first: QueryPage;
  snapshot: Snapshot;
  /** More rows follow `first` within the result limit: the answer is streamed or spilled, which releases `snapshot`. */
  more: boolean;
}

interface TaskRecord {
  doc: Doc;
  resultsJson: string | undefined;
  /** Results too large to keep in memory (more than STREAM_BATCH documents), spilled to this file. */
  resultsFile?: string | undefined;
  expiresAtMicros: number;
}

/** Who runs a task: what they may read, and the headers EXPAND_LINKS' GETs carry as theirs. */
interface RunScope {
  readScope: ReadScope | undefined;
  headers: IncomingHttpHeaders;
  /** With auth on: the in-memory form of readScope, for a CONTINUOUS task's later updates. */
  mayRead: ((doc: Doc) => boolean) | undefined;
  /** False once nobody waits for the task any more (deleted, dropped or expired; a direct task's client gone). */
  wanted: () => boolean;
}

/** A query run, before serialization: its (first) page and, when paged, the link to the first page. */
interface Executed {
  page: QueryPage;
  nextPageLink?: string | undefined;
  /** GROUP_BY: group value → the link of its first page. */
  groupPageLinks?: Map<string, string>;
  /** Duration, when more than the page's own query time. */
  micros?: number;
}

/** Options that do not change which documents match: left out when only counting them. */
const NOT_FOR_COUNTING: readonly string[] = ['EXPAND_CONTENT', 'EXPAND_SELECTED_FIELDS', 'EXPAND_BUILTIN_CONTENT_ONLY', 'SELECT_LINKS', 'EXPAND_LINKS', 'TOP_RESULTS', 'SORT', 'COUNT'];

export const SELECT_LINKS_PAGED = `SELECT_LINKS results of more than ${STREAM_BATCH} documents are answered in pages: set querySpec.resultLimit to at most ${STREAM_BATCH}`;

/** Hook for cluster-wide execution (BROADCAST / OWNER_SELECTION); single node: local only. */
export type OwnerFilterFactory = (spec: QuerySpecification) => ((link: string) => boolean) | undefined;

/**
 * `/core/query-tasks` and `/core/local-query-tasks`: Xenon query tasks, direct (200, answered at
 * once) or asynchronous (202, then poll). Paginated results are served by QueryPages.
 */
export class QueryTaskService implements Service {
  private readonly tasks = new Map<string, TaskRecord>();
  /** Bytes of `resultsJson` held by live tasks (see MAX_RESULTS_IN_MEMORY). */
  private resultsInMemory = 0;
  /** Groups of document writes committed since the first expectedResultCount wait (see countUntil). */
  private writes = 0;
  private watchingWrites = false;
  ownerFilter: OwnerFilterFactory = () => undefined;
  private readonly continuous: ContinuousQueries;

  /** Where large asynchronous results are kept until their task expires; emptied at start. */
  private readonly spillDir: string;

  constructor(
    readonly link: string,
    private readonly host: Host,
    private readonly pages: QueryPages,
  ) {
    const sandbox = host.options.sandbox === ':memory:' ? join(tmpdir(), `krypton-${process.pid}`) : host.options.sandbox;
    this.spillDir = join(sandbox, 'query-results', link.slice(1).replace(/\//g, '_'));
    rmSync(this.spillDir, { recursive: true, force: true });
    this.continuous = new ContinuousQueries(host);
  }

  async handle(op: Operation): Promise<Reply> {
    if (op.action === 'GET') return this.list(op);
    if (op.action !== 'POST') fail('VALIDATION', 'Action not supported');
    const body = op.bodyObject() ?? {};
    // A clone (Xenon §8.7): the source task's querySpec runs again under a new task.
    const querySpec = body['querySpec'] === undefined && body['documentSourceLink'] != null ? this.cloneSource(body['documentSourceLink'], op).doc['querySpec'] : body['querySpec'];
    if (querySpec === undefined) fail('INVALID_QUERY', 'querySpec is required');
    const spec = normalizeQuerySpec(querySpec);
    const isDirect = directFlag(body['taskInfo']);
    if (isDirect && isContinuous(spec)) fail('INVALID_QUERY', 'CONTINUOUS option is not allowed on direct tasks');
    const now = this.host.clock.nowMicros();
    const id = body['documentSelfLink'] == null ? this.host.newId() : childId(this.link, body['documentSelfLink']);
    const expiresAt = requestLong(body, 'documentExpirationTimeMicros') || now + this.host.options.queryTaskExpirationMicros;
    const selfLink = `${this.link}/${id}`;
    if (this.tasks.has(selfLink)) fail('ALREADY_EXISTS', `Service already started: ${selfLink} stage: AVAILABLE`);
    if (spec.resultLimit === undefined) spec.resultLimit = MAX_UNPAGED;
    const doc: Doc = {
      taskInfo: { stage: 'CREATED', isDirect },
      querySpec: spec,
      indexLink: '/core/document-index',
      nodeSelectorLink: (body['nodeSelectorLink'] as string | undefined) ?? '/core/node-selectors/default',
      documentVersion: 0,
      ...(this.link === '/core/query-tasks' ? { documentEpoch: 0 } : {}),
      documentKind: QUERY_TASK_KIND,
      documentSelfLink: selfLink,
      documentUpdateTimeMicros: now,
      documentUpdateAction: 'POST',
      documentExpirationTimeMicros: expiresAt,
      documentOwner: this.host.id,
    };
    // With auth on, the task belongs to its creator, as Xenon stamps documentAuthPrincipalLink.
    if (op.principal) doc['documentAuthPrincipalLink'] = op.principal;
    const run: RunScope = { readScope: op.authz?.readScope, headers: op.headers, mayRead: op.authz?.reader(), wanted: () => !op.clientGone };
    if (isDirect) return this.runDirect(doc, spec, expiresAt, run);
    this.makeRoom(now);
    const record: TaskRecord = { doc, resultsJson: undefined, expiresAtMicros: expiresAt };
    this.tasks.set(selfLink, record);
    run.wanted = () => this.tasks.get(selfLink) === record;
    const initial = JSON.stringify(doc);
    setImmediate(() => void this.runAsync(record, spec, run));
    return { status: 202, body: new RawJson(initial) };
  }

  /**
   * A direct task. Unpaged results that fit one batch are answered as one body; larger ones stream
   * (streamResults). Reads wait for acknowledged writes still on their way to the index without
   * blocking the thread (SqliteStore.read).
   */
  private async runDirect(doc: Doc, spec: QuerySpecification, expiresAt: number, run: RunScope): Promise<Reply> {
    const started = performance.now();
    await this.awaitExpectedCount(spec, expiresAt, run);
    const batch = await this.firstBatch(spec, run.readScope);
    if (batch?.more) return { status: 200, body: new JsonStream(this.streamResults(doc, batch, started)) };
    const results = await this.render(batch ? { page: batch.first } : await this.host.store.read(() => this.execute(spec, expiresAt, run.readScope)), spec, run);
    doc['taskInfo'] = { stage: 'FINISHED', isDirect: true, durationMicros: results.micros };
    return { status: 200, body: new RawJson(withResults(doc, results.json)) };
  }

  /**
   * For an unpaged query (TOP_RESULTS too) that may match more than STREAM_BATCH documents or more
   * than MAX_PAGE_BYTES of them: its first batch. When more rows follow it within the limit
   * (`more`), the answer is streamed or spilled from the snapshot the batch was read on (the stream
   * releases it); else `first` is all of it. Undefined for any other query (execute answers it whole).
   * Measured: TOP_RESULTS 5,000 over 700 documents of 1 MB was built as one string and failed (500,
   * "Invalid string length", V8's limit being 512 MB); streamed, it is answered whole.
   */
  private async firstBatch(spec: QuerySpecification, readScope: ReadScope | undefined): Promise<FirstBatch | undefined> {
    if (isPaged(spec) || hasOption(spec, 'COUNT') || hasOption(spec, 'GROUP_BY')) return undefined;
    const limit = spec.resultLimit ?? MAX_UNPAGED;
    // SELECT_LINKS cannot stream (see SELECT_LINKS_PAGED): a small limit of it is answered whole, as before.
    if (limit <= STREAM_BATCH && hasOption(spec, 'SELECT_LINKS')) return undefined;
    const plan: QueryPlan = { ...planQuery(spec), ownerFilter: this.ownerFilter(spec), readScope };
    const snapshot = await this.host.store.snapshot();
    try {
      // Bounded as a page is: when it ends early, the stream goes on after it.
      const first = await readOn(this.host, snapshot, (reader) => runPage(this.host, plan, Math.min(limit, STREAM_BATCH), undefined, spec.offset ?? 0, reader, MAX_PAGE_BYTES));
      const more = moreWithin(first, limit);
      if (more && hasOption(spec, 'SELECT_LINKS')) fail('INVALID_QUERY', SELECT_LINKS_PAGED);
      if (!more) snapshot.release();
      return { plan, first, snapshot, more };
    } catch (err) {
      snapshot.release();
      throw err;
    }
  }

  /**
   * Results answered whole, serialized: EXPAND_LINKS' documents are fetched first (by GETs as the
   * caller, which is why this is async and outside the index read).
   */
  private async render(r: Executed, spec: QuerySpecification, run: RunScope): Promise<{ json: string; micros: number }> {
    const page = r.page;
    if (page.selectedLinks && hasOption(spec, 'EXPAND_LINKS')) page.selectedDocuments = await expandSelected(this.host, distinctSelected(page.selectedLinks), run.headers);
    return { json: resultJson(page, { owner: this.host.id, nextPageLink: r.nextPageLink, groupPageLinks: r.groupPageLinks }), micros: r.micros ?? page.queryTimeMicros };
  }

  /**
   * `expectedResultCount`: waits, re-counting the query's matches every maintenance interval, until
   * at least that many match; 408 if the task would expire first. (Xenon compares the count of its
   * result, which a TOP_RESULTS or paged query can never reach; krypton counts the matches.) Stops
   * (409) as soon as nobody waits any more: an asynchronous task deleted, dropped or expired, a
   * direct task's client gone; until then it counts again every interval.
   */
  private async awaitExpectedCount(spec: QuerySpecification, expiresAt: number, run: RunScope): Promise<void> {
    const expected = spec.expectedResultCount ?? 0;
    if (expected <= 0) return;
    const counting: QuerySpecification = { ...spec, options: [...(spec.options ?? []).filter((o) => !NOT_FOR_COUNTING.includes(o)), 'COUNT'] };
    const plan: QueryPlan = { ...planQuery(counting), ownerFilter: this.ownerFilter(spec), readScope: run.readScope };
    const intervalMicros = Math.max(10_000, this.host.options.maintenanceIntervalMicros);
    // `expectedResultCountWaits` on this service's /stats: tasks waiting now.
    const stats = this.host.statsFor(this.link);
    stats.adjust('expectedResultCountWaits', 1, this.host.clock.nowMicros());
    try {
      await this.countUntil(expected, plan, expiresAt, intervalMicros, run);
    } finally {
      stats.adjust('expectedResultCountWaits', -1, this.host.clock.nowMicros());
    }
  }

  /**
   * Counts again only after some write was committed since the last count (matches cannot grow
   * otherwise: time passing only expires documents), so tasks waiting on an idle host cost nothing.
   * `expectedResultCountChecks` on this service's /stats counts the counts run.
   */
  private async countUntil(expected: number, plan: QueryPlan, expiresAt: number, intervalMicros: number, run: RunScope): Promise<void> {
    this.watchWrites();
    let countedAt = -1;
    let matched = 0;
    for (;;) {
      if (!run.wanted()) fail('CONFLICT', 'the query task is no longer wanted (deleted, expired, or its client went away): it stopped waiting for expectedResultCount');
      if (this.writes !== countedAt) {
        countedAt = this.writes;
        matched = await this.host.store.read(() => runPage(this.host, plan, 1, undefined).count);
        this.host.statsFor(this.link).adjust('expectedResultCountChecks', 1, this.host.clock.nowMicros());
        if (matched >= expected) return;
      }
      if (this.host.isStopping) fail('UNAVAILABLE', 'the host is stopping');
      if (this.host.clock.nowMicros() + intervalMicros >= expiresAt) {
        fail('TIMEOUT', `Query task expired: ${matched} documents match, expectedResultCount is ${expected}`);
      }
      await new Promise((r) => setTimeout(r, intervalMicros / 1000));
    }
  }

  /**
   * An unpaged answer too large for one batch, streamed (streamResultRows): Xenon built it whole in
   * memory. `taskInfo` (with the duration) comes after `results` here: it is known only at the end.
   */
  private async *streamResults(doc: Doc, { plan, first, snapshot }: FirstBatch, started: number): AsyncGenerator<string> {
    const { taskInfo: _created, querySpec, ...rest } = doc;
    yield `{"querySpec":${JSON.stringify(querySpec)},"results":{`;
    yield* streamResultRows(this.host, plan, plan.spec.resultLimit ?? MAX_UNPAGED, { first, snapshot }, (count) => {
      const micros = elapsedMicros(started);
      const taskInfo = { stage: 'FINISHED', isDirect: true, durationMicros: micros };
      return `,${resultEnd(count, micros, { owner: this.host.id })}},"taskInfo":${JSON.stringify(taskInfo)},${JSON.stringify(rest).slice(1)}`;
    });
  }

  /**
   * Runs an asynchronous task. Its results are kept for GETs until it expires: in memory, or, above
   * STREAM_BATCH documents, written to a file batch by batch (streamResultRows) and streamed from it.
   */
  private async runAsync(record: TaskRecord, spec: QuerySpecification, run: RunScope): Promise<void> {
    const doc = record.doc;
    doc['taskInfo'] = { stage: 'STARTED', isDirect: false };
    const started = performance.now();
    let following: ReturnType<QueryTaskService['follow']> | undefined;
    try {
      await this.awaitExpectedCount(spec, record.expiresAtMicros, run);
      // A CONTINUOUS task follows updates from before its initial query runs, so none falls between.
      if (isContinuous(spec)) following = this.follow(record, spec, run);
      const batch = await this.firstBatch(spec, run.readScope);
      let count = 0;
      if (batch?.more) {
        record.resultsFile = await this.spill(batch, started);
        doc['taskInfo'] = { stage: 'FINISHED', isDirect: false, durationMicros: elapsedMicros(started) };
      } else {
        const executed = batch ? { page: batch.first } : await this.host.store.read(() => this.execute(spec, record.expiresAtMicros, run.readScope));
        count = executed.page.count;
        const results = await this.render(executed, spec, run);
        if (this.resultsInMemory + results.json.length > MAX_RESULTS_IN_MEMORY) {
          record.resultsFile = await this.spillText(results.json);
        } else {
          record.resultsJson = results.json;
          this.resultsInMemory += results.json.length;
        }
        doc['taskInfo'] = { stage: 'FINISHED', isDirect: false, durationMicros: results.micros };
      }
      if (following && this.tasks.get(String(doc['documentSelfLink'])) === record) {
        // It stays STARTED until it expires or is deleted.
        doc['taskInfo'] = { ...(doc['taskInfo'] as Doc), stage: 'STARTED' };
        this.patched(doc, 1);
        following.start(count);
        return;
      }
    } catch (err) {
      const failure = toServiceErrorResponse(err);
      // A query that failed is a bad request (Xenon answers 400); one that ran out of time keeps its 408.
      doc['taskInfo'] = { stage: 'FAILED', isDirect: false, failure: { ...failure, statusCode: failure.statusCode === 408 ? 408 : 400 } };
    }
    if (following) this.continuous.remove(String(doc['documentSelfLink']));
    this.patched(doc, 2);
    // Deleted, dropped or expired meanwhile (its link may serve a newer task by now: compared by identity).
    if (this.tasks.get(String(doc['documentSelfLink'])) !== record) this.forget(record);
  }

  /** Stamps the task document as Xenon's PATCH of a task leaves it: its version, action and time. */
  private patched(doc: Doc, version: number): void {
    doc['documentVersion'] = version;
    doc['documentUpdateAction'] = 'PATCH';
    doc['documentUpdateTimeMicros'] = this.host.clock.nowMicros();
  }

  /**
   * Follows a CONTINUOUS task's matching updates (continuous-queries.ts): each replaces its results
   * and is sent to its subscribers as a PATCH. Updates seen before `start` (while the initial query
   * runs) wait, then follow the initial results in order; one committed while it ran may therefore be
   * reported in both, as in Xenon, whose filter is also active before the initial results.
   */
  private follow(record: TaskRecord, spec: QuerySpecification, run: RunScope): { start: (initialCount: number) => void } {
    const link = String(record.doc['documentSelfLink']);
    let waiting: MatchedUpdate[] | undefined = [];
    let results: ContinuousResults | undefined;
    const apply = (u: MatchedUpdate) => {
      const resultsJson = results!.next(u);
      this.forget(record);
      record.resultsJson = resultsJson;
      this.resultsInMemory += resultsJson.length;
      this.patched(record.doc, (record.doc['documentVersion'] as number) + 1);
      this.host.subscriptions.publish(link, 'PATCH', withResults(record.doc, resultsJson));
    };
    this.continuous.add({ link, spec, mayRead: run.mayRead, matched: (u) => (waiting ? waiting.push(u) : apply(u)) });
    return {
      start: (initialCount) => {
        results = new ContinuousResults(spec, this.host.id, initialCount);
        const queued = waiting ?? [];
        waiting = undefined;
        for (const u of queued) apply(u);
      },
    };
  }

  /** Writes results already serialized to a file of their own; returns the file. */
  private async spillText(json: string): Promise<string> {
    mkdirSync(this.spillDir, { recursive: true });
    const file = join(this.spillDir, `${randomUUID()}.json`);
    await writeFile(file, json);
    return file;
  }

  /** Writes a large result's JSON to a file of its own; returns the file. */
  private async spill({ plan, first, snapshot }: FirstBatch, started: number): Promise<string> {
    const file = join(this.spillDir, `${randomUUID()}.json`);
    let out: FileHandle;
    try {
      mkdirSync(this.spillDir, { recursive: true });
      out = await open(file, 'w');
    } catch (err) {
      snapshot.release();
      throw err;
    }
    try {
      await out.write('{');
      const rows = streamResultRows(this.host, plan, plan.spec.resultLimit ?? MAX_UNPAGED, { first, snapshot }, (count) => `,${resultEnd(count, elapsedMicros(started), { owner: this.host.id })}}`);
      for await (const chunk of rows) await out.write(chunk);
    } catch (err) {
      rmSync(file, { force: true });
      throw err;
    } finally {
      await out.close();
    }
    return file;
  }

  /** A task's answer: the document with its results, from memory or streamed from its file. */
  private answer(record: TaskRecord, then?: () => void): Reply {
    const file = record.resultsFile;
    if (file === undefined) {
      const body = new RawJson(withResults(record.doc, record.resultsJson));
      then?.();
      return { status: 200, body };
    }
    const path: string = file;
    const [head, tail] = withResults(record.doc, RESULTS_TOKEN).split(RESULTS_TOKEN) as [string, string];
    async function* chunks(): AsyncGenerator<string> {
      try {
        yield head;
        for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 })) yield chunk as string;
        yield tail;
      } finally {
        then?.();
      }
    }
    return { status: 200, body: new JsonStream(chunks()) };
  }

  /** Drops a task's results (its file, or its share of the memory budget). */
  private forget(record: TaskRecord): void {
    if (record.resultsFile) rmSync(record.resultsFile, { force: true });
    record.resultsFile = undefined;
    if (record.resultsJson !== undefined) this.resultsInMemory -= record.resultsJson.length;
    record.resultsJson = undefined;
  }

  /** Runs a query: unpaged (or TOP_RESULTS) results inline, else a first-page link. */
  private execute(spec: QuerySpecification, expiresAt: number, readScope: ReadScope | undefined): Executed {
    const started = performance.now();
    const plan: QueryPlan = { ...planQuery(spec), ownerFilter: this.ownerFilter(spec), readScope };
    const limit = spec.resultLimit ?? MAX_UNPAGED;
    if (hasOption(spec, 'GROUP_BY')) {
      const groups = this.pages.serveGroups(undefined, this.pages.groupEntry(plan, expiresAt, spec));
      const page: QueryPage = { links: [], documents: undefined, count: 0, after: undefined, queryTimeMicros: groups.queryTimeMicros };
      const groupPageLinks = new Map([...groups.groupPages].map(([value, id]) => [value, this.pageLink(id)]));
      return { page, groupPageLinks, nextPageLink: groups.nextPageId ? this.pageLink(groups.nextPageId) : undefined };
    }
    if (!isPaged(spec)) return { page: runPage(this.host, plan, limit, undefined, spec.offset ?? 0) };
    const probe = runPage(this.host, { ...plan, spec: { ...spec, options: (spec.options ?? []).filter((o) => o !== 'EXPAND_CONTENT') } }, 1, undefined, spec.offset ?? 0);
    const empty = { links: [], documents: hasOption(spec, 'EXPAND_CONTENT') ? new Map<string, string>() : undefined, count: 0, after: undefined, queryTimeMicros: probe.queryTimeMicros };
    // With an owner filter the probe may find none of its rows owned here while later ones are:
    // rows that follow (a cursor) open the pages too, or this member's share would be dropped.
    const next = probe.links.length > 0 || probe.after !== undefined ? this.pageLink(this.pages.open(plan, limit, expiresAt, spec)) : undefined;
    return { page: empty, nextPageLink: next, micros: Math.round((performance.now() - started) * 1000) };
  }

  pageLink(pageId: string): string {
    return `/core/query-page-forwarding?peer=${encodeURIComponent(this.host.id)}&path=${pageId}`;
  }

  /** The live task a clone request names (its link, or its id). */
  private cloneSource(sourceLink: unknown, op: Operation): TaskRecord {
    const link = typeof sourceLink === 'string' ? `${this.link}/${childId(this.link, sourceLink)}` : undefined;
    const record = link === undefined ? undefined : this.tasks.get(link);
    if (!record || record.expiresAtMicros <= this.host.clock.nowMicros()) fail('VALIDATION', `documentSourceLink ${String(sourceLink)} is not a live task of ${this.link}`);
    op.authz?.check('GET', record.doc);
    return record;
  }

  async handleChild(op: Operation, childLink: string, suffix?: string): Promise<Reply> {
    const record = this.tasks.get(childLink);
    if (!record || record.expiresAtMicros <= this.host.clock.nowMicros()) {
      if (record) this.drop(childLink, record);
      fail('NOT_FOUND', `Service not found: ${op.uri}`);
    }
    if (suffix !== undefined) {
      // A task's utilities: its subscribers (a CONTINUOUS task PATCHes them), stats, config, …
      op.authz?.check('GET', record.doc);
      if (suffix === 'subscriptions') return this.host.subscriptions.handle(childLink, op, () => (record.resultsFile ? undefined : withResults(record.doc, record.resultsJson)));
      return genericUtility(this.host, childLink, op, suffix);
    }
    op.authz?.check(op.action === 'DELETE' ? 'DELETE' : 'GET', record.doc);
    if (op.action === 'DELETE') {
      this.tasks.delete(childLink);
      this.stopFollowing(childLink);
      return this.answer(record, () => this.forget(record));
    }
    if (op.action !== 'GET') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    return this.answer(record);
  }

  private async list(op: Operation): Promise<Reply> {
    const links = [...this.tasks.keys()].filter((l) => !op.authz || op.authz.allows('GET', this.tasks.get(l)!.doc));
    const expand = op.rawQuery.includes('expand');
    const body: Doc = {
      documentLinks: links,
      documentCount: links.length,
      queryTimeMicros: 1,
      documentVersion: 0,
      documentUpdateTimeMicros: 0,
      documentExpirationTimeMicros: 0,
      documentOwner: this.host.id,
    };
    if (expand) body['documents'] = Object.fromEntries(links.map((l) => [l, this.tasks.get(l)!.doc]));
    return { status: 200, body };
  }

  private drop(link: string, record: TaskRecord): void {
    this.tasks.delete(link);
    this.stopFollowing(link);
    this.forget(record);
  }

  /** A task gone (deleted, expired): no more updates, and its subscriptions end with it. */
  private stopFollowing(link: string): void {
    this.continuous.remove(link);
    this.host.subscriptions.end(link);
  }

  private watchWrites(): void {
    if (this.watchingWrites) return;
    this.watchingWrites = true;
    // Only a written version can add a match (purges, expiry and the log position cannot).
    this.host.store.commits.onCommitted((ops) => {
      if (ops.some((op) => op.t === 'write')) this.writes++;
    });
  }

  sweep(now: number): void {
    for (const [link, t] of this.tasks) if (t.expiresAtMicros <= now) this.drop(link, t);
  }

  /**
   * Room for one more asynchronous task: at most `queryTaskLimit` are kept, so clients that create
   * tasks and never delete them cannot exhaust memory before the tasks expire. At the limit, expired
   * tasks go first, then the oldest FINISHED or FAILED one (its link answers 404, as an expired
   * task's does). Running and CONTINUOUS tasks (STARTED) are never dropped: when every task is one,
   * the new task is refused with 503 and nothing is created.
   */
  private makeRoom(now: number): void {
    const limit = this.host.options.queryTaskLimit;
    if (this.tasks.size < limit) return;
    // Oldest first; the maintenance sweep drops the other expired tasks within a second anyway.
    for (const [link, t] of this.tasks) {
      if (this.tasks.size < limit) return;
      const stage = (t.doc['taskInfo'] as Doc | undefined)?.['stage'];
      if (t.expiresAtMicros <= now || stage === 'FINISHED' || stage === 'FAILED') this.drop(link, t);
    }
    if (this.tasks.size >= limit) {
      fail(
        'UNAVAILABLE',
        `${this.tasks.size} asynchronous query tasks are live on ${this.link} (--queryTaskLimit=${limit}) and none has finished: DELETE the tasks no longer needed (CONTINUOUS ones run until deleted or expired), or retry later`,
      );
    }
  }
}

function isContinuous(spec: QuerySpecification): boolean {
  return hasOption(spec, 'CONTINUOUS') || hasOption(spec, 'CONTINUOUS_STOP_MATCH');
}

/** Results come in pages (nextPageLink) rather than inline: a resultLimit without TOP_RESULTS or COUNT. */
function isPaged(spec: QuerySpecification): boolean {
  return (spec.resultLimit ?? MAX_UNPAGED) < MAX_UNPAGED && !hasOption(spec, 'TOP_RESULTS') && !hasOption(spec, 'COUNT');
}

/** Splices pre-serialized results into a task document without re-parsing stored JSON. */

export function withResults(doc: Doc, resultsJson: string | undefined): string {
  if (resultsJson === undefined) return JSON.stringify(doc);
  const { querySpec, ...rest } = doc;
  const ordered: Doc = { taskInfo: rest['taskInfo'], querySpec, results: RESULTS_TOKEN, ...rest };
  return JSON.stringify(ordered).replace(`"${RESULTS_TOKEN}"`, () => resultsJson);
}

/** `taskInfo.isDirect` as Gson reads a Boolean (true, or the string "true"); a malformed taskInfo is a 400. */
function directFlag(taskInfo: unknown): boolean {
  if (taskInfo === undefined || taskInfo === null) return false;
  if (typeof taskInfo !== 'object' || Array.isArray(taskInfo)) fail('INVALID_QUERY', 'taskInfo must be an object');
  const v = (taskInfo as Doc)['isDirect'];
  if (v === undefined || v === null || v === false || v === 'false') return false;
  if (v === true || v === 'true') return true;
  return fail('INVALID_QUERY', `taskInfo.isDirect must be a boolean: ${JSON.stringify(v)}`);
}
