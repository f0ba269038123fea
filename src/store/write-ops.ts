import { indexFields, type IndexedField } from '../query/field-indexer.js';
import type { NewVersion, RetentionPolicy, SqliteStore } from './sqlite-store.js';

/** A version as shipped to the writer: the queryable fields are derived from `json` there. */
export interface WireVersion extends Omit<NewVersion, 'fields'> {
  fields?: readonly IndexedField[];
  fixedItemNameFields?: readonly string[];
  /**
   * The built-ins above (link, version, kind, update time, action, expiration, owner, principal)
   * are those of `json`: its log record leaves them out, the writer reads them from the document.
   */
  inJson?: boolean;
  /** `json` parsed (by the record decoder, which needs the built-ins): not parsed a second time. */
  parsed?: Record<string, unknown>;
}

/** One index mutation, plain data so it can cross to the writer thread. */
export type WriteOp =
  | { t: 'write'; v: WireVersion; retention?: RetentionPolicy; knownNew: boolean }
  | { t: 'purge'; link: string }
  | { t: 'purgeExpired'; now: number }
  | { t: 'meta'; key: string; value: string };

/** The link an op changes (write, purge); undefined for ops that are not about one link. */
export function opLink(op: WriteOp): string | undefined {
  return op.t === 'write' ? op.v.link : op.t === 'purge' ? op.link : undefined;
}

/** The meta key holding the last commit-log sequence number applied to the index. */
export const LOG_SEQ_KEY = 'commitLogSeq';

/** The op recording, in the same transaction, that the log is applied up to `seq`. */
export function logPositionOp(seq: number): WriteOp {
  return { t: 'meta', key: LOG_SEQ_KEY, value: String(seq) };
}

/** Applies ops in order; the caller owns the transaction. */
export function applyOps(store: SqliteStore, ops: readonly WriteOp[]): void {
  for (const op of ops) {
    switch (op.t) {
      case 'write': {
        const v = op.v;
        const fields = v.fields ?? indexFields(v.parsed ?? (JSON.parse(v.json) as Record<string, unknown>), { fixedItemNameFields: v.fixedItemNameFields ?? [] });
        store.write(v, fields, op.retention, op.knownNew);
        break;
      }
      case 'purge':
        store.purge(op.link);
        break;
      case 'purgeExpired':
        store.purgeExpiredInTransaction(op.now);
        break;
      case 'meta':
        store.setMeta(op.key, op.value);
        break;
    }
  }
}

/**
 * Applies groups of ops: all in one transaction (group commit); if that fails, each group alone,
 * so one bad write fails alone. Returns, per group, undefined or the error message. Used for the
 * commit queue's batches (on the writer thread, or in-thread) and for the replay at start.
 * `logSeqs[k]` is the commit-log sequence number of group k (0 or absent: not logged); the index
 * records, in the same transaction, how far the log is applied (LOG_SEQ_KEY).
 *
 * A logged group was already acknowledged, so it must never be skipped: if one cannot be applied,
 * the applier halts. The log position stays just before it, nothing after it is applied (in this
 * batch or any later one), and the next start replays it from the log.
 */
export class BatchApplier {
  /** Why the applier halted (the first acknowledged write it could not apply). */
  halted: string | undefined;

  constructor(private readonly store: SqliteStore) {}

  apply(groups: readonly (readonly WriteOp[])[], logSeqs: readonly number[]): Array<string | undefined> {
    if (this.halted !== undefined) return groups.map(() => `not applied: ${this.halted}`);
    let last = 0;
    for (const seq of logSeqs) if (seq > last) last = seq;
    try {
      this.store.applyTransaction(() => {
        for (const g of groups) applyOps(this.store, g);
        if (last > 0) applyOps(this.store, [logPositionOp(last)]);
      });
      return groups.map(() => undefined);
    } catch {
      // One group at a time, in order, each with its own log position.
      return groups.map((g, k) => {
        if (this.halted !== undefined) return `not applied: ${this.halted}`;
        const seq = logSeqs[k] ?? 0;
        try {
          this.store.applyTransaction(() => {
            applyOps(this.store, g);
            if (seq > 0) applyOps(this.store, [logPositionOp(seq)]);
          });
          return undefined;
        } catch (err) {
          const message = (err as Error).message;
          if (seq > 0) this.halted = message;
          return message;
        }
      });
    }
  }
}
