import { kryptonError } from '../core/errors.js';
import { longField, type Doc } from '../core/document.js';

/**
 * One page of a source query (a QueryTask's `results`), its documents left as text until asked
 * for. A 10,000-document page parsed at once is some 15 MB of objects that all outlive several
 * young-generation collections (each copies them) and then load the old generation; parsed a slice
 * at a time, each document's objects die young. Works on any JSON layout (Xenon's pretty-printed
 * pages too): the scan follows JSON's grammar, it does not expect krypton's byte layout.
 *
 * Finding each document's span that way reads every character of the page in JavaScript. A page
 * as krypton writes it (no whitespace, documents in `documentLinks` order) is split faster: each
 * document ends where `,"<next link>":` starts, which a native `indexOf` finds. That text could also
 * occur inside a document, but a span cut there is not one JSON value, so it does not parse: spans
 * found this way are trusted only in page order, each once every span before it has parsed
 * (`proven`), and at the first one that does not, the page is scanned the slow way instead.
 *
 * What the page holds while its documents are written stays small, because it lives for the whole
 * page and so is copied by young-generation collections and then promoted: split spans are two
 * integer arrays in page order (no object and no map entry per document), and `documentLinks` is
 * parsed once (measured on a 100,000-document migration: the page's structures were 3 MB of the 9
 * MB live on green's heap mid-run, with the links parsed twice and a span object per document).
 */
export class ResultPage {
  /** Split spans proven up to this index (see above); -1: none. */
  private proven = -1;
  /** Split spans: link → its index in page order, built only if documents are asked for out of order. */
  private order: Map<string, number> | undefined;

  private constructor(
    readonly links: string[],
    readonly nextPageLink: string | undefined,
    /** The source's time for this page's query, when it reports one. */
    readonly queryTimeMicros: number | undefined,
    private readonly text: string,
    /** Where `results.documents` starts in `text`, if the page has documents. */
    private readonly documentsAt: number | undefined,
    /** Split spans (unproven): document k of `links` is `text` from starts[k] to ends[k]. */
    private split: { starts: Int32Array; ends: Int32Array } | undefined,
    /** Scanned spans (the slow way): link → [start, end) of its value in `text`. */
    private spans: Map<string, Span>,
  ) {}

  /** Reads a QueryTask's JSON text; throws a REMOTE error when it is not one. */
  static parse(text: string): ResultPage {
    let task: Doc;
    const spans = new Map<string, Span>();
    let fast: Split | undefined;
    let start: number | undefined;
    try {
      start = documentsStart(text);
      if (start === undefined) task = JSON.parse(text) as Doc;
      else {
        fast = splitAtLinks(text, start);
        // Everything but the documents (and, when split, the links) is small: parsed as usual, with
        // `{}` (and `[]`) in their place. After a split at a wrong boundary the documents' end is
        // wrong too, and the rest does not parse; the placeholders must be where they were put.
        let parsed: Doc | undefined;
        if (fast) {
          try {
            parsed = JSON.parse(`${text.slice(0, fast.linksStart)}[]${text.slice(fast.linksEnd, start)}{}${text.slice(fast.end)}`) as Doc;
            const r = parsed?.['results'] as Doc | undefined;
            if (!isEmptyArray(r?.['documentLinks']) || !isEmptyObject(r?.['documents'])) parsed = undefined;
          } catch {
            parsed = undefined;
          }
        }
        if (!parsed) fast = undefined;
        task = parsed ?? (JSON.parse(`${text.slice(0, start)}{}${text.slice(scanSpans(text, start, spans))}`) as Doc);
      }
    } catch (cause) {
      throw kryptonError('REMOTE', `the source answered a query page that is not a QueryTask: ${(cause as Error).message}`, { cause });
    }
    const r = (task?.['results'] ?? {}) as Doc;
    const links = fast ? fast.links : Array.isArray(r['documentLinks']) ? (r['documentLinks'] as unknown[]).filter((l): l is string => typeof l === 'string') : [];
    const next = typeof r['nextPageLink'] === 'string' ? r['nextPageLink'] : undefined;
    const split = fast ? { starts: fast.starts, ends: fast.ends } : undefined;
    return new ResultPage(links, next, longField(r, 'queryTimeMicros'), text, start, split, spans);
  }

