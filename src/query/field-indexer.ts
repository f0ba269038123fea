/**
 * Flattens a document's queryable user fields into index rows (spec §8.3), the `props` table of
 * store/schema.ts: `a.b` for nested objects and map entries, `tags.item` for collection items,
 * strings and booleans as text, numbers as numbers (a number is never also a term, as in Xenon).
 */

/** One indexed value: string/boolean terms in `s`, numbers in `n` (exactly one is set). */
export interface IndexedField {
  name: string;
  s: string | null;
  n: number | null;
}

export interface IndexOptions {
  /**
   * Top-level (or dotted) field names indexed with Xenon's FIXED_ITEM_NAME: when such a field is an
   * object whose values are all strings (a `Map<String,String>`), each key and each value is also
   * indexed under the field's own name, e.g. `keyValues` = 'k1' and `keyValues` = 'v1'.
   */
  fixedItemNameFields?: readonly string[];
}

/** Nesting levels below a top-level field that are still indexed. */
export const MAX_INDEX_DEPTH = 8;
/** Rows indexed per document at most; further values are not queryable. */
export const MAX_INDEXED_FIELDS = 1000;

const ITEM = 'item';

/**
 * The index rows for one document version. Built-in fields (every key starting with `document`)
 * are skipped (they are columns of `docs`); null and undefined values are not indexed.
 *
 * @example indexFields({ name: 'a', tags: ['x'], n: { c: 2 } })
 *   // → [{name:'name',s:'a',n:null}, {name:'tags.item',s:'x',n:null}, {name:'n.c',s:null,n:2}]
 */
export function indexFields(doc: Record<string, unknown>, options: IndexOptions = {}): IndexedField[] {
  const collector = new Collector(new Set(options.fixedItemNameFields ?? []));
  for (const key in doc) {
    if (key.startsWith('document')) continue;
    collector.walk(key, doc[key], 0);
    if (collector.full) break;
  }
  return collector.rows;
}

/**
 * Walks a document. A value can repeat only where one name holds several values: under a collection
 * (`tags.item`), a FIXED_ITEM_NAME map, or a key written with a dot (`"a.b"` beside `a: {b}`). Only
 * there are values checked against those already indexed (`seen`, made on first use): most
 * documents index each name once and need no set.
 */
class Collector {
  readonly rows: IndexedField[] = [];
  private seen: Set<string> | undefined;

  constructor(private readonly fixedItemNames: ReadonlySet<string>) {}

  get full(): boolean {
    return this.rows.length >= MAX_INDEXED_FIELDS;
  }

  walk(name: string, value: unknown, depth: number, mayRepeat = name.includes('.')): void {
    if (value === null || value === undefined || this.full) return;
    switch (typeof value) {
      case 'string':
        return this.add(name, value, null, mayRepeat);
      case 'boolean':
        return this.add(name, value ? 'true' : 'false', null, mayRepeat);
      case 'number':
        if (Number.isFinite(value)) this.add(name, null, value, mayRepeat);
        return;
      case 'bigint':
        return this.add(name, null, Number(value), mayRepeat);
      case 'object':
        if (depth >= MAX_INDEX_DEPTH) return;
        if (Array.isArray(value)) {
          for (const item of value) this.walk(`${name}.${ITEM}`, item, depth + 1, true);
          return;
        }
        for (const k in value as Record<string, unknown>) this.walk(`${name}.${k}`, (value as Record<string, unknown>)[k], depth + 1, true);
        if (this.fixedItemNames.has(name)) this.fixedItems(name, value as Record<string, unknown>);
        return;
      default:
        return;
    }
  }

  /** Xenon FIXED_ITEM_NAME on a Map<String,String>: keys and values under the field's own name. */
  private fixedItems(name: string, map: Record<string, unknown>): void {
    const entries = Object.entries(map).filter(([, v]) => v !== null && v !== undefined);
    if (!entries.every(([, v]) => typeof v === 'string')) return;
    for (const [k, v] of entries) {
      this.add(name, k, null, true);
      this.add(name, v as string, null, true);
    }
  }

  private add(name: string, s: string | null, n: number | null, mayRepeat: boolean): void {
    if (this.full) return;
    if (mayRepeat) {
      const key = s !== null ? `${name}\u0000s\u0000${s}` : `${name}\u0000n\u0000${n}`;
      this.seen ??= new Set();
      if (this.seen.has(key)) return;
      this.seen.add(key);
    }
    this.rows.push({ name, s, n });
  }
}
