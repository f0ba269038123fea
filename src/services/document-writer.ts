import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { RawJson } from '../core/operation.js';
import { fail, kryptonError, KryptonError } from '../core/errors.js';
import { composeDocument, hasOnlyUserFields, longField, requestLong, userFields, type Doc } from '../core/document.js';
import { checkNotReserved, childId } from '../core/service.js';
import type { Host } from '../core/host.js';
import type { WriteFreeze } from '../core/write-freeze.js';
import { LinkLocks } from '../core/link-locks.js';
import type { Operation } from '../core/operation.js';
import type { StatefulServiceDefinition } from '../core/service-definition.js';
import type { StoredVersion } from '../store/sqlite-store.js';
import type { WireVersion, WriteOp } from '../store/write-ops.js';
import type { Durability } from '../store/commit-queue.js';

const DEFAULT_RETENTION = { limit: 1000, floor: 500 };
/** Committed documents whose texts a writer keeps for their replies (see recentDocs). */
const RECENT_TEXTS = 8;
const IMPORT_CHUNK = 1000;
/**
 * Document text of an import's chunk, at most (about: the chunk ends with the document that
 * reaches it). A chunk is one transaction, applied whole by the writer thread, whose memory is
 * bounded (see store/commit-queue.ts, MAX_BATCH_BYTES): 1,000 documents of 2 MB were one chunk and
 * ran it out of memory. 1,000 example documents are about 0.4 MB.
 */
const IMPORT_CHUNK_BYTES = 16 * 1024 * 1024;
/** Documents prepared between two event-loop turns of an import. */
const IMPORT_YIELD_EVERY = 250;

/** Built-in integer fields a request body may carry: anything but an integer there is a 400, not a silent 0. */
const BUILTIN_LONGS = ['documentVersion', 'documentEpoch', 'documentUpdateTimeMicros', 'documentExpirationTimeMicros'] as const;

function checkBuiltinNumbers(body: Doc): void {
  for (const name of BUILTIN_LONGS) requestLong(body, name);
}

export interface WriteInput {
  body: Doc;
  fromMigration: boolean;
  forceIndexUpdate: boolean;
  principal: string | undefined;
  op: Operation | undefined;
}

/** Outcome of importing one migrated document (see importDocuments). */
export interface ImportOutcome {
  link: string;
  result: 'migrated' | 'skipped' | 'deleted' | 'failed';
  error?: string;
  /** ALL_VERSIONS: the versions written for this link (Xenon counts versions, not documents). */
  versions?: number;
}

export interface ImportMode {
  /** Each document is `{ versions: Doc[] }`, a history to replay (ALL_VERSIONS). */
  history?: boolean;
  /** DELETE_AFTER: replace the destination copy even when it is as new or newer. */
  overwrite?: boolean;
}

/** A version ready to be committed. */
export interface Pending {
  doc: Doc;
  /** `doc`'s JSON text, when it was needed before the commit (an import's chunk size). */
  json?: string;
  purgeFirst: boolean;
  /** The link has no stored version (skips the "previous latest" update). */
  isNew?: boolean;
}

/**
 * Node groups (src/cluster) hook in here: before versions are committed locally they are replicated
 * to the group; the promise resolves once the quorum acknowledged them. Throwing fails the write
 * and nothing is committed; an error with `details: ['SHOULD_RETRY']` makes the writer run the
 * whole write again, at most twice (the hook first brought this node's copy up to date).
 */
export interface ReplicationHook {
  /** Undefined: nothing to wait for (no other member to write to). */
  replicate(writer: DocumentWriter, pending: readonly Pending[]): Promise<void> | undefined;
}

/**
 * The write path of one stateful factory: creation (factory POST), updates of children
 * (PUT/PATCH/DELETE) and batched imports from the migration task. Updates of one link are
 * serialized; every version is committed in a transaction before the client is answered.
 */
