import type { Host } from '../core/host.js';
import { Pragma } from '../core/operation.js';
import { FactoryService } from '../services/factory-service.js';
import { Kinds, REPLICATION_LINK, nodeBaseUri, type NodeState, type Revocation } from './node-group-messages.js';
import type { PeerClient } from './peer-client.js';

/** Beyond this many missed links a peer is left to synchronization (it re-syncs when it returns). */
const MAX_MISSED_PER_PEER = 100_000;
const PUSH_BATCH = 500;

/**
 * Repairs owed to peers after a write completed without them: versions a peer missed (its
 * replication failed after the quorum had answered) are pushed again, and rollbacks it could not be
 * sent are sent again, at every gossip round while the peer is reachable. When the peer becomes
 * UNAVAILABLE its repairs are dropped: it synchronizes when it returns.
 */
export class RepairQueue {
  private readonly missed = new Map<string, Map<string, Set<string>>>();
  private readonly rollbacks = new Map<string, Array<{ factoryLink: string; revocations: Revocation[] }>>();
  private flushing = false;

  constructor(
    private readonly host: Host,
    private readonly client: PeerClient,
    private readonly timeoutMs: () => number,
  ) {}

  missedUpdate(peerId: string, factoryLink: string, links: readonly string[]): void {
    let byFactory = this.missed.get(peerId);
    if (!byFactory) {
      byFactory = new Map();
      this.missed.set(peerId, byFactory);
    }
    let set = byFactory.get(factoryLink);
    if (!set) {
      set = new Set();
      byFactory.set(factoryLink, set);
    }
    if (set.size + links.length > MAX_MISSED_PER_PEER) {
      this.host.log.warn({ peerId, factoryLink }, 'too many missed updates for a peer; leaving them to synchronization');
      return;
    }
    for (const l of links) set.add(l);
  }

  rollback(peerId: string, factoryLink: string, revocations: Revocation[]): void {
    const list = this.rollbacks.get(peerId) ?? [];
    list.push({ factoryLink, revocations });
    this.rollbacks.set(peerId, list);
  }

  drop(peerId: string): void {
    this.missed.delete(peerId);
  }

  get size(): number {
    let n = 0;
    for (const m of this.missed.values()) for (const s of m.values()) n += s.size;
    for (const r of this.rollbacks.values()) n += r.length;
    return n;
  }

  /** Sends what is owed to the reachable peers (one round; a failure keeps the peer's work for the next). */
  async flush(peers: readonly NodeState[]): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      await Promise.all(
        peers.filter((p) => this.missed.has(p.id) || this.rollbacks.has(p.id)).map((p) => this.flushPeer(p).catch((err) => this.host.log.debug({ err, peer: p.id }, 'repairs postponed'))),
      );
    } finally {
      this.flushing = false;
    }
  }

  private async flushPeer(peer: NodeState): Promise<void> {
    const url = `${nodeBaseUri(peer)}${REPLICATION_LINK}`;
    const send = (body: unknown) => this.client.json(url, { method: 'POST', body, headers: { pragma: Pragma.REPLICATED }, timeoutMs: this.timeoutMs() });
    const rbs = this.rollbacks.get(peer.id) ?? [];
    while (rbs.length > 0) {
      await send({ kind: Kinds.ROLLBACK_REQUEST, ...rbs[0]! });
      rbs.shift();
    }
    this.rollbacks.delete(peer.id);
    for (const [factoryLink, links] of this.missed.get(peer.id) ?? []) {
      if (!(this.host.service(factoryLink) instanceof FactoryService)) continue;
      while (links.size > 0) {
        const batch = [...links].slice(0, PUSH_BATCH);
        const versions = batch
          .map((l) => this.host.store.getLatest(l))
          .filter((v) => v !== undefined)
          .map((v) => `{"doc":${v.json},"purgeFirst":false}`);
        await send(`{"kind":${JSON.stringify(Kinds.REPLICATION_REQUEST)},"mode":"synch","items":[{"factoryLink":${JSON.stringify(factoryLink)},"versions":[${versions.join(',')}]}]}`);
        for (const l of batch) links.delete(l);
      }
    }
    this.missed.delete(peer.id);
  }
}
