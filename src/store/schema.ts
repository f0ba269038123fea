import { createHash } from 'node:crypto';

/**
 * The on-disk format of a sandbox index (SQLite, WAL). Bump FORMAT_VERSION on any incompatible
 * change and add a migration step in sqlite-store.ts; a sandbox with a newer format is refused.
 *
 * docs   — every stored version of every document. `latest = 1` marks the newest version of a link.
 *          Built-in fields live in columns; the full document JSON in `json`.
 * props  — the queryable user fields of each version, flattened (`a.b`, `tags.item`): one row per
 *          value, string values in `sval`, numbers in `nval`. Queries never parse `json`. Clustered
 *          by (doc_id, name) so purges and sort-value lookups are range reads.
 * long_strings — the whole text of a string value longer than INDEXED_STRING_CHARS: its props row
 *          holds only the first INDEXED_STRING_CHARS (indexedPrefix) in `sval` and this row's id in
 *          `long_id`. Why (format 2): props and its indexes are b-trees whose rows may hold about
 *          4 KB of a 16 KB page; a longer value took a whole 16 KB overflow page in each of them
 *          (a 5 KB string: 83 KB a document in format 1). A rowid table keeps such text in place.
 *          `hash` (longStringHash) finds a whole value at once, however many share its prefix.
 *          Removed with the props row that refers to it (trigger props_long_gone).
 *
 * Format history: 1 (releases up to 0.1.x) stored every string value whole in props; 2 adds
 * long_strings and props.long_id. openIndex upgrades a format-1 index in place (upgradeFormat1).
 */
export const FORMAT_VERSION = 2;

/**
 * String values up to this many UTF-16 code units are indexed whole in props.sval; a longer one is
 * indexed by its first this-many (indexedPrefix) with its whole text in long_strings. 256 keeps
 * the index rows small (a prefix of 256 characters still tells values apart) and every index row
 * well within a page.
 */
export const INDEXED_STRING_CHARS = 256;

/**
 * What props.sval holds of a string: the string itself up to INDEXED_STRING_CHARS code units; else
 * its first INDEXED_STRING_CHARS, or one fewer where the last would split a surrogate pair. So the
 * prefix of a longer value is at least INDEXED_STRING_CHARS - 1 long, and two values with the same
 * first INDEXED_STRING_CHARS code units have the same prefix.
 */
export function indexedPrefix(s: string): string {
  return stringHead(s, INDEXED_STRING_CHARS);
}

/** The first `max` UTF-16 code units of `s`, one fewer where the last would split a surrogate pair. */
export function stringHead(s: string, max: number): string {
  if (s.length <= max) return s;
  const last = s.charCodeAt(max - 1);
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** The hash of a long string that long_strings_by_hash indexes: the first 48 bits of its SHA-256. */
export function longStringHash(s: string): number {
  return createHash('sha256').update(s).digest().readUIntBE(0, 6);
}

/**
 * The whole text of a props row's string value (`alias`: the props table's alias in the query):
 * `sval` itself unless it is the prefix of a long string.
 */
export function wholeString(alias: string): string {
  return `CASE WHEN ${alias}.long_id IS NULL THEN ${alias}.sval ELSE (SELECT value FROM long_strings WHERE id = ${alias}.long_id) END`;
}

const LONG_STRINGS_DDL = `CREATE TABLE IF NOT EXISTS long_strings (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS long_strings_by_hash ON long_strings(hash);`;

export const SCHEMA_DDL = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
  id INTEGER PRIMARY KEY,
  link TEXT NOT NULL,
  factory TEXT NOT NULL,
  version INTEGER NOT NULL,
  kind TEXT,
  update_time INTEGER NOT NULL,
  action TEXT NOT NULL,
  expiration INTEGER NOT NULL DEFAULT 0,
  owner TEXT,
  auth_principal TEXT,
  latest INTEGER NOT NULL,
  json TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS docs_link_version ON docs(link, version);
CREATE INDEX IF NOT EXISTS docs_latest_by_time ON docs(factory, update_time, link) WHERE latest = 1;
DROP INDEX IF EXISTS docs_latest_by_version;
DROP INDEX IF EXISTS docs_latest_by_version_id;
CREATE INDEX IF NOT EXISTS docs_latest_by_version_desc ON docs(factory, version DESC, id) WHERE latest = 1;
CREATE INDEX IF NOT EXISTS docs_expiring ON docs(expiration) WHERE latest = 1 AND expiration > 0;
CREATE TABLE IF NOT EXISTS props (
  doc_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sval TEXT,
  nval,
  long_id INTEGER,
  PRIMARY KEY (doc_id, name, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS props_by_string_2 ON props(name, sval, doc_id, long_id) WHERE sval IS NOT NULL;
CREATE INDEX IF NOT EXISTS props_by_number ON props(name, nval, doc_id) WHERE nval IS NOT NULL;
${LONG_STRINGS_DDL}
CREATE TRIGGER IF NOT EXISTS props_long_gone AFTER DELETE ON props WHEN old.long_id IS NOT NULL
BEGIN DELETE FROM long_strings WHERE id = old.long_id; END;
`;

/**
 * The first steps from format 1 to 2 (see SqliteStore.open): the old string index goes first, so
 * moving the long values does not update it; SCHEMA_DDL then builds the new one and the trigger.
 */
export const UPGRADE_FORMAT_1_DDL = `DROP INDEX IF EXISTS props_by_string; ALTER TABLE props ADD COLUMN long_id INTEGER; ${LONG_STRINGS_DDL}`;

/** Built-in document fields that are columns of `docs` (alias `d`), as queries see them. */
export const BUILTIN_COLUMNS: Readonly<Record<string, { column: string; numeric: boolean }>> = Object.freeze({
  documentSelfLink: { column: 'd.link', numeric: false },
  documentKind: { column: 'd.kind', numeric: false },
  documentVersion: { column: 'd.version', numeric: true },
  documentUpdateTimeMicros: { column: 'd.update_time', numeric: true },
  documentUpdateAction: { column: 'd.action', numeric: false },
  documentExpirationTimeMicros: { column: 'd.expiration', numeric: true },
  documentAuthPrincipalLink: { column: 'd.auth_principal', numeric: false },
});