  /** The documents of `links[from]` to `links[to - 1]` that the page holds, parsed now, in page order. */
  documentsBetween(from: number, to: number): Doc[] {
    const out: Doc[] = [];
    for (let k = from; k < Math.min(to, this.links.length); k++) pushDocument(out, this.documentAt(k, this.links[k]!));
    return out;
  }

  /** The documents of `links` that the page holds, parsed now, in `links` order. */
  documents(links: readonly string[]): Doc[] {
    const out: Doc[] = [];
    for (const link of links) {
      let k: number | undefined;
      if (this.split) {
        this.order ??= new Map(this.links.map((l, i) => [l, i]));
        k = this.order.get(link);
        if (k === undefined) continue;
      }
      pushDocument(out, this.documentAt(k, link));
    }
    return out;
  }

  /** The parsed value of `link`'s document (`k`: its index in page order, when split); undefined when the page has none. */
  private documentAt(k: number | undefined, link: string): unknown {
    const split = this.split;
    if (split && k !== undefined) {
      // Split spans count only in page order: each earlier one must parse first (see the class comment).
      try {
        for (let j = this.proven + 1; j < k; j++) JSON.parse(this.text.slice(split.starts[j], split.ends[j]));
        if (k > this.proven) this.proven = k - 1;
        const d = JSON.parse(this.text.slice(split.starts[k], split.ends[k])) as unknown;
        if (k > this.proven) this.proven = k;
        return d;
      } catch {
        // A boundary was wrong (or the page is damaged): find every span the slow way.
        this.split = undefined;
        this.order = undefined;
      }
    }
    try {
      if (this.spans.size === 0 && this.documentsAt !== undefined) scanSpans(this.text, this.documentsAt, this.spans);
      const span = this.spans.get(link);
      return span ? (JSON.parse(this.text.slice(span.start, span.end)) as unknown) : undefined;
    } catch (cause) {
      throw kryptonError('REMOTE', `the source answered a query page with an unreadable document ${link}: ${(cause as Error).message}`, { cause });
    }
  }
}

function pushDocument(out: Doc[], d: unknown): void {
  if (d && typeof d === 'object' && !Array.isArray(d)) out.push(d as Doc);
}

function isEmptyArray(v: unknown): boolean {
  return Array.isArray(v) && v.length === 0;
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}

/** Where one document's value lies in the page's text. */
interface Span {
  start: number;
  end: number;
}

/** A page split at its links (splitAtLinks): the links, where they lie, and each document's span in their order. */
interface Split {
  links: string[];
  linksStart: number;
  linksEnd: number;
  starts: Int32Array;
  ends: Int32Array;
  /** The index past the documents object. */
  end: number;
}

/** The spans of the documents object at `start`, following JSON's grammar; returns the index past it. */
function scanSpans(text: string, start: number, spans: Map<string, Span>): number {
  return forEachMember(text, start, (key, from) => {
    const to = skipValue(text, from);
    spans.set(key, { start: from, end: to });
    return to;
  })!;
}

/**
 * The spans of the documents object at `start` when the page is laid out as krypton writes it: no
 * whitespace, `documentLinks` (before the documents) naming them in the same order. Undefined when
 * it is not. The last document is scanned, so the object's end is exact; the others are not proven
 * here (see ResultPage).
 */
function splitAtLinks(text: string, start: number): Split | undefined {
  const linksKey = text.lastIndexOf('"documentLinks":[', start);
  if (linksKey < 0) return undefined;
  const linksStart = linksKey + '"documentLinks":'.length;
  const linksEnd = skipValue(text, linksStart);
  if (linksEnd > start) return undefined;
  const links = JSON.parse(text.slice(linksStart, linksEnd)) as unknown[];
  const n = links.length;
  const starts = new Int32Array(n);
  const ends = new Int32Array(n);
  let at = start + 1;
  if (n === 0) return text.charCodeAt(at) === CLOSE_OBJECT ? { links: [], linksStart, linksEnd, starts, ends, end: at + 1 } : undefined;
  const seen = new Set<string>();
  let key = typeof links[0] === 'string' ? JSON.stringify(links[0]) : '';
  for (let k = 0; k < n; k++) {
    const link = links[k];
    if (typeof link !== 'string' || seen.has(link) || !text.startsWith(key, at) || text.charCodeAt(at + key.length) !== COLON) return undefined;
    seen.add(link);
    const from = at + key.length + 1;
    starts[k] = from;
    if (k === n - 1) {
      const to = skipValue(text, from);
      if (text.charCodeAt(to) !== CLOSE_OBJECT) return undefined;
      ends[k] = to;
      return { links: links as string[], linksStart, linksEnd, starts, ends, end: to + 1 };
    }
    const next = links[k + 1];
    if (typeof next !== 'string') return undefined;
    key = JSON.stringify(next);
    const to = text.indexOf(`,${key}:`, from);
    if (to < 0) return undefined;
    ends[k] = to;
    at = to + 1;
  }
  return undefined;
}

