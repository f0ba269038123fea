import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { RetentionPolicy } from './sqlite-store.js';
import type { IndexedField } from '../query/field-indexer.js';
import type { WireVersion, WriteOp } from './write-ops.js';

/** A segment is closed and a new one started once it holds this many bytes. */
const SEGMENT_BYTES = 4 * 1024 * 1024;
const SUFFIX = '.log';

/** One logged write: its sequence number and ops (see encodeRecord for its text). */
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

  /**
   * Appends records (encodeRecord's texts, `lastSeq` the last one's number); when this returns, they
   * survive the death of the process. If the append fails, part of it may be in the file: the
   * segment is closed there (replay stops at a torn record, so it ends its segment) and the next
   * append starts a new one.
   */
  append(lastSeq: number, text: string): void {
    if (this.fd < 0) this.startSegment(this.current.lastSeq + 1);
    let bytes: number;
    try {
      bytes = writeSync(this.fd, text);
      const size = Buffer.byteLength(text);
      if (bytes < size) {
        // A short write (rare: a signal, a nearly full disk): write the rest.
        const buf = Buffer.from(text, 'utf8');
        while (bytes < size) bytes += writeSync(this.fd, buf, bytes);
      }
    } catch (err) {
      this.endSegment();
      throw err;
    }
    this.current.bytes += bytes;
    this.current.lastSeq = lastSeq;
    if (this.current.bytes >= SEGMENT_BYTES) this.endSegment();
  }

  private endSegment(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already unusable */
    }
    this.fd = -1;
    if (this.current.bytes > 0) this.closed.push({ name: this.current.name, lastSeq: this.current.lastSeq });
    else rmSync(join(this.dir, this.current.name), { force: true });
  }

  /** The sequence number of the last record appended. */
  get lastSeq(): number {
    return this.current.lastSeq;
  }

  /** The segments on disk, their sizes and the last record each holds (for messages). */
  describe(): string {
    const held = new Map(this.closed.map((c) => [c.name, c.lastSeq]));
    held.set(this.current.name, this.current.lastSeq);
    return segmentNames(this.dir)
      .map((name) => {
        let size = -1;
        try {
          size = statSync(join(this.dir, name)).size;
        } catch {
          /* gone meanwhile */
        }
        return `${name}: ${size} bytes, up to #${held.get(name) ?? '?'}${name === this.current.name && this.fd >= 0 ? ' (open)' : ''}`;
      })
      .join('; ');
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
      for (const rec of readRecords(readFileSync(join(dir, name), 'utf8'))) if (rec.s > appliedSeq) yield rec;
    }
  }

  /** CommitLog.records in runs of at most `size`, each applied in one transaction by a replay. */
  static *chunks(dir: string, appliedSeq: number, size = 1000): Generator<LogRecord[]> {
    let chunk: LogRecord[] = [];
    for (const rec of CommitLog.records(dir, appliedSeq)) {
      chunk.push(rec);
      if (chunk.length >= size) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
  }

  /** Removes every segment (after a replay committed them). */
  static clear(dir: string): void {
    for (const name of segmentNames(dir)) rmSync(join(dir, name), { force: true });
  }
}

/**
 * A record's text: a header line `{"s":seq,"o":[ops]}` and then, for each write op in order, the
 * document's JSON text on a line of its own (JSON.stringify never writes a raw newline). The same
 * text goes to the writer thread (a string crosses threads as one copy, an object graph does not),
 * so a write is encoded once. Built by hand: JSON.stringify of a version object cost several
 * times more on the request path.
 */
export function encodeRecord(seq: number, ops: readonly WriteOp[]): string {
  let docs = '';
  const head = encodeHeader(seq, ops, (json) => {
    docs += `\n${json}`;
  });
  return `${head}${docs}\n`;
}

/**
 * The same record as parts, its header line and then each document's text, for a write that is
 * not logged (an import): posted to the writer thread as they are. Each text is already one flat
 * string, while the single text would first be built and then flattened to be copied (measured:
 * 0.1-0.4 µs a document posted against 1.6).
 */
export function encodeRecordParts(seq: number, ops: readonly WriteOp[]): string[] {
  const parts = [''];
  parts[0] = encodeHeader(seq, ops, (json) => parts.push(json), true);
  return parts;
}