export class DocumentWriter {
  private readonly retention;
  private readonly check: TypeCheck<TSchema> | undefined;
  /**
   * The last documents this writer committed for requests, with their stored JSON texts (a ring).
   * A request's reply (replyBody) is built in the same turn as its commit, so it finds its own
   * document here and is not serialized twice; one that is not found is serialized again. A
   * WeakMap of every committed text cost more per write (an ephemeron each) than it saved.
   */
  private readonly recentDocs: Array<Doc | undefined> = new Array(RECENT_TEXTS).fill(undefined);
  private readonly recentTexts: string[] = new Array(RECENT_TEXTS).fill('');
  private recentNext = 0;
  /** Set on every host by src/cluster (a host alone is a group of one). */
  replication: ReplicationHook | undefined;
  /**
   * Imports prepare their batches one at a time (one key, the factory link). Two prepared side by
   * side reach the index writer together, and it idles while both are prepared; one at a time, a
   * batch is committed while the next is prepared. Measured: a migration's slices paired up and
   * the writer idled a third of the time.
   */
  private readonly importTurns = new LinkLocks();

  constructor(
    private readonly host: Host,
    readonly def: StatefulServiceDefinition,
  ) {
    this.retention = {
      limit: def.versionRetentionLimit ?? DEFAULT_RETENTION.limit,
      floor: def.versionRetentionFloor ?? DEFAULT_RETENTION.floor,
    };
    this.check = def.schema ? TypeCompiler.Compile(def.schema) : undefined;
  }

  /** A reply body for a committed document: its stored JSON text as is. */
  replyBody(doc: Doc): RawJson {
    const i = this.recentDocs.indexOf(doc);
    return new RawJson(i >= 0 ? this.recentTexts[i]! : JSON.stringify(doc));
  }

  get factoryLink(): string {
    return this.def.factoryLink;
  }