const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;
const COMMA = 44;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;

/** Where the value of `results.documents` starts in a QueryTask's text, if it is an object. */
function documentsStart(text: string): number | undefined {
  const results = memberValue(text, skipSpace(text, 0), 'results');
  if (results === undefined || text.charCodeAt(results) !== OPEN_OBJECT) return undefined;
  const start = memberValue(text, results, 'documents');
  return start !== undefined && text.charCodeAt(start) === OPEN_OBJECT ? start : undefined;
}

/**
 * Where the value of member `name` of the object at `at` starts; undefined without one. Only the
 * values before it are skipped: `results` and `documents` hold the whole page, and scanning them to
 * their end, only to stop there, read every page's text twice more in JavaScript.
 */
function memberValue(text: string, at: number, name: string): number | undefined {
  let found: number | undefined;
  forEachMember(text, at, (key, valueStart) => {
    if (key !== name) return skipValue(text, valueStart);
    found = valueStart;
    return false;
  });
  return found;
}

/**
 * Calls `visit` for each member of the object starting at `at`, with its key and where its value
 * starts; `visit` returns where the value ends, or false to stop there (it skips only the values it
 * needs past). Returns the index past the object, or undefined when stopped.
 */
function forEachMember(text: string, at: number, visit: (key: string, valueStart: number) => number | false): number | undefined {
  expect(text, at, OPEN_OBJECT);
  let i = skipSpace(text, at + 1);
  if (text.charCodeAt(i) === CLOSE_OBJECT) return i + 1;
  for (;;) {
    const { key, valueStart } = memberAt(text, i);
    const end = visit(key, valueStart);
    if (end === false) return undefined;
    i = skipSpace(text, end);
    if (text.charCodeAt(i) === CLOSE_OBJECT) return i + 1;
    expect(text, i, COMMA);
    i = skipSpace(text, i + 1);
  }
}

/** The key of the member whose key starts at `i`, and where its value starts. */
function memberAt(text: string, i: number): { key: string; valueStart: number } {
  expect(text, i, QUOTE);
  const keyEnd = skipString(text, i);
  const raw = text.slice(i + 1, keyEnd - 1);
  const key = raw.includes('\\') ? (JSON.parse(text.slice(i, keyEnd)) as string) : raw;
  const colon = skipSpace(text, keyEnd);
  expect(text, colon, COLON);
  return { key, valueStart: skipSpace(text, colon + 1) };
}

/** The index past the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return skipString(text, i);
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j);
      if (d === QUOTE) j = skipString(text, j) - 1;
      else if (d === OPEN_OBJECT || d === OPEN_ARRAY) depth++;
      else if ((d === CLOSE_OBJECT || d === CLOSE_ARRAY) && --depth === 0) return j + 1;
    }
    throw new SyntaxError('unterminated object or array');
  }
  // A number, true, false or null: up to the next delimiter.
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === COMMA || d === CLOSE_OBJECT || d === CLOSE_ARRAY || d <= 32) break;
    j++;
  }
  if (j === i) throw new SyntaxError(`unexpected character at ${i}`);
  return j;
}

/** The index past the string whose opening quote is at `i`. */
function skipString(text: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) throw new SyntaxError('unterminated string');
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    from = q + 1;
  }
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && text.charCodeAt(i) <= 32) i++;
  return i;
}

function expect(text: string, i: number, code: number): void {
  if (text.charCodeAt(i) !== code) throw new SyntaxError(`expected '${String.fromCharCode(code)}' at ${i}`);
}
