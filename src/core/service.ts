import { fail } from './errors.js';
import type { Operation, Reply } from './operation.js';

/** Xenon's utility suffixes: every service path P also answers P/<suffix>. */
export const UTILITY_SUFFIXES = new Set(['stats', 'template', 'config', 'available', 'subscriptions', 'ui', 'synchronization']);

/** Child ids a document cannot take: they name a utility service of the factory (Xenon §6.2). */
export const RESERVED_IDS: ReadonlySet<string> = new Set([...UTILITY_SUFFIXES, 'replication']);

/** Xenon's id rule: A–Z a–z 0–9 and - _ . ~ ? # [ ] @ ! $ & ' ( ) * + , ; = : */
const VALID_ID = /^[A-Za-z0-9\-_.~?#[\]@!$&'()*+,;=:]+$/;

/**
 * The child id a client's `documentSelfLink` names under `parentLink`: a bare id, `/id`, or the full
 * child path (Xenon §5.1). 400 for an id outside Xenon's characters or one naming a utility service
 * (Xenon fails that start with a 500; the document could never be addressed).
 */
export function childId(parentLink: string, selfLink: unknown): string {
  if (typeof selfLink !== 'string') return fail('VALIDATION', 'documentSelfLink must be a string');
  const id = selfLink.startsWith(`${parentLink}/`) ? selfLink.slice(parentLink.length + 1) : selfLink.startsWith('/') ? selfLink.slice(1) : selfLink;
  if (!VALID_ID.test(id)) fail('VALIDATION', `${selfLink} is an invalid id`);
  checkNotReserved(parentLink, selfLink, id);
  return id;
}

export function checkNotReserved(parentLink: string, selfLink: string, id: string): void {
  if (RESERVED_IDS.has(id)) fail('VALIDATION', `${selfLink} is an invalid id: ${id} names a utility service of ${parentLink}`);
}

/** Anything the router can dispatch to. Factories also take requests for their children. */
export interface Service {
  readonly link: string;
  /** Handles a request addressed to `link` itself. */
  handle(op: Operation): Promise<Reply>;
  /** Factories only: handles `<link>/<id>` (suffix: a utility suffix after the id, if any). */
  handleChild?(op: Operation, childLink: string, suffix: string | undefined): Promise<Reply>;
  /** Handles `<link>/<suffix>` for a utility suffix; services without it get the generic ones. */
  handleUtility?(op: Operation, suffix: string): Promise<Reply>;
}

/**
 * Statistics a client may add to one service (POST or PUT to `<link>/stats` with a new `name`):
 * each is kept for the service's life, so their number and their names' length are bounded.
 */
export const MAX_CLIENT_STATS = 1_000;
export const MAX_STAT_NAME_LENGTH = 256;

/** Per-service request statistics in Xenon's ServiceStat shape (`GETrequestCount`, …). */
export class ServiceStats {
  private readonly entries = new Map<string, { latestValue: number; accumulatedValue: number; version: number; lastUpdateMicrosUtc: number }>();

  has(name: string): boolean {
    return this.entries.has(name);
  }

  get size(): number {
    return this.entries.size;
  }

  adjust(name: string, delta: number, nowMicros: number): void {
    const e = this.entries.get(name) ?? { latestValue: 0, accumulatedValue: 0, version: 0, lastUpdateMicrosUtc: 0 };
    e.latestValue += delta;
    e.accumulatedValue += delta;
    e.version++;
    e.lastUpdateMicrosUtc = nowMicros;
    this.entries.set(name, e);
  }

  set(name: string, value: number, nowMicros: number): void {
    const e = this.entries.get(name) ?? { latestValue: 0, accumulatedValue: 0, version: 0, lastUpdateMicrosUtc: 0 };
    e.latestValue = value;
    e.accumulatedValue += value;
    e.version++;
    e.lastUpdateMicrosUtc = nowMicros;
    this.entries.set(name, e);
  }

  get(name: string): number | undefined {
    return this.entries.get(name)?.latestValue;
  }

  /** The ServiceStats document (entries sorted by name, as Xenon emits them). */
  /** The stats as Xenon's ServiceStats document; `keep` selects entries (`$filter`). */
  toDocument(selfLink: string, owner: string, keep?: (name: string, latestValue: number) => boolean): Record<string, unknown> {
    const kind = 'com:vmware:xenon:common:ServiceStats';
    const entries: Record<string, unknown> = {};
    for (const name of [...this.entries.keys()].sort()) {
      const e = this.entries.get(name)!;
      if (keep && !keep(name, e.latestValue)) continue;
      entries[name] = { name, ...e, kind: `${kind}:ServiceStat` };
    }
    if (this.entries.size === 0) return { kind, entries, documentVersion: 0, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0 };
    return { kind, entries, documentVersion: 0, documentKind: kind, documentSelfLink: selfLink, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0, documentOwner: owner };
  }
}
