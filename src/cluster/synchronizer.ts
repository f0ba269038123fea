import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { FactoryService } from '../services/factory-service.js';
import { Kinds, SYNCH_LINK, nodeBaseUri, type NodeState, type SynchFetchResponse, type SynchSummaryResponse } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import type { PeerClient } from './peer-client.js';
import { isNewer, type ReplicaStore, type Stamp } from './replica-store.js';

const SUMMARY_PAGE = 5000;
const FETCH_BATCH = 1000;
const FETCH_CONCURRENCY = 4;

/** What the last synchronization did (GET /core/node-selectors/default/synch). */
export interface SynchStatus {
  status: 'IDLE' | 'SYNCHRONIZING';
  runs: number;
  lastReason: string;
  lastStartedMicros: number;
  lastDurationMicros: number;
  lastDocumentsPulled: number;
  lastPeersAnswered: number;
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
    const answered = new Set<string>();
    const failed = new Set<string>();
    for (const factory of this.factories()) {
      for (const peer of peers) {
        if (failed.has(peer.id)) continue;
        try {
          pulled += await this.pullFactory(factory, peer);
          answered.add(peer.id);
        } catch (err) {
          failed.add(peer.id);
          answered.delete(peer.id);
          this.host.log.info({ peer: peer.id, factory: factory.link, msg: (err as Error).message }, 'synchronization with a peer failed');
        }
      }
    }
    Object.assign(this.status, { lastDurationMicros: Math.round((performance.now() - started) * 1000), lastDocumentsPulled: pulled, lastPeersAnswered: answered.size });
    this.host.log.info({ reason, pulled, peers: answered.size, ms: Math.round(performance.now() - started) }, 'synchronization finished');
    // A node leaves SYNCHRONIZING (and may own documents again) once it pulled from at least one member.
    if (wasSynchronizing && this.group.self().status === 'SYNCHRONIZING' && (answered.size > 0 || peers.length === 0)) this.group.setSelfStatus('AVAILABLE');
  }

  private factories(): FactoryService[] {
    return this.host.serviceLinks().map((l) => this.host.service(l)).filter((s): s is FactoryService => s instanceof FactoryService);
  }

  /** Pulls, from one peer, every document of a factory it holds newer. Returns how many were stored. */
  private async pullFactory(factory: FactoryService, peer: NodeState): Promise<number> {
    const url = `${nodeBaseUri(peer)}${SYNCH_LINK}`;
    const timeoutMs = Math.ceil(this.group.settings.peerRequestTimeoutMicros / 1000);
    const need: string[] = [];
    let after = '';
    for (;;) {
      const page = await this.client.json<SynchSummaryResponse>(url, { method: 'POST', body: { kind: Kinds.SYNCH_SUMMARY_REQUEST, factoryLink: factory.link, afterLink: after, limit: SUMMARY_PAGE }, timeoutMs });
      if (page.revocations?.length) await this.replicas.revoke(factory.link, page.revocations);
      for (const [link, epoch, version, updateTime] of page.entries) {
        const s: Stamp = { epoch, version, updateTime };
        if (!this.replicas.isRevoked(link, s) && isNewer(s, this.localStamp(link))) need.push(link);
      }
      if (!page.nextAfterLink) break;
      after = page.nextAfterLink;
    }
    let stored = 0;
    const batches: string[][] = [];
    for (let i = 0; i < need.length; i += FETCH_BATCH) batches.push(need.slice(i, i + FETCH_BATCH));
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(FETCH_CONCURRENCY, batches.length) }, async () => {
        while (next < batches.length) {
          const links = batches[next++]!;
          const res = await this.client.json<SynchFetchResponse>(url, { method: 'POST', body: { kind: Kinds.SYNCH_FETCH_REQUEST, factoryLink: factory.link, links }, timeoutMs });
          const r = await this.replicas.apply(factory.writer, res.documents.map((doc: Doc) => ({ doc, purgeFirst: false })), 'synch');
          if (r.status === 'ok') stored += res.documents.length;
        }
      }),
    );
    return stored;
  }

  private localStamp(link: string): Stamp | undefined {
    const row = this.host.store.get<{ version: number; updateTime: number; epoch: number | null }>(
      "SELECT version, update_time AS updateTime, json_extract(json, '$.documentEpoch') AS epoch FROM docs WHERE link = ? AND latest = 1",
      [link],
    );
    return row ? { epoch: row.epoch ?? 0, version: row.version, updateTime: row.updateTime } : undefined;
  }
}
