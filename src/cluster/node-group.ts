import { randomUUID } from 'node:crypto';
import type { Host } from '../core/host.js';
import type { ClusterSettings } from './cluster-settings.js';
import { hashNodes, selectNodes, type HashedNode } from './consistent-hashing.js';
import { mergeGroup, type GroupView, type MergeInput } from './node-group-merge.js';
import {
  GROUP_PROTOCOL_VERSION,
  Kinds,
  NODE_GROUP_LINK,
  NodeProps,
  compareIncarnation,
  isObserver,
  isUnavailable,
  type GroupChange,
  type NodeGroupConfig,
  type NodeGroupState,
  type NodeState,
  type NodeStatus,
} from './node-group-messages.js';

/** What one change of the view did to membership (sent to listeners after every change). */
export interface MembershipDiff {
  changes: ReadonlySet<GroupChange>;
  /** Peers that became AVAILABLE (added, recovered, or restarted and synchronized). */
  becameAvailable: string[];
  /** Peers that stopped being reachable members (UNAVAILABLE, REPLACED, removed). */
  lost: string[];
  /** A peer reported that the group had marked this node UNAVAILABLE. */
  selfMarkedUnavailable: boolean;
}

export interface Owner {
  id: string;
  groupReference: string;
  isLocal: boolean;
}

/** Xenon's STABLE_GROUP_MAINTENANCE_INTERVAL_COUNT: rounds without change before a group is settled. */
const STABLE_ROUNDS = 5;

/**
 * This node's view of the node group (Xenon's NodeGroupService state) and the questions the rest of
 * krypton asks it: who owns a link, who replicas are, what the quorum is. The view is in memory,
 * as in Xenon: after a restart a node knows only itself until it joins or is gossiped to.
 */
export class NodeGroup {
  readonly instanceId = randomUUID();
  config: NodeGroupConfig;
  lastChanges: GroupChange[] = [];
  private readonly view: GroupView;
  private readonly listeners: Array<(d: MembershipDiff) => void> = [];
  private generation = 0;
  private ownerCache: { generation: number; nodes: HashedNode<NodeState>[] } | undefined;

  constructor(
    private readonly host: Host,
    readonly settings: ClusterSettings,
    protocolVersion = GROUP_PROTOCOL_VERSION,
  ) {
    const now = host.clock.nowMicros();
    this.config = {
      nodeRemovalDelayMicros: settings.nodeRemovalDelayMicros,
      stableGroupMaintenanceIntervalCount: STABLE_ROUNDS,
      peerRequestTimeoutMicros: settings.peerRequestTimeoutMicros,
    };
    const self: NodeState = {
      groupReference: '',
      status: 'SYNCHRONIZING',
      options: ['PEER'],
      id: host.id,
      membershipQuorum: settings.membershipQuorum,
      locationQuorum: 1,
      customProperties: { [NodeProps.INSTANCE_ID]: this.instanceId, [NodeProps.INSTANCE_START]: String(now), [NodeProps.PROTOCOL]: String(protocolVersion) },
      documentVersion: 0,
      documentKind: Kinds.NODE_STATE,
      documentSelfLink: `${NODE_GROUP_LINK}/${host.id}`,
      documentUpdateTimeMicros: now,
      documentExpirationTimeMicros: 0,
    };
    this.view = { nodes: { [host.id]: self }, membershipUpdateTimeMicros: now, localMembershipUpdateTimeMicros: now };
  }

  get selfId(): string {
    return this.host.id;
  }

  /** This node's groupReference (its port is known once the host listens). */
  get groupReference(): string {
    return `${this.host.uri}${NODE_GROUP_LINK}`;
  }

  onChange(listener: (d: MembershipDiff) => void): void {
    this.listeners.push(listener);
  }

  self(): NodeState {
    const s = this.view.nodes[this.selfId]!;
    s.groupReference = this.groupReference;
    return s;
  }

  node(id: string): NodeState | undefined {
    return id === this.selfId ? this.self() : this.view.nodes[id];
  }

  nodes(): NodeState[] {
    this.self();
    return Object.values(this.view.nodes);
  }

  peers(): NodeState[] {
    return Object.values(this.view.nodes).filter((n) => n.id !== this.selfId);
  }

  get membershipUpdateTimeMicros(): number {
    return this.view.membershipUpdateTimeMicros;
  }

  /** The view as Xenon's NodeGroupState (GET body and gossip body). */
  state(): NodeGroupState {
    const now = this.host.clock.nowMicros();
    this.self();
    return {
      config: { ...this.config },
      nodes: this.view.nodes,
      lastChanges: this.lastChanges,
      membershipUpdateTimeMicros: this.view.membershipUpdateTimeMicros,
      localMembershipUpdateTimeMicros: this.view.localMembershipUpdateTimeMicros,
      documentOwner: this.selfId,
      documentVersion: 0,
      documentKind: Kinds.NODE_GROUP_STATE,
      documentSelfLink: NODE_GROUP_LINK,
      documentUpdateTimeMicros: now,
      documentExpirationTimeMicros: 0,
    };
  }

