import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { RetentionPolicy } from './sqlite-store.js';
import type { WireVersion, WriteOp } from './write-ops.js';

/** A segment is closed and a new one started once it holds this many bytes. */
const SEGMENT_BYTES = 4 * 1024 * 1024;
const SUFFIX = '.log';

/** One logged write: its sequence number and ops, one JSON line. */
export interface LogRecord {
  s: number;
  o: WriteOp[];
}

/**
 * The commit log (write-behind): a document write is appended here — one `write(2)` — and then
 * acknowledged; the writer thread applies logged writes to the SQLite index in large batches a
 * few milliseconds later and records the last applied sequence number (`meta.commitLogSeq`) in
 * the same transaction. A 2xx therefore survives kill -9 exactly as a WAL commit with
 * synchronous=NORMAL does (the bytes are in the OS before the answer), at the cost of one small
 * append instead of one SQLite commit per request. On open, records above `commitLogSeq` are
 * replayed (see replay below). Segments whose records are all applied are deleted.
 */
export class CommitLog {
  private fd: number;
  private current: { name: string; bytes: number; lastSeq: number };
  /** Closed segments, oldest first, with the last sequence number each holds. */
  private readonly closed: Array<{ name: string; lastSeq: number }> = [];

  private constructor(private readonly dir: string) {
    this.current = { name: '', bytes: 0, lastSeq: 0 };
    this.fd = -1;
  }

  /** Opens the log for appending; call replay first (existing segments are removed by it). */
  static open(dir: string, startSeq: number): CommitLog {
    mkdirSync(dir, { recursive: true });
    const log = new CommitLog(dir);
    log.startSegment(startSeq + 1);
    return log;
  }

  private startSegment(firstSeq: number): void {
    const name = `${String(firstSeq).padStart(16, '0')}${SUFFIX}`;
    this.fd = openSync(join(this.dir, name), 'a');
    this.current = { name, bytes: 0, lastSeq: firstSeq - 1 };
  }

  /** Appends one record; when this returns, the record survives the death of the process. */
  append(seq: number, ops: readonly WriteOp[]): void {
    const line = encode(seq, ops);
    const bytes = writeSync(this.fd, line);
    this.current.bytes += bytes;
    this.current.lastSeq = seq;
    if (this.current.bytes >= SEGMENT_BYTES) {
      closeSync(this.fd);
      this.closed.push({ name: this.current.name, lastSeq: seq });
      this.startSegment(seq + 1);
    }
  }

  /** Deletes closed segments whose records are all applied to the index. */
  release(appliedSeq: number): void {
    while (this.closed.length > 0 && this.closed[0]!.lastSeq <= appliedSeq) {
      rmSync(join(this.dir, this.closed.shift()!.name), { force: true });
    }
  }

  /** Closes the log; with everything applied, its files are removed. */
  close(allApplied: boolean): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    if (allApplied) for (const name of segmentNames(this.dir)) rmSync(join(this.dir, name), { force: true });
  }

  /**
   * Reads the records of every segment under `dir` with a sequence number above `appliedSeq`, in
   * order. A record cut short by a crash (it was never acknowledged) ends its segment.
   */
  static *records(dir: string, appliedSeq: number): Generator<LogRecord> {
    for (const name of segmentNames(dir)) {
      const text = readFileSync(join(dir, name), 'utf8');
      let start = 0;
      for (;;) {
        const end = text.indexOf('\n', start);
        if (end < 0) break;
        let rec: LogRecord;
        try {
          rec = decode(text.slice(start, end));
        } catch {
          break;
        }
        start = end + 1;
        if (rec.s > appliedSeq) yield rec;
      }
    }
  }

  /** Removes every segment (after a replay committed them). */
  static clear(dir: string): void {
    for (const name of segmentNames(dir)) rmSync(join(dir, name), { force: true });
  }
}

/**
 * One line per record. A write's document JSON is embedded as JSON (`d`), not as an escaped string:
 * cheaper to write, and JSON.stringify(JSON.parse(text)) gives back the same text.
 */
function encode(seq: number, ops: readonly WriteOp[]): string {
  let line = `{"s":${seq},"o":[`;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (i > 0) line += ',';
    if (op.t === 'write') {
      const { json, ...v } = op.v;
      line += `{"t":"write","k":${op.knownNew},"r":${JSON.stringify(op.retention ?? null)},"v":${JSON.stringify(v)},"d":${json}}`;
    } else line += JSON.stringify(op);
  }
  return line + ']}\n';
}

interface EncodedWrite {
  t: 'write';
  k: boolean;
  r: RetentionPolicy | null;
  v: Omit<WireVersion, 'json'>;
  d: unknown;
}

function decode(line: string): LogRecord {
  const raw = JSON.parse(line) as { s: number; o: Array<WriteOp | EncodedWrite> };
  const o = raw.o.map((op): WriteOp => {
    if (op.t !== 'write' || !('d' in op)) return op as WriteOp;
    const out: WriteOp = { t: 'write', v: { ...op.v, json: JSON.stringify(op.d) }, knownNew: op.k };
    if (op.r) out.retention = op.r;
    return out;
  });
  return { s: raw.s, o };
}

function segmentNames(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith(SUFFIX)).sort();
}
