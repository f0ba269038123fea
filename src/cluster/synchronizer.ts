import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { FactoryService } from '../services/factory-service.js';
import { Kinds, SYNCH_LINK, nodeBaseUri, type NodeState, type SummaryEntry, type SynchFetchResponse, type SynchSummaryResponse } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import type { PeerClient } from './peer-client.js';
import { isNewer, summaryPage, type ReplicaStore, type Stamp } from './replica-store.js';

const SUMMARY_PAGE = 5000;
const FETCH_BATCH = 1000;
const FETCH_CONCURRENCY = 4;
/** Passes retried in a row for peers that did not answer, before waiting for the next membership change. */
const MAX_RETRIES = 3;

/** What the last synchronization did (GET /core/node-selectors/default/synch). */
export interface SynchStatus {
  status: 'IDLE' | 'SYNCHRONIZING';
  runs: number;
  lastReason: string;
  lastStartedMicros: number;
  lastDurationMicros: number;
  lastDocumentsPulled: number;
  lastPeersAnswered: number;
  /** The pass that brought this node from SYNCHRONIZING to AVAILABLE (joining, restarting). */
  joinDurationMicros?: number;
  joinDocumentsPulled?: number;
}

/**
 * Synchronization (spec B.9), as a pull: each node asks every reachable member for the latest
 * (epoch, version, update time) of every document of every factory, and fetches the documents
 * where a member holds a newer copy. With every node pulling after each membership change, every
 * member ends up with the newest copy of every document. Revoked versions (failed writes) are
 * learnt first, rolled back, and never pulled.
 */