  /** The child link for a POST body's `documentSelfLink` (bare id, `/id` or full child path). */
  childLinkFor(selfLink: unknown, skipValidation: boolean): string {
    const f = this.def.factoryLink;
    // An empty link is an invalid id (Xenon); a migrated document without one gets a new id.
    if (selfLink === undefined || selfLink === null || (selfLink === '' && skipValidation)) return `${f}/${this.host.newId()}`;
    if (!skipValidation) return `${f}/${childId(f, selfLink)}`;
    if (typeof selfLink !== 'string') fail('VALIDATION', 'documentSelfLink must be a string');
    let id = selfLink.startsWith(`${f}/`) ? selfLink.slice(f.length + 1) : selfLink.startsWith('/') ? selfLink.slice(1) : selfLink;
    // A migrated id keeps every character, but a path of several segments could not be addressed here.
    if (id === '' || id.includes('/')) id = id.replace(/\//g, '-') || this.host.newId();
    checkNotReserved(f, selfLink, id);
    return `${f}/${id}`;
  }

  isLive(v: StoredVersion | undefined, now: number): v is StoredVersion {
    return v !== undefined && !(v.expiration > 0 && v.expiration <= now);
  }

  /** Factory POST: creates a child (Xenon §5.1 conflict rules). */
  create(input: WriteInput): Promise<Doc> {
    return this.retrying(() => this.createOnce(input), input.op !== undefined);
  }

  /** May throw at once (bad input): retrying runs it inside its try. */
  private createOnce(input: WriteInput): Promise<Doc> {
    if (input.body['documentSourceLink'] != null) fail('VALIDATION', 'clone request not supported');
    checkBuiltinNumbers(input.body);
    const generated = input.body['documentSelfLink'] === undefined || input.body['documentSelfLink'] === null || input.body['documentSelfLink'] === '';
    const link = this.childLinkFor(input.body['documentSelfLink'], input.fromMigration);
    // A generated id is unique per host (strictly increasing clock): there is nothing to look up,
    // and no other request can address the link before this one answers, so no lock either.
    if (generated) return this.createLocked(link, input, true);
    return this.host.locks.with(link, () => this.createLocked(link, input, false));
  }

  private async createLocked(link: string, input: WriteInput, generated: boolean): Promise<Doc> {
    const now = this.host.clock.nowMicros();
    const existing = generated ? undefined : this.host.store.getLatest(link);
    let version = Math.max(0, longField(input.body, 'documentVersion') ?? 0);
    let purgeFirst = false;
    if (this.isLive(existing, now)) {
      if (existing.action !== 'DELETE') {
        if (this.def.idempotentPost) return this.updateLocked(link, existing, 'PUT', input);
        fail('ALREADY_EXISTS', `Service already started: ${link} stage: AVAILABLE`);
      }
      if (!input.forceIndexUpdate && !(version > existing.version)) fail('MARKED_DELETED', `Service marked deleted: ${link}`);
      version = Math.max(version, existing.version + 1);
      purgeFirst = true;
    } else if (existing) purgeFirst = true;
    const created = this.runCreate(input);
    const state = created instanceof Promise ? await created : created;
    const doc = this.compose(state, link, version, 'POST', now, input, longField(input.body, 'documentExpirationTimeMicros') ?? 0);
    input.op?.authz?.checkWrite('POST', doc, undefined);
    const committed = this.commitReplicated([{ doc, purgeFirst, isNew: existing === undefined }], 'logged');
    if (committed) await committed;
    return doc;
  }

  /** PUT / PATCH / DELETE of a child. Returns undefined for a DELETE of a missing link (200, empty). */
  async update(link: string, action: 'PUT' | 'PATCH' | 'DELETE', input: WriteInput): Promise<Doc | undefined> {
    return this.retrying(() => this.updateOnce(link, action, input), input.op !== undefined);
  }

  private async updateOnce(link: string, action: 'PUT' | 'PATCH' | 'DELETE', input: WriteInput): Promise<Doc | undefined> {
    checkBuiltinNumbers(input.body);
    return this.host.locks.with(link, async () => {
      const existing = this.host.store.getLatest(link);
      if (!this.isLive(existing, this.host.clock.nowMicros()) || existing.action === 'DELETE') {
        if (action === 'DELETE') return undefined;
        if (existing?.action === 'DELETE') fail('DELETED', `Service not found: ${input.op?.uri ?? link}`);
        fail('NOT_FOUND', `Service not found: ${input.op?.uri ?? link}`);
      }
      return this.updateLocked(link, existing, action, input);
    });
  }

  private async updateLocked(link: string, existing: StoredVersion, action: 'PUT' | 'PATCH' | 'DELETE', input: WriteInput): Promise<Doc> {
    const current = JSON.parse(existing.json) as Doc;
    const ctx = { current, body: input.body, fromMigration: input.fromMigration, op: input.op, host: this.host };
    let state: Doc;
    let expiration: number;
    if (action === 'PATCH') {
      if (!this.def.patch) fail('METHOD_NOT_ALLOWED', 'Action not supported: PATCH');
      state = await this.def.patch(ctx);
      const requested = longField(input.body, 'documentExpirationTimeMicros') ?? 0;
      expiration = longField(state, 'documentExpirationTimeMicros') ?? (requested > 0 ? requested : existing.expiration);
    } else if (action === 'PUT') {
      state = this.def.put ? await this.def.put(ctx) : userFields(input.body);
      expiration = longField(state, 'documentExpirationTimeMicros') ?? longField(input.body, 'documentExpirationTimeMicros') ?? 0;
    } else {
      await this.def.delete?.(ctx);
      state = current;
      const requested = longField(input.body, 'documentExpirationTimeMicros') ?? 0;
      expiration = requested > 0 ? requested : existing.expiration;
    }
    if (action !== 'DELETE') this.validate(state);
    const now = this.host.clock.nowMicros();
    const doc = this.compose(state, link, existing.version + 1, action, now, input, expiration);
    input.op?.authz?.checkWrite(action, doc, current);
    const committed = this.commitReplicated([{ doc, purgeFirst: false }], 'logged');
    if (committed) await committed;
    return doc;
  }

  /**
   * Migration import (krypton's batched form of Xenon's per-document `xn-from-migration` POST).
   * Skip rule (DECISIONS.md): a document is skipped when this host already holds the link with
   * `documentUpdateTimeMicros` ≥ the source's. Otherwise it is created, updated or deleted, keeping
   * the source's update time. All writes of the batch commit in one transaction.
   */
  async importDocuments(docs: Doc[], principal: string | undefined, mode: ImportMode = {}): Promise<ImportOutcome[]> {
    return this.retrying(() => this.importOnce(docs, principal, mode), true);
  }

  private async importOnce(docs: Doc[], principal: string | undefined, mode: ImportMode): Promise<ImportOutcome[]> {
    const head = (d: Doc): Doc => (mode.history ? ((d['versions'] as Doc[]).at(-1) ?? {}) : d);
    const links = docs.map((d) => this.childLinkFor(head(d)['documentSelfLink'], true));
    const unique = [...new Set(links)].sort();
    // The turn is taken before the link locks and given back before the commits are awaited, so a
    // batch waiting for a link another one holds never blocks that one's completion.
    let endTurn: (() => void) | undefined = await this.importTurns.acquire(this.def.factoryLink);
    const releases: Array<() => void> = [];
    try {
      for (const l of unique) releases.push(this.host.locks.tryAcquire(l) ?? (await this.host.locks.acquire(l)));
      const outcomes: ImportOutcome[] = [];
      let pending: Pending[] = [];
      let pendingBytes = 0;
      let firstOutcome = 0;
      // Commits go out in chunks while later documents are still being prepared, so the writer
      // thread works in parallel with this one. A failed chunk fails only its own documents.
      const commits: Array<Promise<void>> = [];
      const flush = () => {
        const chunk = pending;
        const from = firstOutcome;
        const to = outcomes.length;
        pending = [];
        pendingBytes = 0;
        firstOutcome = to;
        commits.push(
          Promise.resolve(this.commitReplicated(chunk, 'import')).catch((err: Error) => {
            for (let k = from; k < to; k++) if (outcomes[k]!.result !== 'failed' && outcomes[k]!.result !== 'skipped') outcomes[k] = { link: outcomes[k]!.link, result: 'failed', error: err.message };
          }),
        );
      };
      // A link written earlier in this batch (a batch may hold one link twice): its newest state.
      const touched = unique.length < links.length ? new Map<string, Doc>() : undefined;
      // One index read for the whole batch (its links are locked: nothing changes them meanwhile).
      const stored = mode.history ? undefined : this.host.store.getLatestMany(unique);
      const now = this.host.clock.nowMicros();
      for (let i = 0; i < docs.length; i++) {
        const link = links[i]!;
        try {
          let ps: Pending[];
          if (mode.history) ps = await this.importHistory(link, docs[i]!['versions'] as Doc[], now, principal, mode.overwrite ?? false);
          else {
            let one = this.importOne(link, docs[i]!, touched?.get(link), stored!.get(link), now, principal, mode.overwrite ?? false);
            if (one instanceof Promise) one = await one;
            ps = one ? [one] : [];
          }
          const last = ps.at(-1);
          const result = last ? (last.doc['documentUpdateAction'] === 'DELETE' && ps.length === 1 ? 'deleted' : 'migrated') : 'skipped';
          outcomes.push(mode.history && result === 'migrated' ? { link, result, versions: ps.length } : { link, result });
          if (last) {
            for (const p of ps) {
              p.json = JSON.stringify(p.doc);
              pendingBytes += p.json.length;
              pending.push(p);
            }
            touched?.set(link, last.doc);
          }
        } catch (err) {
          outcomes.push({ link, result: 'failed', error: (err as Error).message });
        }
        if (pending.length >= IMPORT_CHUNK || pendingBytes >= IMPORT_CHUNK_BYTES) flush();
        // A macrotask turn now and then: a flushed chunk goes to the writer now, its answers are
        // heard, and other requests (a query on the destination) are served in between.
        if ((i + 1) % IMPORT_YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      flush();
      endTurn();
      endTurn = undefined;
      await Promise.all(commits);
      return outcomes;
    } finally {
      endTurn?.();
      for (const r of releases) r();
    }
  }

  /** ALL_VERSIONS: replays a document's history (oldest first), replacing what the destination has. */
  private async importHistory(link: string, versions: Doc[], now: number, principal: string | undefined, overwrite: boolean): Promise<Pending[]> {
    const stored = this.host.store.getLatest(link);
    const lastTime = longField(versions.at(-1), 'documentUpdateTimeMicros') ?? now;
    if (!overwrite && this.isLive(stored, now) && stored.updateTime >= lastTime) return [];
    const out: Pending[] = [];
    let previous: Doc | undefined;
    for (const v of versions) {
      const action = String(v['documentUpdateAction'] ?? 'POST');
      const input: WriteInput = { body: v, fromMigration: true, forceIndexUpdate: true, principal, op: undefined };
      const state = action === 'DELETE' && previous ? userFields(previous) : await this.runCreate(input);
      const time = longField(v, 'documentUpdateTimeMicros') ?? now;
      const version = longField(v, 'documentVersion') ?? out.length;
      const doc = this.compose(state, link, version, action, time, { ...input, body: { ...v, documentUpdateTimeMicros: time } }, longField(v, 'documentExpirationTimeMicros') ?? 0);
      // A re-creation after a DELETE starts a new history, as Xenon's force-index-update does.
      out.push({ doc, purgeFirst: out.length === 0 ? stored !== undefined : action === 'POST' && previous?.['documentUpdateAction'] === 'DELETE' });
      previous = doc;
    }
    return out;
  }

  /** One document of an import: undefined when skipped; a promise only when the service's create handler is asynchronous. */
  private importOne(
    link: string,
    src: Doc,
    inBatch: Doc | undefined,
    storedBefore: StoredVersion | undefined,
    now: number,
    principal: string | undefined,
    overwrite: boolean,
  ): Pending | undefined | Promise<Pending | undefined> {
    const srcTime = longField(src, 'documentUpdateTimeMicros') ?? now;
    const stored = inBatch ? undefined : storedBefore;
    const existing = inBatch ?? (this.isLive(stored, now) ? (JSON.parse(stored.json) as Doc) : undefined);
    const exTime = existing ? (longField(existing, 'documentUpdateTimeMicros') ?? 0) : 0;
    if (existing && exTime >= srcTime && !overwrite) return undefined;
    const exVersion = existing ? (longField(existing, 'documentVersion') ?? 0) : -1;
    const exDeleted = existing?.['documentUpdateAction'] === 'DELETE';
    const input: WriteInput = { body: src, fromMigration: true, forceIndexUpdate: true, principal, op: undefined };
    const expiration = longField(src, 'documentExpirationTimeMicros') ?? 0;
    if (src['documentUpdateAction'] === 'DELETE') {
      if (!existing || exDeleted) return undefined;
      return { doc: this.compose(userFields(existing), link, exVersion + 1, 'DELETE', srcTime, input, expiration), purgeFirst: false };
    }
    const pendingFor = (state: Doc): Pending => {
      if (!existing) {
        const version = Math.max(0, longField(src, 'documentVersion') ?? 0);
        return { doc: this.compose(state, link, version, 'POST', srcTime, input, expiration), purgeFirst: stored !== undefined, isNew: stored === undefined };
      }
      return { doc: this.compose(state, link, exVersion + 1, exDeleted ? 'POST' : 'PUT', srcTime, input, expiration), purgeFirst: exDeleted };
    };
    const state = this.runCreate(input);
    return state instanceof Promise ? state.then(pendingFor) : pendingFor(state);
  }

  /** The service's create handler on the body's user fields, validated; a promise only when the handler returns one. */
  private runCreate(input: WriteInput): Doc | Promise<Doc> {
    const body = userFields(input.body);
    if (!this.def.create) {
      this.validate(body);
      return body;
    }
    const created = this.def.create({ body, fromMigration: input.fromMigration, op: input.op, host: this.host });
    if (created instanceof Promise) {
      return created.then((state) => {
        this.validate(state);
        return state;
      });
    }
    this.validate(created);
    return created;
  }

  private validate(state: Doc): void {
    if (!this.check) return;
    // The schema sees the user's fields only (no built-ins, no nulls): copy only when there are others.
    const fields = hasOnlyUserFields(state) ? state : userFields(state);
    if (this.check.Check(fields)) return;
    const first = this.check.Errors(fields).First();
    const where = first?.path ? first.path.replace(/^\//, '').replace(/\//g, '.') : 'document';
    fail('VALIDATION', `${where}: ${first?.message ?? 'invalid document'}`);
  }

  private compose(state: Doc, link: string, version: number, action: string, now: number, input: WriteInput, expiration: number): Doc {
    // Every version of a link must differ from the others (the index refuses a second one, and a
    // request's write is acknowledged before the index takes it): past 2^53 - 1, version + 1 is not
    // exact. Only a migrated document can come near it (its version is kept).
    if (!Number.isSafeInteger(version) || !Number.isSafeInteger(version + 1)) fail('VALIDATION', `${link}: documentVersion ${version} is past the largest version krypton stores (2^53 - 2)`);
    const updateTime = input.fromMigration && action !== 'DELETE' ? (longField(input.body, 'documentUpdateTimeMicros') ?? now) : now;
    const b = {
      documentVersion: version,
      documentEpoch: 0,
      documentKind: this.def.documentKind,
      documentSelfLink: link,
      documentUpdateTimeMicros: updateTime,
      documentUpdateAction: action,
      documentExpirationTimeMicros: expiration,
      documentOwner: this.host.id,
    };
    return composeDocument(state, input.principal === undefined ? b : { ...b, documentAuthPrincipalLink: input.principal });
  }

  /**
   * Replicates (node groups), then commits; see commit for what it returns. Not an async function:
   * a request's write on a single node completes synchronously, and every await and promise less
   * on that path is time and garbage saved per request.
   */
  private commitReplicated(pending: Pending[], durability: Durability = 'applied'): Promise<void> | undefined {
    const replicated = pending.length > 0 ? this.replication?.replicate(this, pending) : undefined;
    if (replicated) return replicated.then(() => this.commit(pending, durability));
    return this.commit(pending, durability);
  }

  /**
   * Runs `write` again (at most three times in all) while it fails with SHOULD_RETRY. A synchronous
   * throw is a rejection. A write a client asked for (`admitted`) is first admitted by the write
   * freeze (refused while frozen) and counted there until it settles, retries included.
   */
  private retrying<T>(write: () => Promise<T>, admitted: boolean): Promise<T> {
    if (!admitted) return this.attempt(write, 1, undefined);
    const freeze = this.host.writeFreeze;
    try {
      freeze.admit();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.attempt(write, 1, freeze);
  }

  private attempt<T>(write: () => Promise<T>, n: number, freeze: WriteFreeze | undefined): Promise<T> {
    let written: Promise<T>;
    try {
      written = write();
    } catch (err) {
      freeze?.exit();
      return Promise.reject(err);
    }
    return written.then(
      (value) => {
        freeze?.exit();
        return value;
      },
      (err: unknown) => {
        if (n >= 3 || !(err instanceof KryptonError) || !err.details?.includes('SHOULD_RETRY')) {
          freeze?.exit();
          throw err;
        }
        return this.attempt(write, n + 1, freeze);
      },
    );
  }

  /**
   * Commits versions atomically (group commit); resolves once durable: 'logged' (a request's write:
   * in the commit log) or 'applied' (in the index: batched imports). Storage failures become
   * KRY_ERR_STORAGE. Undefined: durable already (a logged write appended with no backlog to wait for).
   */
  commit(pending: Pending[], durability: Durability = 'applied'): Promise<void> | undefined {
    if (pending.length === 0) return undefined;
    const ops: WriteOp[] = [];
    for (const p of pending) {
      const { doc, purgeFirst, isNew } = p;
      const link = doc['documentSelfLink'] as string;
      if (purgeFirst) ops.push({ t: 'purge', link });
      const json = p.json ?? JSON.stringify(doc);
      // Imports never answer with the document: no reply text to keep.
      if (durability !== 'import') {
        const k = this.recentNext;
        this.recentDocs[k] = doc;
        this.recentTexts[k] = json;
        this.recentNext = (k + 1) % RECENT_TEXTS;
      }
      const v: WireVersion = {
        link,
        factory: this.def.factoryLink,
        version: doc['documentVersion'] as number,
        kind: this.def.documentKind,
        updateTime: doc['documentUpdateTimeMicros'] as number,
        action: doc['documentUpdateAction'] as string,
        expiration: this.def.expirationPurges === false ? 0 : (doc['documentExpirationTimeMicros'] as number),
        owner: doc['documentOwner'] as string,
        authPrincipal: (doc['documentAuthPrincipalLink'] as string | undefined) ?? null,
        json,
      };
      if (this.def.fixedItemNameFields) v.fixedItemNameFields = this.def.fixedItemNameFields;
      // Every built-in above is the document's own (its log record can leave them out), unless the
      // factory does not purge expired documents (the index keeps no expiration) or the document
      // came with another kind.
      if (v.expiration === doc['documentExpirationTimeMicros'] && v.kind === doc['documentKind']) v.inJson = true;
      ops.push({ t: 'write', v, retention: this.retention, knownNew: isNew === true || purgeFirst });
    }
    let submitted: Promise<void> | undefined;
    try {
      submitted = this.host.store.submit(ops, durability);
    } catch (cause) {
      return Promise.reject(storageError(cause));
    }
    return submitted?.catch((cause: unknown) => {
      throw storageError(cause);
    });
  }
}

function storageError(cause: unknown): Error {
  return kryptonError('STORAGE', `index write failed: ${(cause as Error).message}`, { cause });
}
