/**
 * The on-disk format of a sandbox index (SQLite, WAL). Bump FORMAT_VERSION on any incompatible
 * change and add a migration step in sqlite-store.ts; a sandbox with a newer format is refused.
 *
 * docs   — every stored version of every document. `latest = 1` marks the newest version of a link.
 *          Built-in fields live in columns; the full document JSON in `json`.
 * props  — the queryable user fields of each version, flattened (`a.b`, `tags.item`): one row per
 *          value, string values in `sval`, numbers in `nval`. Queries never parse `json`. Clustered
 *          by (doc_id, name) so purges and sort-value lookups are range reads.
 */
export const FORMAT_VERSION = 1;

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
  PRIMARY KEY (doc_id, name, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS props_by_string ON props(name, sval, doc_id) WHERE sval IS NOT NULL;
CREATE INDEX IF NOT EXISTS props_by_number ON props(name, nval, doc_id) WHERE nval IS NOT NULL;
`;

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
