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
 */
export class ResultPage {
  /** Spans found by splitting at the next link (see above), proven up to this index; -1: none. */
  private proven = -1;

  private constructor(
    readonly links: string[],
    readonly nextPageLink: string | undefined,
    /** The source's time for this page's query, when it reports one. */
    readonly queryTimeMicros: number | undefined,
    private readonly text: string,
    /** Where `results.documents` starts in `text`, if the page has documents. */
    private readonly documentsAt: number | undefined,
    /** `results.documents`: link → [start, end) of its value in `text`, and its index in page order. */
    private spans: Map<string, Span>,
    /** The spans in page order when they were found by splitting (unproven); undefined when scanned. */
    private split: Span[] | undefined,
  ) {}

  /** Reads a QueryTask's JSON text; throws a REMOTE error when it is not one. */
  static parse(text: string): ResultPage {
    let task: Doc;
    let spans = new Map<string, Span>();
    let split: Span[] | undefined;
    let start: number | undefined;
    try {
      start = documentsStart(text);
      if (start === undefined) task = JSON.parse(text) as Doc;
      else {
        // Everything but the documents is small: parsed as usual, with `{}` in their place. After a
        // split at a wrong boundary the documents' end is wrong too, and the rest does not parse.
        const rest = (end: number) => JSON.parse(`${text.slice(0, start)}{}${text.slice(end)}`) as Doc;
        const fast = splitAtLinks(text, start);
        let parsed: Doc | undefined;
        if (fast) {
          try {
            parsed = rest(fast.end);
            spans = fast.spans;
            split = [...spans.values()];
          } catch {
            /* scanned below */
          }
        }
        task = parsed ?? rest(scanSpans(text, start, spans));
      }
    } catch (cause) {
      throw kryptonError('REMOTE', `the source answered a query page that is not a QueryTask: ${(cause as Error).message}`, { cause });
    }
    const r = (task?.['results'] ?? {}) as Doc;
    const links = Array.isArray(r['documentLinks']) ? (r['documentLinks'] as unknown[]).filter((l): l is string => typeof l === 'string') : [];
    const next = typeof r['nextPageLink'] === 'string' ? r['nextPageLink'] : undefined;
    return new ResultPage(links, next, longField(r, 'queryTimeMicros'), text, start, spans, split);
  }

  /** The documents of `links` that the page holds, parsed now, in `links` order. */
  documents(links: readonly string[]): Doc[] {
    const out: Doc[] = [];
    for (const link of links) {
      const span = this.spans.get(link);
      if (!span) continue;
      const d = this.parseSpan(span, link);
      if (d && typeof d === 'object' && !Array.isArray(d)) out.push(d as Doc);
    }
    return out;
  }

  private parseSpan(span: Span, link: string): unknown {
    if (this.split) {
      // Split spans count only in page order: each earlier one must parse first (see the class comment).
      try {
        for (let k = this.proven + 1; k < span.index; k++) JSON.parse(this.text.slice(this.split[k]!.start, this.split[k]!.end));
        this.proven = Math.max(this.proven, span.index - 1);
        const d = JSON.parse(this.text.slice(span.start, span.end)) as unknown;
        this.proven = Math.max(this.proven, span.index);
        return d;
      } catch {
        // A boundary was wrong (or the page is damaged): find every span the slow way.
        const spans = new Map<string, Span>();
        scanSpans(this.text, this.documentsAt!, spans);
        this.spans = spans;
        this.split = undefined;
        const again = spans.get(link);
        if (!again) return undefined;
        return this.parseSpan(again, link);
      }
    }
    try {
      return JSON.parse(this.text.slice(span.start, span.end)) as unknown;
    } catch (cause) {
      throw kryptonError('REMOTE', `the source answered a query page with an unreadable document ${link}: ${(cause as Error).message}`, { cause });
    }
  }
}

/** Where one document's value lies in the page's text, and its place among the page's documents. */
interface Span {
  start: number;
  end: number;
  index: number;
}

/** The spans of the documents object at `start`, following JSON's grammar; returns the index past it. */
function scanSpans(text: string, start: number, spans: Map<string, Span>): number {
  return forEachMember(text, start, (key, from) => {
    const to = skipValue(text, from);
    spans.set(key, { start: from, end: to, index: spans.size });
    return to;
  })!;
}

/**
 * The spans of the documents object at `start` when the page is laid out as krypton writes it: no
 * whitespace, `documentLinks` (before the documents) naming them in the same order. Undefined when
 * it is not. The last document is scanned, so the object's end is exact; the others are not proven
 * here (see ResultPage).
 */
function splitAtLinks(text: string, start: number): { spans: Map<string, Span>; end: number } | undefined {
  const linksKey = text.lastIndexOf('"documentLinks":[', start);
  if (linksKey < 0) return undefined;
  const linksStart = linksKey + '"documentLinks":'.length;
  const linksEnd = skipValue(text, linksStart);
  if (linksEnd > start) return undefined;
  const links = JSON.parse(text.slice(linksStart, linksEnd)) as unknown[];
  const spans = new Map<string, Span>();
  let at = start + 1;
  if (links.length === 0) return text.charCodeAt(at) === CLOSE_OBJECT ? { spans, end: at + 1 } : undefined;
  let key = typeof links[0] === 'string' ? JSON.stringify(links[0]) : '';
  for (let k = 0; k < links.length; k++) {
    const link = links[k];
    if (typeof link !== 'string' || spans.has(link) || !text.startsWith(key, at) || text.charCodeAt(at + key.length) !== COLON) return undefined;
    const from = at + key.length + 1;
    if (k === links.length - 1) {
      const to = skipValue(text, from);
      if (text.charCodeAt(to) !== CLOSE_OBJECT) return undefined;
      spans.set(link, { start: from, end: to, index: k });
      return { spans, end: to + 1 };
    }
    const next = links[k + 1];
    if (typeof next !== 'string') return undefined;
    key = JSON.stringify(next);
    const to = text.indexOf(`,${key}:`, from);
    if (to < 0) return undefined;
    spans.set(link, { start: from, end: to, index: k });
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