  // ---- questions ----

  quorum(): number {
    return this.view.nodes[this.selfId]!.membershipQuorum;
  }

  /** `--peerRequestTimeoutMicros` in milliseconds (every request to a peer). */
  peerTimeoutMs(): number {
    return Math.ceil(this.settings.peerRequestTimeoutMicros / 1000);
  }

  /**
   * Nodes that may own documents: AVAILABLE members (not observers). krypton differs from Xenon here:
   * a SYNCHRONIZING node is not chosen as owner until its synchronization finished, so a restarted
   * node never answers from stale data — unless no member is AVAILABLE (a whole group starting):
   * then Xenon's rule applies (every member that is not UNAVAILABLE). Alone, this node owns all.
   */
  owner(key: string): Owner {
    const n = this.ownerNode(key);
    if (!n) return { id: this.selfId, groupReference: this.groupReference, isLocal: true };
    return { id: n.id, groupReference: n.groupReference, isLocal: n.id === this.selfId };
  }

  /** owner(key).isLocal, without building the Owner (every request of a host alone asks it). */
  isLocalOwner(key: string): boolean {
    const n = this.ownerNode(key);
    return n === undefined || n.id === this.selfId;
  }

  /** The owner candidate closest to `key`; undefined when there is none. */
  private ownerNode(key: string): NodeState | undefined {
    const candidates = this.ownerCandidates();
    return candidates.length === 1 ? candidates[0]!.node : selectNodes(key, candidates)[0];
  }

  /**
   * "Is this node the owner?" frozen at the current membership: a scan that spans many pages
   * (OWNER_SELECTION queries of a migration) keeps one partition even if membership changes meanwhile.
   * Undefined when this node owns every key (it is the only owner candidate): no filtering at all.
   */
  ownerSnapshot(): ((key: string) => boolean) | undefined {
    const nodes = this.ownerCandidates();
    if (nodes.length === 0 || (nodes.length === 1 && nodes[0]!.node.id === this.selfId)) return undefined;
    return (key) => selectNodes(key, nodes)[0]!.id === this.selfId;
  }

  ownerCandidateCount(): number {
    return this.ownerCandidates().length;
  }

  private ownerCandidates(): HashedNode<NodeState>[] {
    if (this.ownerCache?.generation !== this.generation) {
      const members = this.nodes().filter((n) => !isObserver(n));
      let eligible = members.filter((n) => n.status === 'AVAILABLE');
      if (eligible.length === 0) eligible = members.filter((n) => !isUnavailable(n));
      this.ownerCache = {
        generation: this.generation,
        nodes: hashNodes(
          eligible.sort((a, b) => (a.id < b.id ? -1 : 1)),
          (n) => n.id,
        ),
      };
    }
    return this.ownerCache.nodes;
  }

  /** Peers that receive replicated versions: every member that is not UNAVAILABLE/REPLACED/OBSERVER. */
  replicationTargets(): NodeState[] {
    const targets: NodeState[] = [];
    for (const n of Object.values(this.view.nodes)) if (n.id !== this.selfId && !isUnavailable(n) && !isObserver(n)) targets.push(n);
    return targets;
  }

  /** Xenon's isMembershipSettled: alone with quorum 1, or no local change for 5 gossip rounds. */
  isMembershipSettled(now = this.host.clock.nowMicros()): boolean {
    if (this.view.nodes && Object.keys(this.view.nodes).length === 1 && this.quorum() === 1) return true;
    return now - this.view.localMembershipUpdateTimeMicros >= STABLE_ROUNDS * this.settings.gossipIntervalMicros;
  }

  /** Xenon's hasMembershipQuorum: AVAILABLE nodes (self included; alone counts 1) ≥ quorum. */
  hasMembershipQuorum(): boolean {
    const all = this.nodes();
    const available = all.length === 1 ? 1 : all.filter((n) => n.status === 'AVAILABLE').length;
    return available >= this.quorum();
  }

  isAvailable(): boolean {
    return this.isMembershipSettled() && this.hasMembershipQuorum();
  }

  // ---- changes ----

  /** Gossip merge (A.5); returns what changed. */
  merge(input: MergeInput): ReadonlySet<GroupChange> {
    let selfMarked = false;
    const changes = this.mutate(
      () => {
        const r = mergeGroup(this.view, input, {
          selfId: this.selfId,
          selfGroupReference: this.groupReference,
          nowMicros: this.host.clock.nowMicros(),
          nodeRemovalDelayMicros: this.config.nodeRemovalDelayMicros,
        });
        selfMarked = r.selfMarkedUnavailable;
        return r.changes;
      },
      () => selfMarked,
    );
    return changes;
  }

