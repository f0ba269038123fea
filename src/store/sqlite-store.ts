import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { fail, kryptonError } from '../core/errors.js';
import { FORMAT_VERSION, INDEXED_STRING_CHARS, indexedPrefix, longStringHash, SCHEMA_DDL, UPGRADE_FORMAT_1_DDL } from './schema.js';
import type { IndexedField } from '../query/field-indexer.js';
import { registerQueryFunctions } from '../query/query-compiler.js';
import { CommitLog, encodeRecordParts } from './commit-log.js';
import { CommitQueue, type Durability, type WriterBackend } from './commit-queue.js';
import { rawRows, SnapshotPool, type IndexReader, type Snapshot } from './snapshots.js';
import { StatementCache } from './statement-cache.js';
import { ThreadPriority } from './thread-priority.js';
import { applyOps, BatchApplier, LOG_SEQ_KEY, logPositionOp, type WriteOp } from './write-ops.js';

export interface OpenOptions {
  /** 'thread' (default for on-disk sandboxes): commits run on a writer thread; 'sync': in this thread. */
  writer?: 'thread' | 'sync';
  /** Longest wait of a logged write before it is applied (default 10 ms). */
  flushDelayMs?: number;
  /** How long a snapshot may stay open (default MAX_SNAPSHOT_AGE_MS; see snapshots.ts). */
  snapshotMaxAgeMs?: number;
  /** The largest document the writer thread must hold (its heap is sized for it): the request body limit. */
  largestDocumentBytes?: number;
  /** SQLite's automatic checkpoint threshold in pages for this connection (undefined: SQLite's, 1,000). */
  walAutocheckpointPages?: number | undefined;
  /**
   * How much lower (nice, 1–19) the writer thread runs while it only applies acknowledged writes
   * (see thread-priority.ts); 0 (default): always at the host's priority.
   */
  writerNice?: number;
}

const WORKER_FILE = new URL('./writer-worker.js', import.meta.url);
/** The ids of the writer thread's answers to a close and a resume message (batch ids are positive). */
const CLOSE_ID = -1;
const RESUME_ID = -2;
const CHECKPOINT_WORKER_FILE = new URL('./checkpoint-worker.js', import.meta.url);
/** How often the checkpointer thread checkpoints the WAL while writes are being applied (checkpoint-worker.ts). */
const CHECKPOINT_INTERVAL_MS = 200;
/**
 * The writer's own automatic checkpoint when the checkpointer thread runs: 8,192 pages (128 MB of
 * 16 KB pages). It bounds the WAL whatever the checkpointer does; meanwhile the checkpointer copies
 * pages without stopping the writer (a 100,000-document migration: no writer checkpoint at all,
 * against seven of about 40 ms each at SQLite's 1,000 pages).
 */
const WRITER_WAL_AUTOCHECKPOINT_PAGES = 8192;

/**
 * SQLite page size of a new index. Measured, inserting 100,000 example documents in batches of
 * 1,000 (docs, its indexes and props rows): 16 KB pages took 13.4–19.3 µs a document against
 * 18.4–22.1 with the default 4 KB.
 */
const PAGE_SIZE = 16384;

/** One stored version of a document, as the index returns it. */
export interface StoredVersion {
  id: number;
  link: string;
  factory: string;
  version: number;
  kind: string | null;
  updateTime: number;
  action: string;
  expiration: number;
  owner: string | null;
  json: string;
}

/** A version to write. `fields` are the queryable user fields (see query/field-indexer.ts). */
export interface NewVersion {
  link: string;
  factory: string;
  version: number;
  kind: string | null;
  updateTime: number;
  action: string;
  expiration: number;
  owner: string | null;
  authPrincipal: string | null;
  json: string;
  fields: readonly IndexedField[];
}

export interface RetentionPolicy {
  limit: number;
  floor: number;
}

const SELECT_COLUMNS = 'd.id, d.link, d.factory, d.version, d.kind, d.update_time AS updateTime, d.action, d.expiration, d.owner, d.json';