/**
 * The header line of a record; `doc` is given each write's document text, in order. With `runs`,
 * consecutive writes whose entries are the same (an import's: built-ins in the document, one
 * factory) are written once with their count `m`: a 1,000-document chunk's header was 150 KB of
 * identical entries, built and parsed again for every chunk. Only parts use it (the writer thread
 * reads them at once); the log keeps one entry a write, as every release before this one wrote it.
 */
function encodeHeader(seq: number, ops: readonly WriteOp[], doc: (json: string) => void, runs = false): string {
  let head = `{"s":${seq},"o":[`;
  let pending: string | undefined;
  let count = 0;
  let previous: WriteOp | undefined;
  const emit = () => {
    if (pending === undefined) return;
    if (head.length > 0 && head.charCodeAt(head.length - 1) !== 91 /* [ */) head += ',';
    head += count > 1 ? `${pending.slice(0, -1)},"m":${count}}` : pending;
  };
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    let entry: string;
    if (op.t !== 'write') entry = JSON.stringify(op);
    else if (runs && alike(previous, op)) {
      // The entry would be the previous one again: not even built.
      doc(op.v.json);
      count++;
      continue;
    } else {
      const v = op.v;
      if (alike(lastShort.op, op)) entry = lastShort.text;
      else {
        const r = op.retention;
        const common = `"k":${op.knownNew ? 1 : 0},"r":${r ? `[${num(r.limit)},${num(r.floor)}]` : 'null'},"f":${quoteCached(v.factory)}`;
        const tail = (v.fixedItemNameFields ? `,"x":${JSON.stringify(v.fixedItemNameFields)}` : '') + (v.fields ? `,"i":${JSON.stringify(v.fields)}` : '');
        if (v.inJson) {
          entry = `{"t":"d",${common}${tail}}`;
          if (!v.fields) {
            lastShort.op = op;
            lastShort.text = entry;
          }
        } else {
          entry =
            `{"t":"w",${common},"l":${quote(v.link)},"n":${num(v.version)},"K":${quoteCached(v.kind)},"u":${num(v.updateTime)},"a":${quoteCached(v.action)}` +
            `,"e":${num(v.expiration)},"w":${quoteCached(v.owner)},"p":${quoteCached(v.authPrincipal)}${tail}}`;
        }
      }
      doc(v.json);
    }
    emit();
    pending = entry;
    count = 1;
    previous = op;
  }
  emit();
  return `${head}]}`;
}

/**
 * The last short header entry built (a write whose built-ins are all in its document): a factory's
 * writes share it (a request's POST, PUT or PATCH), so it is built once, not per request; alike()
 * tells whether a write's entry is this one.
 */
const lastShort: { op: WriteOp | undefined; text: string } = { op: undefined, text: '' };

/** Whether `op`'s header entry is `previous`'s: both writes with their built-ins in the document, the same factory and retention, no fields given. */
function alike(previous: WriteOp | undefined, op: Extract<WriteOp, { t: 'write' }>): boolean {
  if (previous?.t !== 'write' || !op.v.inJson || !previous.v.inJson || op.v.fields || previous.v.fields) return false;
  const a = previous.retention;
  const b = op.retention;
  return (
    previous.knownNew === op.knownNew &&
    previous.v.factory === op.v.factory &&
    previous.v.fixedItemNameFields === op.v.fixedItemNameFields &&
    (a === b || (a !== undefined && b !== undefined && a.limit === b.limit && a.floor === b.floor))
  );
}

