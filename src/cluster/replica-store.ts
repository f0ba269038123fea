import { longField, type Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import type { DocumentWriter, Pending } from '../services/document-writer.js';
import type { StoredVersion } from '../store/sqlite-store.js';
import type { ReplicatedVersion, ReplicationResult, Revocation } from './node-group-messages.js';

/** The ordering synchronization uses (spec B.9): epoch, then version, then update time. */
export interface Stamp {
  epoch: number;
  version: number;
  updateTime: number;
}

const EPOCH = /"documentEpoch":(\d+)/;

export function storedStamp(v: StoredVersion): Stamp {
  return { epoch: Number(EPOCH.exec(v.json)?.[1] ?? 0), version: v.version, updateTime: v.updateTime };
}

export function docStamp(d: Doc): Stamp {
  return { epoch: longField(d, 'documentEpoch') ?? 0, version: longField(d, 'documentVersion') ?? 0, updateTime: longField(d, 'documentUpdateTimeMicros') ?? 0 };
}

/**
 * True when `a` should replace `b`: a higher epoch, else a higher version, else (krypton) a later
 * update time. Xenon calls equal versions with different content within 60 s a conflict and takes
 * the peer's copy; a fixed order lets every node reach the same answer on its own.
 */
export function isNewer(a: Stamp, b: Stamp | undefined): boolean {
  if (!b) return true;
  if (a.epoch !== b.epoch) return a.epoch > b.epoch;
  if (a.version !== b.version) return a.version > b.version;
  return a.updateTime > b.updateTime;
}

function revocationKey(link: string, version: number, updateTime: number): string {
  return `${version}:${updateTime}:${link}`;
}

/**
 * One page of a factory's latest versions in link order, as `[link, epoch, version, updateTime]`
 * (expired documents left out). Served to peers, and read locally to compare with their pages.
 */
export function summaryPage(host: Host, factoryLink: string, afterLink: string, limit: number): Array<[string, number, number, number]> {
  const rows = host.store.all<{ link: string; version: number; t: number; e: number | null }>(
    `SELECT link, version, update_time AS t, json_extract(json, '$.documentEpoch') AS e FROM docs
     WHERE factory = ? AND latest = 1 AND link > ? AND (expiration = 0 OR expiration > ?) ORDER BY link LIMIT ?`,
    [factoryLink, afterLink, host.clock.nowMicros(), limit],
  );
  return rows.map((r) => [r.link, r.e ?? 0, r.version, r.t]);
}

const DDL = `CREATE TABLE IF NOT EXISTS cluster_revocations (
  link TEXT NOT NULL, version INTEGER NOT NULL, update_time INTEGER NOT NULL, factory TEXT NOT NULL, revoked_at INTEGER NOT NULL,
  PRIMARY KEY (link, version, update_time)) WITHOUT ROWID`;

/**
 * How a node stores versions it did not compute itself: replicated from an owner or pulled by
 * synchronization. Handlers never run; the document is stored as the owner made it. Also keeps the
 * revocations — versions of writes that failed for lack of quorum — so that such a version, if a
 * peer still holds it, never comes back through synchronization (DECISIONS: node groups).
 */
export class ReplicaStore {
  private readonly stmts;
  /** Revocations are few (failed writes): kept in memory too, checked on every replicated version. */
  private readonly revoked = new Set<string>();

  constructor(private readonly host: Host) {
    const db = host.store.db;
    db.exec(DDL);
    this.stmts = {
      insert: db.prepare('INSERT OR IGNORE INTO cluster_revocations (link, version, update_time, factory, revoked_at) VALUES (?, ?, ?, ?, ?)'),
      byFactory: db.prepare('SELECT link, version, update_time AS updateTimeMicros FROM cluster_revocations WHERE factory = ?'),
      all: db.prepare('SELECT link, version, update_time AS updateTimeMicros FROM cluster_revocations'),
    };
    for (const r of this.stmts.all.all() as Revocation[]) this.revoked.add(revocationKey(r.link, r.version, r.updateTimeMicros));
  }

  isRevoked(link: string, s: Stamp): boolean {
    return this.revoked.size > 0 && this.revoked.has(revocationKey(link, s.version, s.updateTime));
  }

  revocations(factoryLink: string): Revocation[] {
    return this.stmts.byFactory.all(factoryLink) as Revocation[];
  }

  /** Records revocations durably (the owner does this before it answers the failed write). */
  record(factoryLink: string, revs: readonly Revocation[]): void {
    const now = this.host.clock.nowMicros();
    this.host.store.transaction(() => {
      for (const r of revs) this.stmts.insert.run(r.link, r.version, r.updateTimeMicros, factoryLink, now);
    });
    for (const r of revs) this.revoked.add(revocationKey(r.link, r.version, r.updateTimeMicros));
  }

  /** Records revocations and removes the revoked versions this node holds as latest. */
  async revoke(factoryLink: string, revs: readonly Revocation[]): Promise<void> {
    const fresh = revs.filter((r) => !this.isRevoked(r.link, { epoch: 0, version: r.version, updateTime: r.updateTimeMicros }));
    if (fresh.length === 0) return;
    this.record(factoryLink, fresh);
    const links = [...new Set(fresh.map((r) => r.link))].sort();
    const releases: Array<() => void> = [];
    for (const l of links) releases.push(await this.host.locks.acquire(l));
    try {
      for (const r of fresh) {
        const cur = this.host.store.getLatest(r.link);
        if (cur && cur.version === r.version && cur.updateTime === r.updateTimeMicros) this.host.store.removeVersionsFrom(r.link, r.version);
      }
    } finally {
      for (const release of releases) release();
    }
  }

  /**
   * Applies the versions of one write. `replicate` (from the owner): stored when they continue this
   * node's copy; a copy here that the owner has not seen answers `stale` with that copy, so the owner
   * adopts it and redoes the write. `synch`: stored when newer, else ignored.
   */
  async apply(writer: DocumentWriter, versions: readonly ReplicatedVersion[], mode: 'replicate' | 'synch', lockHeld = false): Promise<ReplicationResult> {
    const links = [...new Set(versions.map((v) => v.doc['documentSelfLink'] as string))].sort();
    const releases: Array<() => void> = [];
    if (!lockHeld) for (const l of links) releases.push(await this.host.locks.acquire(l));
    try {
      const pending: Pending[] = [];
      const current = new Map<string, Stamp | undefined>();
      for (const v of versions) {
        const link = v.doc['documentSelfLink'] as string;
        const s = docStamp(v.doc);
        if (this.isRevoked(link, s)) {
          if (mode === 'synch') continue;
          return { status: 'revoked' };
        }
        let cur: Stamp | undefined;
        if (current.has(link)) cur = current.get(link);
        else {
          const stored = this.host.store.getLatest(link);
          cur = stored ? storedStamp(stored) : undefined;
          if (mode === 'replicate' && stored && !v.purgeFirst && !isNewer(s, cur) && !(cur!.version === s.version && cur!.updateTime === s.updateTime)) {
            return { status: 'stale', current: JSON.parse(stored.json) as Doc };
          }
        }
        if (cur && cur.version === s.version && cur.updateTime === s.updateTime) continue;
        const accept = mode === 'replicate' ? !cur || isNewer(s, cur) || (v.purgeFirst && s.epoch >= cur.epoch) : isNewer(s, cur);
        if (!accept) continue;
        if (cur && !v.purgeFirst && !current.has(link) && cur.version >= s.version) this.host.store.removeVersionsFrom(link, s.version);
        pending.push({ doc: v.doc, purgeFirst: v.purgeFirst, isNew: !cur && !current.has(link) });
        current.set(link, s);
      }
      await writer.commit(pending);
      return { status: 'ok' };
    } finally {
      for (const release of releases) release();
    }
  }
}