/**
 * The embedded document index: SQLite in WAL mode with synchronous=NORMAL, so a write acknowledged
 * after commit survives kill -9 of the process (not necessarily power loss; see README).
 * All methods are synchronous (better-sqlite3); callers serialize updates per link.
 */
export class SqliteStore implements IndexReader {
  readonly db: Database.Database;
  private readonly snapshots: SnapshotPool;
  private readonly statementCache: StatementCache;
  private readonly stmts;
  private readonly runInTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Group commit for the request path (see commit-queue.ts). */
  readonly commits: CommitQueue;
  private writer: Worker | undefined;
  private checkpointer: Worker | undefined;
  private log: CommitLog | undefined;
  /** Set when opening upgraded an index of an older format (the host logs it). */
  upgraded: FormatUpgrade | undefined;
  /** What opening replayed from the commit log (writes acknowledged before a crash). */
  readonly replayed: { writes: number; failed: string[] } = { writes: 0, failed: [] };

  private constructor(db: Database.Database, dir: string, options: OpenOptions) {
    this.db = db;
    this.statementCache = new StatementCache(db, 256);
    this.snapshots = new SnapshotPool(dir === ':memory:' ? undefined : join(dir, 'index.sqlite'), options.snapshotMaxAgeMs);
    this.stmts = {
      latest: db.prepare(`SELECT ${SELECT_COLUMNS} FROM docs d WHERE d.link = ? AND d.latest = 1`),
      version: db.prepare(`SELECT ${SELECT_COLUMNS} FROM docs d WHERE d.link = ? AND d.version = ?`),
      latestMany: db.prepare(`SELECT ${SELECT_COLUMNS} FROM docs d WHERE d.link IN (SELECT value FROM json_each(?)) AND d.latest = 1`),
      unsetLatest: db.prepare('UPDATE docs SET latest = 0 WHERE link = ? AND latest = 1'),
      insert: db.prepare(
        `INSERT INTO docs (link, factory, version, kind, update_time, action, expiration, owner, auth_principal, latest, json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`,
      ),
      insertProp: db.prepare('INSERT INTO props (doc_id, name, seq, sval, nval, long_id) VALUES (?, ?, ?, ?, ?, ?)'),
      insertLongString: db.prepare('INSERT INTO long_strings (hash, value) VALUES (?, ?)'),
      deletePropsOfLink: db.prepare('DELETE FROM props WHERE doc_id IN (SELECT id FROM docs WHERE link = ?)'),
      deleteLink: db.prepare('DELETE FROM docs WHERE link = ?'),
      deletePropsBelow: db.prepare('DELETE FROM props WHERE doc_id IN (SELECT id FROM docs WHERE link = ? AND version < ?)'),
      deleteBelow: db.prepare('DELETE FROM docs WHERE link = ? AND version < ?'),
      expired: db.prepare('SELECT link FROM docs WHERE latest = 1 AND expiration > 0 AND expiration <= ? LIMIT 1000'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    };
    this.runInTransaction = db.transaction((fn: () => unknown) => fn());
    const threaded = options.writer !== 'sync' && dir !== ':memory:' && existsSync(fileURLToPath(WORKER_FILE));
    if (!threaded) {
      this.commits = new CommitQueue(this.inThreadWriter(), undefined, 0);
      return;
    }
    const logDir = join(dir, 'commit-log');
    const lastSeq = this.replay(logDir);
    this.log = CommitLog.open(logDir, lastSeq);
    this.commits = new CommitQueue(this.startWriter(dir, writerHeapMb(options.largestDocumentBytes), options.writerNice ?? 0), this.log, lastSeq, options.flushDelayMs);
  }

  /**
   * Applies the commit log's records the index does not have yet (a crash, or a halted writer, came
   * first); returns the last sequence number. The log is removed only once every record is applied.
   * A record that can never be applied (recordsFault) is reported and skipped so that the host can
   * start; any other failure (a full disk, an I/O error, the index locked by another process) stops
   * the start with the log kept, since skipping would lose writes that clients were answered for.
   */
  private replay(logDir: string): number {
    let last = Number((this.stmts.getMeta.get(LOG_SEQ_KEY) as { value: string } | undefined)?.value ?? 0);
    const cannotReplay = (err: unknown, seq: number) =>
      kryptonError(
        'STORAGE',
        `the index cannot take the acknowledged writes of the commit log from #${seq} on (${(err as Error).message}). Nothing was skipped: the log is kept in ${logDir}. Fix the cause (free disk space, stop the process holding the index) and start the host again.`,
        { cause: err },
      );
    for (const records of CommitLog.chunks(logDir, last)) {
      const end = records[records.length - 1]!.s;
      this.replayed.writes += records.length;
      last = end;
      try {
        this.applyTransaction(() => {
          for (const r of records) applyOps(this, r.o);
          applyOps(this, [logPositionOp(end)]);
        });
        continue;
      } catch (err) {
        if (!recordsFault(err)) throw cannotReplay(err, records[0]!.s);
      }
      // One record at a time, each with its log position: only the faulty ones are skipped.
      for (const r of records) {
        try {
          this.applyTransaction(() => applyOps(this, [...r.o, logPositionOp(r.s)]));
          continue;
        } catch (err) {
          if (!recordsFault(err)) throw cannotReplay(err, r.s);
          this.replayed.failed.push(`#${r.s}: ${(err as Error).message}`);
        }
        try {
          this.applyTransaction(() => applyOps(this, [logPositionOp(r.s)]));
        } catch (err) {
          throw cannotReplay(err, r.s + 1);
        }
      }
    }
    CommitLog.clear(logDir);
    return last;
  }

  /** Batches applied in this thread (in-memory indexes, the writer thread's own store). */
  private inThreadWriter(): WriterBackend {
    const applier = new BatchApplier(this);
    return {
      post: (id, groups, logSeqs) => {
        const results = applier.apply(
          groups.map((g) => g.ops),
          logSeqs,
        );
        setImmediate(() => this.commits.onApplied(id, results));
      },
      waitApplied: () => true,
    };
  }

  /** Starts the writer thread: batches go by message; `applied` (shared memory) lets a reader wait for one. */
  private startWriter(dir: string, heapMb: number, writerNice: number): WriterBackend {
    const applied = new Int32Array(new SharedArrayBuffer(4));
    this.checkpointer = existsSync(fileURLToPath(CHECKPOINT_WORKER_FILE))
      ? new Worker(CHECKPOINT_WORKER_FILE, {
          workerData: { dir, applied: applied.buffer, intervalMs: CHECKPOINT_INTERVAL_MS, nice: writerNice },
          resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
        })
      : undefined;
    // Without it (it could not start, or stopped) the writer's own checkpoint still bounds the WAL.
    this.checkpointer?.on('error', () => undefined);
    const walAutocheckpointPages = this.checkpointer ? WRITER_WAL_AUTOCHECKPOINT_PAGES : undefined;
    // The writer holds at most two bounded batches (see commit-queue.ts): a small heap keeps memory flat.
    const worker = new Worker(WORKER_FILE, {
      workerData: { dir, applied: applied.buffer, walAutocheckpointPages },
      resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: 16 },
    });
    this.writer = worker;
    let stopped: Error | undefined;
    // The writer's priority: known once it sends its thread id; until then the last wish is kept.
    let priority: ThreadPriority | undefined;
    let background = false;
    worker.on('message', (m: { id: number; results?: Array<string | undefined>; tid?: number }) => {
      if (m.id !== undefined) this.commits.onApplied(m.id, m.results ?? []);
      else if (m.tid !== undefined) {
        priority = ThreadPriority.of(m.tid, writerNice);
        priority?.set(background);
      }
    });
    const failAll = (err: Error) => {
      stopped ??= err;
      this.commits.fail(kryptonError('STORAGE', `index writer stopped: ${err.message}`, { cause: err }));
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => {
      priority?.stop(); // its thread id may be another thread's from now on
      priority = undefined;
      failAll(new Error(`writer thread exited with code ${code}`));
    });
    return {
      post: (id, groups, logSeqs) => {
        if (stopped) throw stopped;
        // Text: a string is copied once into the message, a graph of op objects is cloned field by
        // field. A logged write sends its log record; another, the record's parts (no text to build).
        worker.postMessage({ id, records: groups.map((g) => g.record ?? encodeRecordParts(0, g.ops)), logSeqs });
      },
      prioritize: (someoneWaits) => {
        background = !someoneWaits;
        priority?.set(background);
      },
      waitApplied: (id) => {
        for (;;) {
          const now = Atomics.load(applied, 0);
          if (now >= id) return true;
          if (stopped) return false;
          Atomics.wait(applied, 0, now, 50);
        }
      },
      resume: async () => {
        if (stopped) throw stopped;
        const m = await ask<{ id?: number; resumed?: { last: number; writes: number }; resumeError?: string }>(worker, { id: RESUME_ID, resume: join(dir, 'commit-log') }, (a) => a.id === RESUME_ID);
        if (m?.resumed) return m.resumed;
        throw new Error(m ? (m.resumeError ?? 'resume failed') : 'the index writer stopped');
      },
    };
  }