/** Strings JSON writes between quotes as they are (no quote, backslash or control character). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what JSON escapes.
const PLAIN = /^[^"\\\u0000-\u001f]*$/;

/** A string as JSON.stringify writes it; a third of its cost for the plain strings links are. */
function quote(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** quote() for the few values factories, kinds, owners, actions and principals take. */
const quoted = new Map<string, string>();
function quoteCached(s: string | null): string {
  if (s === null) return 'null';
  let q = quoted.get(s);
  if (q === undefined) {
    q = quote(s);
    if (quoted.size >= 1024) quoted.clear();
    quoted.set(s, q);
  }
  return q;
}

/** A number as JSON.stringify writes it (null for NaN and ±Infinity). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

interface EncodedWrite {
  t: 'w';
  k: 0 | 1;
  r: [number, number] | null;
  l: string;
  f: string;
  n: number;
  K: string | null;
  u: number;
  a: string;
  e: number;
  w: string | null;
  p: string | null;
  x?: string[];
  i?: IndexedField[];
}

/** A write whose built-ins are read from its document (WireVersion.inJson). */
interface EncodedDocWrite {
  t: 'd';
  /** This many consecutive writes alike (encodeHeader's runs); absent: one. */
  m?: number;
  k: 0 | 1;
  r: [number, number] | null;
  f: string;
  x?: string[];
  i?: IndexedField[];
}

/** Krypton 0.1's form of a write: one line, the document embedded as `d` (still read, for a log left by it). */
interface EncodedWriteV1 {
  t: 'write';
  k: boolean;
  r: RetentionPolicy | null;
  v: Omit<WireVersion, 'json'>;
  d: unknown;
}

type RawRecord = { s: number; o: Array<WriteOp | EncodedWrite | EncodedDocWrite | EncodedWriteV1> };

/**
 * The records in `text` (one log segment, or one record), in order. A record cut short by a crash
 * (a line without its newline: it was never acknowledged) ends the text.
 */
export function* readRecords(text: string): Generator<LogRecord> {
  let pos = 0;
  const nextLine = (): string | undefined => {
    const end = text.indexOf('\n', pos);
    if (end < 0) return undefined;
    const line = text.slice(pos, end);
    pos = end + 1;
    return line;
  };
  for (;;) {
    const header = nextLine();
    if (header === undefined) return;
    let raw: RawRecord;
    try {
      raw = JSON.parse(header) as RawRecord;
    } catch {
      return;
    }
    const o = decodeOps(raw, nextLine);
    if (!o) return;
    yield { s: raw.s, o };
  }
}

/** A record's ops, each write's document text taken from `nextDoc`; undefined when the record is cut short or damaged. */
function decodeOps(raw: RawRecord, nextDoc: () => string | undefined): WriteOp[] | undefined {
  const o: WriteOp[] = [];
  for (const op of raw.o) {
    if (op.t === 'd' || op.t === 'w') {
      const retention = op.r ? { limit: op.r[0], floor: op.r[1] } : undefined;
      for (let n = op.t === 'd' ? (op.m ?? 1) : 1; n > 0; n--) {
        const json = nextDoc();
        if (json === undefined) return undefined;
        const v: WireVersion | undefined =
          op.t === 'd' ? versionOf(json, op.f) : { link: op.l, factory: op.f, version: op.n, kind: op.K, updateTime: op.u, action: op.a, expiration: op.e, owner: op.w, authPrincipal: op.p, json };
        if (!v) return undefined;
        if (op.x) v.fixedItemNameFields = op.x;
        if (op.i) v.fields = op.i;
        const out: WriteOp = { t: 'write', v, knownNew: op.k === 1 };
        if (retention) out.retention = retention;
        o.push(out);
      }
    } else if (op.t === 'write' && 'd' in op) {
      const out: WriteOp = { t: 'write', v: { ...op.v, json: JSON.stringify(op.d) }, knownNew: op.k };
      if (op.r) out.retention = op.r;
      o.push(out);
    } else o.push(op as WriteOp);
  }
  return o;
}

/** A version whose built-ins are read from its document text; undefined when the text is not a document (a torn record). */
function versionOf(json: string, factory: string): WireVersion | undefined {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const link = doc['documentSelfLink'];
  const version = doc['documentVersion'];
  const updateTime = doc['documentUpdateTimeMicros'];
  if (typeof link !== 'string' || typeof version !== 'number' || typeof updateTime !== 'number') return undefined;
  const kind = doc['documentKind'];
  const owner = doc['documentOwner'];
  const principal = doc['documentAuthPrincipalLink'];
  const expiration = doc['documentExpirationTimeMicros'];
  return {
    link,
    factory,
    version,
    kind: typeof kind === 'string' ? kind : null,
    updateTime,
    action: String(doc['documentUpdateAction']),
    expiration: typeof expiration === 'number' ? expiration : 0,
    owner: typeof owner === 'string' ? owner : null,
    authPrincipal: typeof principal === 'string' ? principal : null,
    json,
    inJson: true,
    parsed: doc,
  };
}

/** The ops of one record, as encodeRecord's text or encodeRecordParts' parts. */
export function decodeRecord(record: string | readonly string[]): WriteOp[] {
  if (typeof record === 'string') {
    for (const rec of readRecords(record)) return rec.o;
  } else {
    let k = 0;
    const ops = decodeOps(JSON.parse(record[0]!) as RawRecord, () => record[++k]);
    if (ops) return ops;
  }
  throw new Error('a write record was cut short');
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
