import type Database from 'better-sqlite3';
import { useRecent } from '../core/recently-used.js';

/** Prepared statements of one connection by SQL text, least recently used dropped past `size`. */
export class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    private readonly size: number,
  ) {}

  get(sql: string): Database.Statement {
    return useRecent(this.statements, sql, () => this.db.prepare(sql), this.size);
  }
}
