import { kryptonError } from '../core/errors.js';
import { longField, type Doc } from '../core/document.js';

/**
 * One page of a source query (a QueryTask's `results`), its documents left as text until asked
 * for. A 10,000-document page parsed at once is some 15 MB of objects that all outlive several
 * young-generation collections (each copies them) and then load the old generation; parsed a slice
 * at a time, each document's objects die young. Works on any JSON layout (Xenon's pretty-printed
 * pages too): the scan follows JSON's grammar, it does not expect krypton's byte layout.
 */
export class ResultPage {
  private constructor(
    readonly links: string[],
    readonly nextPageLink: string | undefined,
    /** The source's time for this page's query, when it reports one. */
    readonly queryTimeMicros: number | undefined,
    private readonly text: string,
    /** `results.documents`: link → [start, end) of its value in `text`. */
    private readonly spans: Map<string, [number, number]>,
  ) {}

  /** Reads a QueryTask's JSON text; throws a REMOTE error when it is not one. */
  static parse(text: string): ResultPage {
    let task: Doc;
    const spans = new Map<string, [number, number]>();
    try {
      const start = documentsStart(text);
      if (start === undefined) task = JSON.parse(text) as Doc;
      else {
        const end = forEachMember(text, start, (key, from, to) => {
          spans.set(key, [from, to]);
          return true;
        });
        // Everything but the documents is small: parsed as usual, with `{}` in their place.
        task = JSON.parse(`${text.slice(0, start)}{}${text.slice(end)}`) as Doc;
      }
    } catch (cause) {
      throw kryptonError('REMOTE', `the source answered a query page that is not a QueryTask: ${(cause as Error).message}`, { cause });
    }
    const r = (task?.['results'] ?? {}) as Doc;
    const links = Array.isArray(r['documentLinks']) ? (r['documentLinks'] as unknown[]).filter((l): l is string => typeof l === 'string') : [];
    const next = typeof r['nextPageLink'] === 'string' ? r['nextPageLink'] : undefined;
    return new ResultPage(links, next, longField(r, 'queryTimeMicros'), text, spans);
  }

  /** The documents of `links` that the page holds, parsed now, in `links` order. */
  documents(links: readonly string[]): Doc[] {
    const out: Doc[] = [];
    for (const link of links) {
      const span = this.spans.get(link);
      if (!span) continue;
      let d: unknown;
      try {
        d = JSON.parse(this.text.slice(span[0], span[1]));
      } catch (cause) {
        throw kryptonError('REMOTE', `the source answered a query page with an unreadable document ${link}: ${(cause as Error).message}`, { cause });
      }
      if (d && typeof d === 'object' && !Array.isArray(d)) out.push(d as Doc);
    }
    return out;
  }
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

/** Where the value of member `name` of the object at `at` starts; undefined without one. */
function memberValue(text: string, at: number, name: string): number | undefined {
  let found: number | undefined;
  forEachMember(text, at, (key, valueStart) => {
    if (key === name) found = valueStart;
    return found === undefined;
  });
  return found;
}

/** Calls `visit` for each member of the object starting at `at` until it returns false; returns the index past the object. */
function forEachMember(text: string, at: number, visit: (key: string, valueStart: number, valueEnd: number) => boolean): number {
  expect(text, at, OPEN_OBJECT);
  let i = skipSpace(text, at + 1);
  if (text.charCodeAt(i) === CLOSE_OBJECT) return i + 1;
  for (;;) {
    expect(text, i, QUOTE);
    const keyEnd = skipString(text, i);
    const raw = text.slice(i + 1, keyEnd - 1);
    const key = raw.includes('\\') ? (JSON.parse(text.slice(i, keyEnd)) as string) : raw;
    i = skipSpace(text, keyEnd);
    expect(text, i, COLON);
    const start = skipSpace(text, i + 1);
    const end = skipValue(text, start);
    if (!visit(key, start, end)) return end;
    i = skipSpace(text, end);
    if (text.charCodeAt(i) === CLOSE_OBJECT) return i + 1;
    expect(text, i, COMMA);
    i = skipSpace(text, i + 1);
  }
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