  /** Opens (creating if needed) the index under `dir`. Refuses a sandbox written by a newer release. */
  static open(dir: string | ':memory:', options: OpenOptions = {}): SqliteStore {
    let db: Database.Database;
    try {
      if (dir !== ':memory:') mkdirSync(dir, { recursive: true });
      db = new Database(dir === ':memory:' ? ':memory:' : join(dir, 'index.sqlite'));
      // Taken only by a new, empty database (an existing one keeps its page size).
      db.pragma(`page_size = ${PAGE_SIZE}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.pragma('cache_size = -16384');
      if (options.walAutocheckpointPages !== undefined) db.pragma(`wal_autocheckpoint = ${options.walAutocheckpointPages}`);
    } catch (cause) {
      throw kryptonError('STORAGE', `cannot open the index in ${dir}: ${(cause as Error).message}`, { cause });
    }
    const found = readFormat(db);
    if (found !== undefined && found > FORMAT_VERSION) {
      db.close();
      fail('STORAGE', `the sandbox ${dir} was written by a newer krypton (index format ${found}; this release reads up to ${FORMAT_VERSION}). Use the newer release or another --sandbox.`);
    }
    let upgraded: FormatUpgrade | undefined;
    try {
      if (found === 1) upgraded = upgradeFormat1(db);
      else db.exec(SCHEMA_DDL);
    } catch (cause) {
      db.close();
      throw kryptonError('STORAGE', `cannot ${found === 1 ? 'upgrade the index format 1 to 2' : 'set up the index'} in ${dir}: ${(cause as Error).message}. The index is unchanged.`, { cause });
    }
    registerQueryFunctions(db);
    let store: SqliteStore;
    try {
      store = new SqliteStore(db, dir, options);
    } catch (err) {
      db.close(); // the commit log could not be replayed: nothing else holds the index open yet
      throw err;
    }
    if (found === undefined) store.setMeta('formatVersion', String(FORMAT_VERSION));
    store.upgraded = upgraded;
    return store;
  }

  getMeta(key: string): string | undefined {
    this.commits.sync();
    return (this.stmts.getMeta.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }

  /** The newest version of a link (a DELETE version included), or undefined. */
  getLatest(link: string): StoredVersion | undefined {
    const pending = this.commits.pendingLatest(link);
    if (pending !== undefined) return pending ?? undefined;
    return this.stmts.latest.get(link) as StoredVersion | undefined;
  }

  /** getLatest for many links in one index read (a migration page); links without a version are absent. */
  getLatestMany(links: readonly string[]): Map<string, StoredVersion> {
    const found = new Map<string, StoredVersion>();
    const ask: string[] = [];
    for (const link of links) {
      const pending = this.commits.pendingLatest(link);
      if (pending === undefined) ask.push(link);
      else if (pending !== null) found.set(link, pending);
    }
    if (ask.length > 0) for (const row of this.stmts.latestMany.iterate(JSON.stringify(ask)) as Iterable<StoredVersion>) found.set(row.link, row);
    return found;
  }

  getVersion(link: string, version: number): StoredVersion | undefined {
    this.commits.sync();
    return this.stmts.version.get(link, version) as StoredVersion | undefined;
  }

  /** Appends a version and makes it the latest, applying the retention policy. Returns its row id. */
  write(v: Omit<NewVersion, 'fields'>, fields: readonly IndexedField[], retention?: RetentionPolicy, knownNew = false): number {
    if (!knownNew) this.stmts.unsetLatest.run(v.link);
    // Positional binding: measurably cheaper than named parameters on this hot path.
    const id = Number(this.stmts.insert.run(v.link, v.factory, v.version, v.kind, v.updateTime, v.action, v.expiration, v.owner, v.authPrincipal, v.json).lastInsertRowid);
    let longIds: Map<string, number> | undefined;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      const s = f.s;
      if (s === null || s.length <= INDEXED_STRING_CHARS) {
        this.stmts.insertProp.run(id, f.name, i, s, f.n, null);
        continue;
      }
      // A long string (see schema.ts): its text once per version, however many fields hold it
      // (a FIXED_ITEM_NAME map indexes each value twice); the props rows refer to it.
      longIds ??= new Map();
      let longId = longIds.get(s);
      if (longId === undefined) {
        longId = Number(this.stmts.insertLongString.run(longStringHash(s), s).lastInsertRowid);
        longIds.set(s, longId);
      }
      this.stmts.insertProp.run(id, f.name, i, indexedPrefix(s), null, longId);
    }
    if (retention && v.version >= retention.limit && (v.version - retention.limit) % Math.max(1, retention.limit - retention.floor) === 0) {
      this.stmts.deletePropsBelow.run(v.link, v.version - retention.floor);
      this.stmts.deleteBelow.run(v.link, v.version - retention.floor);
    }
    return id;
  }

  /** Removes every version of a link (expiration, force-index-update re-creation). */
  purge(link: string): void {
    this.stmts.deletePropsOfLink.run(link);
    this.stmts.deleteLink.run(link);
  }

  /**
   * Removes a link's versions numbered `version` and above; the newest remaining one becomes the
   * latest (node groups: a rolled-back replica write, or a copy replaced by synchronization).
   */
  removeVersionsFrom(link: string, version: number): void {
    this.transaction(() => {
      this.db.prepare('DELETE FROM props WHERE doc_id IN (SELECT id FROM docs WHERE link = ? AND version >= ?)').run(link, version);
      this.db.prepare('DELETE FROM docs WHERE link = ? AND version >= ?').run(link, version);
      this.db.prepare('UPDATE docs SET latest = 1 WHERE id = (SELECT id FROM docs WHERE link = ? ORDER BY version DESC LIMIT 1) AND latest = 0').run(link);
    });
  }

  /** Runs `fn` in one transaction (IMMEDIATE), after every queued write is applied. */
  transaction<T>(fn: () => T): T {
    this.commits.sync(true);
    return this.runInTransaction.immediate(fn) as T;
  }

  /** The writer's transaction (write-ops.ts): no wait for the queue it is applying. */
  applyTransaction<T>(fn: () => T): T {
    return this.runInTransaction.immediate(fn) as T;
  }

  /**
   * Runs `fn`, synchronous reads of the index, once every write acknowledged so far is applied,
   * without blocking the thread meanwhile (CommitQueue.settle, then settledRead): a reader that
   * neither stalls the event loop nor misses an acknowledged write.
   */
  async read<T>(fn: () => T): Promise<T> {
    await this.commits.settle();
    return this.commits.settledRead(fn);
  }

  /**
   * A point-in-time view of the index for a read of several batches (see Snapshot), taken once
   * every write acknowledged so far is applied (as `read`). The caller releases it.
   */
  async snapshot(): Promise<Snapshot> {
    await this.commits.settle();
    return this.commits.settledRead(() => this.snapshots.take());
  }

  /** Waits until every acknowledged write is in the index (before reading it with raw statements; see CommitQueue.sync). */
  sync(): void {
    this.commits.sync();
  }

  /** Purges up to 1000 documents whose expiration has passed (inside the caller's transaction). */
  purgeExpiredInTransaction(nowMicros: number): number {
    const links = (this.stmts.expired.all(nowMicros) as { link: string }[]).map((r) => r.link);
    for (const l of links) this.purge(l);
    return links.length;
  }

  /** True while writes are refused because the index could not take an acknowledged one (CommitQueue.halt). */
  get writesHalted(): boolean {
    return this.commits.isHalted;
  }

  /** Tries to end a halt (CommitQueue.resume): the number of logged writes applied; rejects with why the halt goes on. */
  resumeWrites(): Promise<number | undefined> {
    return this.commits.resume();
  }

  /** Queues the purge of expired documents on the writer (host housekeeping: it does not raise the writer's priority). */
  purgeExpired(nowMicros: number): Promise<void> {
    return this.commits.submit([{ t: 'purgeExpired', now: nowMicros }], 'housekeeping') ?? Promise.resolve();
  }

  /** Commits ops through the group commit (the writer thread when there is one); see Durability and CommitQueue.submit. */
  submit(ops: WriteOp[], durability: Durability = 'applied'): Promise<void> | undefined {
    return this.commits.submit(ops, durability);
  }

  /** Runs a read query built by the query engine (prepared statements are cached by SQL text). */
  all<T>(sql: string, params: readonly unknown[]): T[] {
    this.commits.sync();
    return this.prepared(sql).all(...params) as T[];
  }

  get<T>(sql: string, params: readonly unknown[]): T | undefined {
    this.commits.sync();
    return this.prepared(sql).get(...params) as T | undefined;
  }

  rows(sql: string, params: readonly unknown[], until?: (row: unknown[]) => boolean): unknown[][] {
    this.commits.sync();
    return rawRows(this.prepared(sql), params, until);
  }

  /** Query-engine statements (cached by SQL text). */
  private prepared(sql: string): Database.Statement {
    return this.statementCache.get(sql);
  }

  static readonly selectColumns = SELECT_COLUMNS;

  /** Commits what is queued, stops the writer thread, checkpoints the WAL and closes. */
  async close(): Promise<void> {
    if (!this.db.open) return;
    await this.commits.drain();
    const checkpointer = this.checkpointer;
    this.checkpointer = undefined;
    if (checkpointer) await stopWorker(checkpointer, { stop: true }, (m) => m.stopped === true);
    const writer = this.writer;
    this.writer = undefined;
    if (writer) await stopWorker(writer, { id: CLOSE_ID, close: true }, (m) => m.id === CLOSE_ID);
    this.log?.close(this.commits.idle);
    this.snapshots.close();
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (cause) {
      // Every commit is in the WAL already: only its copy into the database file is left undone.
      throw kryptonError('STORAGE', `the index was closed without its last checkpoint (${(cause as Error).message}); nothing is lost: the WAL is kept and checkpointed at the next start`, { cause });
    } finally {
      this.db.close();
    }
  }
}

/**
 * Posts a message to a worker and waits for the answer to it: the first message `isAnswer` accepts,
 * or undefined if the worker exits first. Other messages (a batch's answer) are left to their listener.
 */
function ask<A>(worker: Worker, message: unknown, isAnswer: (m: A) => boolean): Promise<A | undefined> {
  return new Promise((resolve) => {
    const answered = (m: A) => {
      if (!isAnswer(m)) return;
      done();
      resolve(m);
    };
    const exited = () => {
      done();
      resolve(undefined);
    };
    const done = () => {
      worker.off('message', answered);
      worker.off('exit', exited);
    };
    worker.on('message', answered);
    worker.on('exit', exited);
    worker.postMessage(message);
  });
}

/**
 * Sends a worker its stop message, waits for the answer to it (or the worker's exit) and terminates
 * it. Only that answer will do: the writer may still answer a batch or a resume sent earlier, and
 * terminating it then would cut its close short in the middle of an SQLite call (seen: a native
 * crash of the whole process when the close's checkpoint failed on a full disk meanwhile).
 */
async function stopWorker(worker: Worker, message: unknown, isAnswer: (m: { id?: number; stopped?: boolean }) => boolean): Promise<void> {
  await ask(worker, message, isAnswer);
  await worker.terminate();
}

export interface FormatUpgrade {
  from: number;
  to: number;
  /** String values moved out of the index rows into long_strings. */
  longStrings: number;
  ms: number;
}

/**
 * Format 1 → 2 in one transaction (a failure, or a crash, leaves format 1 as it was): every string
 * value longer than INDEXED_STRING_CHARS moves from its props row into long_strings, the row keeping
 * its prefix, as format 2 writes it (see schema.ts). Reads props in key order, a page at a time.
 * The pages the long values took stay in the file as free pages, reused by later writes.
 */
function upgradeFormat1(db: Database.Database): FormatUpgrade {
  const started = performance.now();
  let longStrings = 0;
  db.transaction(() => {
    db.exec(UPGRADE_FORMAT_1_DDL);
    // Bytes >= UTF-16 code units, so this finds every value longer than the limit (and a few not).
    const page = db.prepare(
      `SELECT doc_id AS docId, name, seq, sval FROM props WHERE (doc_id, name, seq) > (?, ?, ?) AND length(CAST(sval AS BLOB)) > ${INDEXED_STRING_CHARS} ORDER BY doc_id, name, seq LIMIT 1000`,
    );
    const insert = db.prepare('INSERT INTO long_strings (hash, value) VALUES (?, ?)');
    const update = db.prepare('UPDATE props SET sval = ?, long_id = ? WHERE doc_id = ? AND name = ? AND seq = ?');
    let after: [number, string, number] = [-1, '', -1];
    for (;;) {
      const rows = page.all(...after) as Array<{ docId: number; name: string; seq: number; sval: string }>;
      for (const r of rows) {
        if (r.sval.length <= INDEXED_STRING_CHARS) continue;
        const longId = Number(insert.run(longStringHash(r.sval), r.sval).lastInsertRowid);
        update.run(indexedPrefix(r.sval), longId, r.docId, r.name, r.seq);
        longStrings++;
      }
      if (rows.length < 1000) break;
      const last = rows[rows.length - 1]!;
      after = [last.docId, last.name, last.seq];
    }
    db.exec(SCHEMA_DDL);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'formatVersion'").run(String(FORMAT_VERSION));
  })();
  return { from: 1, to: FORMAT_VERSION, longStrings, ms: Math.round(performance.now() - started) };
}

function readFormat(db: Database.Database): number | undefined {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!hasMeta) return undefined;
  const row = db.prepare("SELECT value FROM meta WHERE key = 'formatVersion'").get() as { value: string } | undefined;
  return row ? Number(row.value) : undefined;
}

/**
 * The writer thread's heap ceiling. It holds at most two bounded batches (commit-queue.ts), so 64 MB
 * keeps memory flat; but one document as large as the body limit is held about three times at
 * once (the record text, the document text, its parsed fields), so the ceiling leaves room for
 * that. A ceiling is not a reservation: V8 only grows the heap to it when it must.
 */
function writerHeapMb(largestDocumentBytes = 64 * 1024 * 1024): number {
  return Math.max(64, 64 + Math.ceil((4 * largestDocumentBytes) / (1024 * 1024)));
}

/**
 * True when a write failed because of what it writes (a constraint, a value SQLite refuses, a record
 * that cannot be decoded): applying it again can never succeed. Any other SQLite failure (a full
 * disk, an I/O error, the index locked, read-only or damaged) is the environment's and can be fixed.
 */
function recordsFault(err: unknown): boolean {
  if (!(err instanceof Database.SqliteError)) return true;
  return /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(err.code);
}
