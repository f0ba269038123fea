import { fail, KryptonError } from '../core/errors.js';
import type { Host } from '../core/host.js';
import { Kinds, NODE_GROUP_LINK, NodeProps, nodeBaseUri, type JoinPeerRequest, type NodeGroupState, type NodeState } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import type { PeerClient } from './peer-client.js';

interface PendingJoin {
  request: JoinPeerRequest;
  /** undefined: keep trying (--peerNodes); else give up after this time (micros). */
  deadlineMicros: number | undefined;
  attempting: boolean;
  lastError?: string;
}

/**
 * Xenon's gossip (spec A.5, A.6) and join (A.4). Every round (jittered ±25 %) this node PATCHes its
 * whole view to up to max(10, log10(n−1)) random peers — UNAVAILABLE ones included, so a returning
 * node is rediscovered — and merges each peer's own entry from the answer. A peer that has not been
 * heard from for `nodeUnavailableTimeoutMicros` (several rounds: late answers are tolerated) is
 * marked UNAVAILABLE.
 */
export class Gossip {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly lastHeard = new Map<string, number>();
  private readonly probing = new Set<string>();
  private readonly joins = new Map<string, PendingJoin>();
  private readonly refusals = new Map<string, string>();
  private lastRoundMicros = 0;
  readonly startedMicros: number;
  /** Called at the end of every round (synchronization checks, repairs). */
  onRound: () => void = () => undefined;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly client: PeerClient,
  ) {
    this.startedMicros = host.clock.nowMicros();
  }

  private get settings() {
    return this.group.settings;
  }

  start(): void {
    for (const peer of this.settings.peerNodes) this.joins.set(peer, { request: { memberGroupReference: `${peer}${NODE_GROUP_LINK}` }, deadlineMicros: undefined, attempting: false });
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** True while `--peerNodes` joins have not succeeded yet. */
  hasPendingJoins(): boolean {
    return [...this.joins.values()].some((j) => j.deadlineMicros === undefined);
  }

  /** A verified peer request arrived from `id` (it is alive). */
  heard(id: string): void {
    this.lastHeard.set(id, this.host.clock.nowMicros());
  }

  private schedule(delayMicros: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.round(), Math.max(1, delayMicros / 1000));
    this.timer.unref();
  }

  private async round(): Promise<void> {
    try {
      if (this.host.port === 0) return;
      const now = this.host.clock.nowMicros();
      for (const [ref, j] of this.joins) if (!j.attempting) void this.attemptJoin(ref, j);
      const peers = this.group.peers().filter((p) => p.status !== 'REPLACED');
      // What is kept per peer is kept for members of the view only (a group's members come and go).
      if (this.lastHeard.size > peers.length || this.refusals.size > 0) {
        const members = new Set(peers.map((p) => p.id));
        for (const id of this.lastHeard.keys()) if (!members.has(id)) this.lastHeard.delete(id);
        for (const id of this.refusals.keys()) if (!members.has(id)) this.refusals.delete(id);
      }
      // If this process itself stalled (a long synchronous task, CPU starvation), its peers' answers
      // are still unread: give them a fresh timeout instead of declaring them dead.
      const stalled = this.lastRoundMicros > 0 && now - this.lastRoundMicros > this.settings.nodeUnavailableTimeoutMicros / 2;
      this.lastRoundMicros = now;
      if (stalled) for (const p of peers) this.lastHeard.set(p.id, now);
      const k = Math.min(peers.length, Math.max(10, Math.floor(Math.log10(Math.max(1, peers.length)))));
      for (const peer of shuffle(peers).slice(0, k)) {
        if (!this.lastHeard.has(peer.id)) this.lastHeard.set(peer.id, now);
        if (!this.probing.has(peer.id)) void this.probe(peer);
      }
      for (const peer of peers) {
        const silent = now - (this.lastHeard.get(peer.id) ?? now);
        if (peer.status !== 'UNAVAILABLE' && silent >= this.settings.nodeUnavailableTimeoutMicros) {
          this.host.log.warn({ peer: peer.id, silentMs: Math.round(silent / 1000) }, 'peer marked UNAVAILABLE');
          this.group.markUnavailable(peer.id);
        }
      }
      this.onRound();
    } catch (err) {
      this.host.log.error({ err }, 'gossip round failed');
    } finally {
      this.schedule(this.settings.gossipIntervalMicros * (0.75 + Math.random() * 0.5));
    }
  }

  /** One gossip PATCH to a peer; its answer's own entry is merged (membership spreads by push). */
  private async probe(peer: NodeState): Promise<void> {
    this.probing.add(peer.id);
    try {
      const body = JSON.stringify(this.group.state());
      const res = await this.client.json<NodeGroupState>(peer.groupReference, { method: 'PATCH', body, timeoutMs: this.timeoutMs() });
      this.heard(peer.id);
      this.refusals.delete(peer.id);
      if (res.documentOwner !== peer.id) {
        this.group.markReplaced(peer.id);
        return;
      }
      const own = res.nodes?.[peer.id];
      this.group.merge({ nodes: own ? { [peer.id]: own } : {}, documentOwner: this.group.selfId, membershipUpdateTimeMicros: res.membershipUpdateTimeMicros ?? 0 });
    } catch (err) {
      const status = err instanceof KryptonError ? err.statusCode : 0;
      if (status >= 400 && status < 500 && this.refusals.get(peer.id) !== (err as Error).message) {
        this.refusals.set(peer.id, (err as Error).message);
        this.host.log.error({ peer: peer.id, reason: (err as Error).message }, 'peer refused gossip');
      }
    } finally {
      this.probing.delete(peer.id);
    }
  }

  /**
   * JoinPeerRequest (A.4), POSTed to the node that joins. Unlike Xenon, a definitive refusal (another
   * protocol version, another group secret) is answered at once with its reason; an unreachable
   * member is retried every round until the deadline (forever for `--peerNodes`).
   */
  async join(request: JoinPeerRequest, deadlineMicros: number | undefined): Promise<void> {
    const ref = request.memberGroupReference;
    let base: string;
    try {
      base = nodeBaseUri({ groupReference: ref });
    } catch {
      fail('VALIDATION', `memberGroupReference is not a URI: ${ref}`);
    }
    if (base === nodeBaseUri({ groupReference: this.group.groupReference })) return;
    this.group.updateSelf({ membershipQuorum: request.membershipQuorum, locationQuorum: request.locationQuorum, options: request.localNodeOptions });
    const pending: PendingJoin = { request: { memberGroupReference: ref }, deadlineMicros, attempting: true };
    this.joins.set(base, pending);
    try {
      await this.joinOnce(ref);
      this.joins.delete(base);
    } catch (err) {
      pending.lastError = (err as Error).message;
      if (err instanceof KryptonError && err.statusCode >= 400 && err.statusCode < 500) {
        this.joins.delete(base);
        throw err;
      }
    } finally {
      pending.attempting = false;
    }
  }

  private async attemptJoin(base: string, j: PendingJoin): Promise<void> {
    if (j.deadlineMicros !== undefined && this.host.clock.nowMicros() > j.deadlineMicros) {
      this.joins.delete(base);
      this.host.log.warn({ peer: base, reason: j.lastError }, 'gave up joining');
      return;
    }
    j.attempting = true;
    try {
      await this.joinOnce(j.request.memberGroupReference);
      this.joins.delete(base);
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== j.lastError) this.host.log[err instanceof KryptonError && err.statusCode < 500 ? 'error' : 'info']({ peer: base, reason: msg }, 'join attempt failed');
      j.lastError = msg;
    } finally {
      j.attempting = false;
    }
  }

  /**
   * A.4 steps 3–5: GET the member's view, POST our own entry to it, merge its view. The POST (the
   * authenticated step) comes before the merge, so a refused join leaves this node's view as it was.
   */
  private async joinOnce(ref: string): Promise<void> {
    // Signed: with auth on, a member answers its group state to peers (as the system identity) only.
    const remote = await this.client.json<NodeGroupState>(ref, { method: 'GET', timeoutMs: this.timeoutMs() });
    const owner = remote.nodes?.[remote.documentOwner];
    const theirs = owner?.customProperties?.[NodeProps.PROTOCOL];
    const ours = this.group.self().customProperties[NodeProps.PROTOCOL];
    if (theirs !== ours) {
      fail(
        'BAD_REQUEST',
        `cannot join ${ref}: it speaks krypton node-group protocol ${theirs ?? '(none: not a krypton node)'}, this node speaks ${ours}; every member of a group must run a release with the same protocol`,
      );
    }
    // Joining a running group: own nothing until this node has pulled the group's documents.
    if (Object.values(remote.nodes ?? {}).some((n) => n.id !== this.group.selfId && n.status === 'AVAILABLE')) this.group.setSelfStatus('SYNCHRONIZING');
    await this.client.json(ref, { method: 'POST', body: { ...this.group.self(), kind: Kinds.NODE_STATE }, timeoutMs: this.timeoutMs() });
    this.group.merge({ nodes: remote.nodes, documentOwner: remote.documentOwner, membershipUpdateTimeMicros: remote.membershipUpdateTimeMicros });
    this.heard(remote.documentOwner);
  }

  private timeoutMs(): number {
    return this.group.peerTimeoutMs();
  }
}

function shuffle<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