  setSelfStatus(status: NodeStatus): void {
    if (this.self().status === status) return;
    this.mutate(() => {
      this.bumpSelf((s) => (s.status = status));
      return new Set<GroupChange>(['SELF_CHANGE']);
    });
  }

  /** JoinPeerRequest / UpdateQuorumRequest on the local entry (A.4 step 2, A.8 step 1). */
  updateSelf(change: { membershipQuorum?: number | null | undefined; locationQuorum?: number | null | undefined; options?: NodeState['options'] | null | undefined }): void {
    this.mutate(() => {
      this.bumpSelf((s) => {
        if (change.membershipQuorum != null) s.membershipQuorum = Math.max(1, change.membershipQuorum);
        if (change.locationQuorum != null) s.locationQuorum = Math.max(1, change.locationQuorum);
        if (change.options?.length) s.options = [...change.options];
      });
      return new Set<GroupChange>(change.membershipQuorum != null ? ['QUORUM_CHANGED'] : ['SELF_CHANGE']);
    });
  }

  /** A group quorum update rewrites the local copy of other AVAILABLE entries too (A.8 step 3). */
  setPeerQuorum(id: string, quorum: number): void {
    const n = this.view.nodes[id];
    if (n) n.membershipQuorum = Math.max(1, quorum);
  }

  /** A failed probe past the timeout: UNAVAILABLE, version bumped, removal scheduled (A.6). */
  markUnavailable(id: string): void {
    this.markPeer(id, 'UNAVAILABLE', 'PEER_UNAVAILABLE');
  }

  /** The peer's address answers with another id (A.5). */
  markReplaced(id: string): void {
    this.markPeer(id, 'REPLACED', 'PEER_STATUS_CHANGE');
  }

  /** POST of a NodeState (join step 5): the entry is put as is (newer incarnations only); like Xenon, the membership time is left alone. */
  insert(entry: NodeState): void {
    this.mutate(() => {
      const l = this.view.nodes[entry.id];
      if (entry.id === this.selfId || (l && compareIncarnation(entry, l) < 0)) return new Set();
      this.view.nodes[entry.id] = { ...entry };
      return new Set<GroupChange>([l ? 'PEER_STATUS_CHANGE' : 'PEER_ADDED']);
    });
  }

  private markPeer(id: string, status: NodeStatus, change: GroupChange): void {
    const n = this.view.nodes[id];
    if (!n || id === this.selfId || n.status === status) return;
    this.mutate(() => {
      const now = this.host.clock.nowMicros();
      n.status = status;
      n.documentVersion++;
      n.documentUpdateTimeMicros = now;
      this.view.membershipUpdateTimeMicros = Math.max(now, this.view.membershipUpdateTimeMicros);
      if (status === 'UNAVAILABLE') n.documentExpirationTimeMicros = now + this.config.nodeRemovalDelayMicros;
      return new Set<GroupChange>([change]);
    });
  }

  private bumpSelf(fn: (s: NodeState) => void): void {
    const s = this.self();
    const now = this.host.clock.nowMicros();
    fn(s);
    s.documentVersion++;
    s.documentUpdateTimeMicros = now;
    this.view.membershipUpdateTimeMicros = Math.max(now, this.view.membershipUpdateTimeMicros);
  }

  private mutate(fn: () => Set<GroupChange>, selfMarked: () => boolean = () => false): ReadonlySet<GroupChange> {
    const before = new Map(this.nodes().map((n) => [n.id, { status: n.status, q: n.membershipQuorum }]));
    const changes = fn();
    if (changes.size === 0) return changes;
    const now = this.host.clock.nowMicros();
    this.generation++;
    this.lastChanges = [...changes];
    this.view.localMembershipUpdateTimeMicros = now;
    const after = this.nodes();
    const diff: MembershipDiff = { changes, becameAvailable: [], lost: [], selfMarkedUnavailable: selfMarked() };
    for (const n of after) {
      if (n.id === this.selfId) continue;
      const was = before.get(n.id)?.status;
      if (n.status === 'AVAILABLE' && was !== 'AVAILABLE') diff.becameAvailable.push(n.id);
      if (isUnavailable(n) && was !== undefined && !['UNAVAILABLE', 'REPLACED'].includes(was)) diff.lost.push(n.id);
    }
    for (const [id, b] of before) if (!this.view.nodes[id] && !['UNAVAILABLE', 'REPLACED'].includes(b.status)) diff.lost.push(id);
    for (const l of this.listeners) l(diff);
    return changes;
  }
}
