import Database from 'better-sqlite3';
import { registerQueryFunctions } from '../query/query-compiler.js';
import { StatementCache } from './statement-cache.js';

/** Synchronous reads of the index by SQL text (the query engine's view of it). */
export interface IndexReader {
  all<T>(sql: string, params: readonly unknown[]): T[];
  get<T>(sql: string, params: readonly unknown[]): T | undefined;
  /**
   * Like all, each row as an array of its columns' values in SELECT order (no object built per row).
   * With `until`, rows are read one at a time and reading stops after the first row it is true of.
   */
  rows(sql: string, params: readonly unknown[], until?: (row: unknown[]) => boolean): unknown[][];
}

/**
 * A statement's rows as arrays. Building an object per row cost a query page more than reading it
 * (measured: 10,000 documents, 28 ms of CPU as objects, 17.5 ms as arrays). The mode is set per
 * call: statements are cached by SQL text and shared with `all` callers.
 */
export function rawRows(statement: Database.Statement, params: readonly unknown[], until?: (row: unknown[]) => boolean): unknown[][] {
  statement.raw(true);
  try {
    if (!until) return statement.all(...params) as unknown[][];
    // One at a time (about 0.3 µs a row more than all): leaving the loop ends the statement.
    const rows: unknown[][] = [];
    for (const row of statement.iterate(...params) as IterableIterator<unknown[]>) {
      rows.push(row);
      if (until(row)) break;
    }
    return rows;
  } finally {
    statement.raw(false);
  }
}

/** Read connections open at once for snapshots; beyond it a stream reads the shared connection. */
const MAX_READERS = 8;
/**
 * A snapshot is given back after this long even if its reader has not finished: while it is open
 * the WAL cannot be checkpointed past it, so a stalled client must not grow the WAL for ever. The
 * rest of that answer is read from the live index, as without a snapshot.
 */
export const MAX_SNAPSHOT_AGE_MS = 60_000;

/** A read-only connection with its own statement cache. */
class ReadConnection {
  private readonly statements: StatementCache;
  readonly begin: Database.Statement;
  readonly end: Database.Statement;
  private readonly startRead: Database.Statement;

  constructor(readonly db: Database.Database) {
    this.statements = new StatementCache(db, 64);
    this.begin = db.prepare('BEGIN');
    this.end = db.prepare('COMMIT');
    this.startRead = db.prepare('SELECT count(*) FROM meta');
  }

  /** Starts a read transaction now: it sees exactly what is committed at this moment, until `end`. */
  open(): void {
    this.begin.run();
    this.startRead.get();
  }

  prepared(sql: string): Database.Statement {
    return this.statements.get(sql);
  }
}

/**
 * One point-in-time view of the index, for a read that spans several batches and event-loop turns
 * (a streamed answer: every link, then every document): all its batches see the same committed
 * state, so a write committed meanwhile cannot show in one pass and not the other. Release it when
 * done; `open` is false when none was available (or it was given back), and the caller then reads
 * the live index instead.
 */
export class Snapshot implements IndexReader {
  private conn: ReadConnection | undefined;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    conn: ReadConnection | undefined,
    private readonly giveBack: (conn: ReadConnection) => void = () => undefined,
    maxAgeMs = MAX_SNAPSHOT_AGE_MS,
  ) {
    this.conn = conn;
    if (conn) this.timer = setTimeout(() => this.release(), maxAgeMs).unref();
  }

  get open(): boolean {
    return this.conn?.db.open === true;
  }

  all<T>(sql: string, params: readonly unknown[]): T[] {
    return this.live()
      .prepared(sql)
      .all(...params) as T[];
  }

  get<T>(sql: string, params: readonly unknown[]): T | undefined {
    return this.live()
      .prepared(sql)
      .get(...params) as T | undefined;
  }

  rows(sql: string, params: readonly unknown[], until?: (row: unknown[]) => boolean): unknown[][] {
    return rawRows(this.live().prepared(sql), params, until);
  }

  /** Ends the read transaction and returns the connection to the pool. Idempotent. */
  release(): void {
    const conn = this.conn;
    if (!conn) return;
    this.conn = undefined;
    clearTimeout(this.timer);
    this.giveBack(conn);
  }

  private live(): ReadConnection {
    if (!this.open) throw new Error('index snapshot used after release');
    return this.conn!;
  }
}

/** Read-only connections to one index file, opened on demand, at most MAX_READERS. */
export class SnapshotPool {
  private readonly idle: ReadConnection[] = [];
  private readonly all = new Set<ReadConnection>();
  private closed = false;

  constructor(
    private readonly file: string | undefined,
    private readonly maxAgeMs = MAX_SNAPSHOT_AGE_MS,
  ) {}

  /**
   * A snapshot of what is committed now (callers first wait until every acknowledged write is
   * applied), or a closed one when no connection is free or the index is in memory.
   */
  take(): Snapshot {
    const conn = this.idle.pop() ?? this.connect();
    if (!conn) return new Snapshot(undefined);
    conn.open();
    return new Snapshot(conn, (c) => this.giveBack(c), this.maxAgeMs);
  }

  close(): void {
    this.closed = true;
    for (const c of this.all) c.db.close();
    this.all.clear();
    this.idle.length = 0;
  }

  private connect(): ReadConnection | undefined {
    if (this.closed || this.file === undefined || this.all.size >= MAX_READERS) return undefined;
    // Not opened read-only: a read-only connection cannot always use the WAL's shared memory file.
    const db = new Database(this.file, { fileMustExist: true });
    db.pragma('query_only = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('cache_size = -4096');
    registerQueryFunctions(db);
    const conn = new ReadConnection(db);
    this.all.add(conn);
    return conn;
  }

  private giveBack(conn: ReadConnection): void {
    if (!conn.db.open) return;
    conn.end.run();
    if (this.closed) conn.db.close();
    else this.idle.push(conn);
  }
}
