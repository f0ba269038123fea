import { fail, kryptonError, KryptonError } from '../core/errors.js';
import type { Host } from '../core/host.js';
import { Pragma } from '../core/operation.js';
import type { DocumentWriter, Pending, ReplicationHook } from '../services/document-writer.js';
import { Kinds, REPLICATION_LINK, nodeBaseUri, type NodeState, type Revocation } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import { PeerChannel } from './peer-channel.js';
import type { PeerClient } from './peer-client.js';
import { docStamp, storedStamp, type ReplicaStore } from './replica-store.js';
import type { RepairQueue } from './repair-queue.js';
import type { Doc } from '../core/document.js';

interface Proposal {
  ok: boolean;
  acks: number;
  failures: number;
  lastStatus: number;
  lastMessage: string;
  stale: Array<{ peer: NodeState; doc: Doc }>;
}

/**
 * The owner's side of a write (spec B.7, with DECISIONS' rules): stamp `documentEpoch`, send the new
 * versions to every reachable member, and let the writer commit locally only once the quorum
 * (this node included) stored them. Without quorum the write fails with Xenon's message and is
 * rolled back where it was stored; its versions are recorded as revoked, so synchronization can
 * never bring a version back that the client was told had failed.
 */
export class Replicator implements ReplicationHook {
  private readonly channels = new Map<string, PeerChannel>();
  private nextId = 1;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly client: PeerClient,
    private readonly replicas: ReplicaStore,
    private readonly repairs: RepairQueue,
    private readonly onLateConflict: () => void,
  ) {}

  /** Undefined (nothing to wait for) when this node is the only member to write to. */
  replicate(writer: DocumentWriter, pending: readonly Pending[]): Promise<void> | undefined {
    this.stampEpochs(pending);
    const targets = this.group.replicationTargets();
    const quorum = this.group.quorum();
    const eligible = targets.length + 1;
    if (quorum > eligible) {
      fail('QUORUM', `Available nodes: ${eligible}, quorum: ${quorum}. ${describe(writer, pending)} was not applied: fewer members of the node group are reachable than its membershipQuorum.`);
    }
    if (targets.length === 0) return undefined;
    return this.replicateTo(targets, quorum, writer, pending);
  }

  private async replicateTo(targets: NodeState[], quorum: number, writer: DocumentWriter, pending: readonly Pending[]): Promise<void> {
    const what = describe(writer, pending);
    const id = this.nextId++;
    const links = [...new Set(pending.map((p) => p.doc['documentSelfLink'] as string))];
    const item = JSON.stringify({ factoryLink: writer.factoryLink, versions: pending.map((p) => ({ doc: p.doc, purgeFirst: p.purgeFirst })) });
    const outcome = await this.propose(targets, item, quorum - 1, writer.factoryLink, links);
    if (outcome.ok) return;
    this.abort(writer.factoryLink, pending, targets);
    if (outcome.stale.length > 0) {
      await this.catchUp(writer, outcome.stale);
      throw kryptonError('CONFLICT', `(Original id: ${id}) ${what} was redone: a member held a copy this owner had not seen`, { details: ['SHOULD_RETRY'] });
    }
    const threshold = targets.length - (quorum - 1) + 1;
    throw new KryptonError(
      { code: 'KRY_ERR_QUORUM', status: 503, xenonCode: 0 },
      `(Original id: ${id}) ${what} failed. Success: ${outcome.acks + 1},  Fail: ${outcome.failures}, quorum: ${quorum}, failure threshold: ${threshold}. ` +
        `The write was not applied (rolled back where it had been stored). Last failure: ${outcome.lastMessage}`,
      { statusCode: outcome.lastStatus },
    );
  }

  /** The owner stamps the epoch; a node that became owner of a document increments it (B.5). */
  private stampEpochs(pending: readonly Pending[]): void {
    // A request writes one version: no map of links for it.
    if (pending.length === 1) {
      pending[0]!.doc['documentEpoch'] = this.epochOf(pending[0]!);
      return;
    }
    const epochs = new Map<string, number>();
    for (const p of pending) {
      const link = p.doc['documentSelfLink'] as string;
      let epoch = epochs.get(link);
      if (epoch === undefined) {
        epoch = this.epochOf(p);
        epochs.set(link, epoch);
      }
      p.doc['documentEpoch'] = epoch;
    }
  }

  /** The epoch of a new version: its link's epoch, plus one when this node takes over from another owner. */
  private epochOf(p: Pending): number {
    const prev = p.isNew ? undefined : this.host.store.getLatest(p.doc['documentSelfLink'] as string);
    return prev ? storedStamp(prev).epoch + (prev.owner !== this.host.id ? 1 : 0) : 0;
  }

  /**
   * Sends to every target; settles as soon as the outcome is known (quorum reached or impossible),
   * and at the latest when the operation timeout passes (DECISIONS: without quorum, a clear error
   * within the operation timeout, even when a member hangs instead of refusing).
   */
  private propose(targets: NodeState[], itemJson: string, needed: number, factoryLink: string, links: string[]): Promise<Proposal> {
    const p: Proposal = { ok: false, acks: 0, failures: 0, lastStatus: 503, lastMessage: '', stale: [] };
    const maxFailures = targets.length - needed;
    let answered = 0;
    let settled = false;
    return new Promise((resolve) => {
      const limitMs = Math.max(1, this.group.settings.operationTimeoutMicros / 1000);
      const deadline = setTimeout(() => {
        if (settled) return;
        settled = true;
        p.lastStatus = 503;
        p.lastMessage = `${targets.length - answered} member(s) did not answer within the operation timeout (${limitMs} ms)`;
        resolve(p);
      }, limitMs);
      deadline.unref();
      const settle = (peer: NodeState, failed: boolean) => {
        answered++;
        if (settled) {
          if (failed && p.ok) this.repairs.missedUpdate(peer.id, factoryLink, links);
          return;
        }
        if (p.acks >= needed && p.stale.length === 0) p.ok = true;
        if (p.ok || p.failures > maxFailures || answered === targets.length) {
          settled = true;
          clearTimeout(deadline);
          resolve(p);
        }
      };
      for (const peer of targets) {
        this.channel(peer)
          .send(itemJson)
          .then(
            (r) => {
              if (r.status === 'ok') p.acks++;
              else {
                p.failures++;
                if (r.status === 'stale') {
                  if (settled) this.onLateConflict();
                  else p.stale.push({ peer, doc: r.current });
                }
                p.lastStatus = r.status === 'failed' ? r.statusCode : 409;
                p.lastMessage = r.status === 'failed' ? `${peer.id}: ${r.message}` : `${peer.id}: ${r.status}`;
              }
              settle(peer, r.status !== 'ok');
            },
            (err: unknown) => {
              p.failures++;
              p.lastStatus = err instanceof KryptonError ? err.statusCode : 500;
              p.lastMessage = `${peer.id}: ${(err as Error).message}`;
              settle(peer, true);
            },
          );
      }
    });
  }

  /**
   * Records the failed write's versions as revoked (from now on synchronization never brings them
   * back), then rolls them back on every target in the background: the client is answered without
   * waiting for a member that hangs; a rollback that fails is retried by the repair queue.
   */
  private abort(factoryLink: string, pending: readonly Pending[], targets: NodeState[]): void {
    const revocations: Revocation[] = pending.map((p) => {
      const s = docStamp(p.doc);
      return { link: p.doc['documentSelfLink'] as string, version: s.version, updateTimeMicros: s.updateTime };
    });
    this.replicas.record(factoryLink, revocations);
    for (const t of targets) void this.sendRollback(t, factoryLink, revocations);
  }

  private async sendRollback(peer: NodeState, factoryLink: string, revocations: Revocation[]): Promise<void> {
    try {
      await this.client.json(`${nodeBaseUri(peer)}${REPLICATION_LINK}`, {
        method: 'POST',
        body: { kind: Kinds.ROLLBACK_REQUEST, factoryLink, revocations },
        headers: { pragma: Pragma.REPLICATED },
        timeoutMs: this.timeoutMs(),
      });
    } catch {
      this.repairs.rollback(peer.id, factoryLink, revocations);
    }
  }

  /** A member held a copy this owner lacks: adopt it (or roll it back if it is a revoked one). */
  private async catchUp(writer: DocumentWriter, stale: Proposal['stale']): Promise<void> {
    for (const { peer, doc } of stale) {
      const link = doc['documentSelfLink'] as string;
      const s = docStamp(doc);
      if (this.replicas.isRevoked(link, s)) await this.sendRollback(peer, writer.factoryLink, [{ link, version: s.version, updateTimeMicros: s.updateTime }]);
      else await this.replicas.apply(writer, [{ doc, purgeFirst: false }], 'synch', true);
    }
  }

  private channel(peer: NodeState): PeerChannel {
    const base = nodeBaseUri(peer);
    const key = `${peer.id}@${base}`;
    let c = this.channels.get(key);
    if (!c) {
      c = new PeerChannel(this.client, base, () => this.timeoutMs());
      this.channels.set(key, c);
      // A member that left (or came back under another address) leaves its channel: drop those of
      // ids no longer in the view. A write still on one finishes on it; the map only forgets it.
      const members = this.group.peers();
      if (this.channels.size > 2 * members.length + 8) {
        const live = new Set(members.map((m) => `${m.id}@${nodeBaseUri(m)}`));
        for (const k of this.channels.keys()) if (!live.has(k)) this.channels.delete(k);
      }
    }
    return c;
  }

  private timeoutMs(): number {
    return this.group.peerTimeoutMs();
  }
}

/** What a write was, in Xenon's error messages ("PATCH to /core/examples/x", "POST to /core/examples"). */
function describe(writer: DocumentWriter, pending: readonly Pending[]): string {
  const head = pending[0]!.doc;
  return pending.length > 1 && new Set(pending.map((p) => p.doc['documentSelfLink'])).size > 1
    ? `POST to ${writer.factoryLink}`
    : `${String(head['documentUpdateAction'])} to ${String(head['documentSelfLink'])}`;
}