export class Synchronizer {
  private running = false;
  private again = false;
  private nextReason = '';
  private retries = 0;
  readonly status: SynchStatus = { status: 'IDLE', runs: 0, lastReason: '', lastStartedMicros: 0, lastDurationMicros: 0, lastDocumentsPulled: 0, lastPeersAnswered: 0 };

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly client: PeerClient,
    private readonly replicas: ReplicaStore,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  /** Runs a pass now, or once more after the current one. */
  request(reason: string): void {
    this.nextReason = reason;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.runOnce(this.nextReason).catch((err) => this.host.log.warn({ err }, 'synchronization failed'));
      } while (this.again);
    } finally {
      this.running = false;
      this.status.status = 'IDLE';
    }
  }

  private async runOnce(reason: string): Promise<void> {
    const started = performance.now();
    const wasSynchronizing = this.group.self().status === 'SYNCHRONIZING';
    const peers = this.group.replicationTargets();
    Object.assign(this.status, { status: 'SYNCHRONIZING', lastReason: reason, lastStartedMicros: this.host.clock.nowMicros() });
    this.status.runs++;
    let pulled = 0;
    const failed = new Set<string>();
    for (const factory of this.factories())
      pulled += await this.syncFactory(
        factory,
        peers.filter((p) => !failed.has(p.id)),
        failed,
      );
    const answered = peers.length - failed.size;
    const durationMicros = Math.round((performance.now() - started) * 1000);
    Object.assign(this.status, { lastDurationMicros: durationMicros, lastDocumentsPulled: pulled, lastPeersAnswered: answered });
    this.host.log.info({ reason, pulled, peers: answered, ms: Math.round(durationMicros / 1000) }, 'synchronization finished');
    // A peer that did not answer (not yet aware of this node, or going down) is asked again later:
    // by then gossip has told it about this node, or the group has marked it UNAVAILABLE.
    this.retries = failed.size > 0 ? this.retries + 1 : 0;
    if (failed.size > 0 && this.retries <= MAX_RETRIES) setTimeout(() => this.request('retrying peers that did not answer'), this.group.settings.nodeUnavailableTimeoutMicros / 1000).unref();
    // A node leaves SYNCHRONIZING (and may own documents again) once it pulled from at least one member.
    if (wasSynchronizing && this.group.self().status === 'SYNCHRONIZING' && (answered > 0 || peers.length === 0)) {
      this.status.joinDurationMicros = durationMicros;
      this.status.joinDocumentsPulled = pulled;
      this.group.setSelfStatus('AVAILABLE');
    }
  }

  private factories(): FactoryService[] {
    return this.host
      .serviceLinks()
      .map((l) => this.host.service(l))
      .filter((s): s is FactoryService => s instanceof FactoryService);
  }

  /**
   * One factory: every peer's summary is read in parallel and compared (merge join, both sides in
   * link order) with this node's; each document held newer somewhere is then fetched once, from the
   * peer with the newest copy. Returns how many documents were stored.
   */
  private async syncFactory(factory: FactoryService, peers: NodeState[], failed: Set<string>): Promise<number> {
    const best = new Map<string, { peer: NodeState; stamp: Stamp }>();
    await Promise.all(
      peers.map((peer) =>
        this.scanPeer(factory, peer, best).catch((err) => {
          failed.add(peer.id);
          this.host.log.info({ peer: peer.id, factory: factory.link, reason: (err as Error).message }, 'synchronization with a peer failed');
        }),
      ),
    );
    const batches: Array<{ peer: NodeState; links: string[] }> = [];
    const byPeer = new Map<string, string[]>();
    for (const [link, { peer }] of best) {
      if (failed.has(peer.id)) continue;
      let links = byPeer.get(peer.id);
      if (!links) {
        links = [];
        byPeer.set(peer.id, links);
      }
      links.push(link);
      if (links.length === FETCH_BATCH) {
        batches.push({ peer, links });
        byPeer.set(peer.id, []);
      }
    }
    for (const [id, links] of byPeer) if (links.length > 0) batches.push({ peer: this.group.node(id)!, links });
    let stored = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(FETCH_CONCURRENCY, batches.length) }, async () => {
        while (next < batches.length) {
          const { peer, links } = batches[next++]!;
          try {
            const res = await this.client.json<SynchFetchResponse>(`${nodeBaseUri(peer)}${SYNCH_LINK}`, {
              method: 'POST',
              body: { kind: Kinds.SYNCH_FETCH_REQUEST, factoryLink: factory.link, links },
              timeoutMs: this.timeoutMs(),
            });
            const r = await this.replicas.apply(
              factory.writer,
              res.documents.map((doc: Doc) => ({ doc, purgeFirst: false })),
              'synch',
            );
            if (r.status === 'ok') stored += res.documents.length;
          } catch (err) {
            failed.add(peer.id);
            this.host.log.info({ peer: peer.id, factory: factory.link, reason: (err as Error).message }, 'fetching documents from a peer failed');
          }
        }
      }),
    );
    return stored;
  }

  /** Reads a peer's summary pages; records the links it holds newer than this node and any other peer. */
  private async scanPeer(factory: FactoryService, peer: NodeState, best: Map<string, { peer: NodeState; stamp: Stamp }>): Promise<void> {
    const url = `${nodeBaseUri(peer)}${SYNCH_LINK}`;
    const local = new LocalCursor(this.host, factory.link);
    let after = '';
    for (;;) {
      const page = await this.client.json<SynchSummaryResponse>(url, {
        method: 'POST',
        body: { kind: Kinds.SYNCH_SUMMARY_REQUEST, factoryLink: factory.link, afterLink: after, limit: SUMMARY_PAGE },
        timeoutMs: this.timeoutMs(),
      });
      if (page.revocations?.length) await this.replicas.revoke(factory.link, page.revocations);
      for (const [link, epoch, version, updateTime] of page.entries) {
        const s: Stamp = { epoch, version, updateTime };
        if (this.replicas.isRevoked(link, s) || !isNewer(s, local.stampOf(link))) continue;
        const known = best.get(link);
        if (!known || isNewer(s, known.stamp)) best.set(link, { peer, stamp: s });
      }
      if (!page.nextAfterLink) return;
      after = page.nextAfterLink;
    }
  }

  private timeoutMs(): number {
    return this.group.peerTimeoutMs();
  }
}

/** This node's summary of a factory, read forward in link order alongside a peer's pages. */
class LocalCursor {
  private page: SummaryEntry[] = [];
  private i = 0;
  private after = '';
  private done = false;

  constructor(
    private readonly host: Host,
    private readonly factoryLink: string,
  ) {}

  /** The local stamp of `link`; calls must come in increasing link order. */
  stampOf(link: string): Stamp | undefined {
    for (;;) {
      while (this.i < this.page.length && this.page[this.i]![0] < link) this.i++;
      if (this.i < this.page.length) {
        const e = this.page[this.i]!;
        return e[0] === link ? { epoch: e[1], version: e[2], updateTime: e[3] } : undefined;
      }
      if (this.done) return undefined;
      this.page = summaryPage(this.host, this.factoryLink, this.after, SUMMARY_PAGE);
      this.i = 0;
      this.done = this.page.length < SUMMARY_PAGE;
      if (this.page.length > 0) this.after = this.page[this.page.length - 1]![0];
    }
  }
}
