/**
 * Every message a node group exchanges, in one module (CONVENTIONS: cluster). Xenon's shapes
 * (NodeGroupState, NodeState, JoinPeerRequest, UpdateQuorumRequest, NodeSelectorState) keep
 * Xenon's field names and kinds so Xenon clients read them; krypton's peer-to-peer messages
 * (replication, rollback, synchronization) are krypton's own and are accepted only from members.
 */
import type { Doc } from '../core/document.js';

export const NODE_GROUPS_LINK = '/core/node-groups';
export const NODE_GROUP_LINK = '/core/node-groups/default';
export const NODE_SELECTOR_LINK = '/core/node-selectors/default';
/** Peer-only: replicated versions and rollbacks (Xenon's internal `…/replication` helper). */
export const REPLICATION_LINK = '/core/node-selectors/default/replication';
/** Peer-only: synchronization summaries and documents (Xenon's internal `…/synch`). */
export const SYNCH_LINK = '/core/node-selectors/default/synch';

/** Bumped on any incompatible change of the messages below; peers with another version are refused. */
export const GROUP_PROTOCOL_VERSION = 1;

export const Kinds = Object.freeze({
  NODE_GROUP_STATE: 'com:vmware:xenon:services:common:NodeGroupService:NodeGroupState',
  NODE_STATE: 'com:vmware:xenon:services:common:NodeState',
  JOIN_PEER_REQUEST: 'com:vmware:xenon:services:common:NodeGroupService:JoinPeerRequest',
  UPDATE_QUORUM_REQUEST: 'com:vmware:xenon:services:common:NodeGroupService:UpdateQuorumRequest',
  NODE_SELECTOR_STATE: 'com:vmware:xenon:common:NodeSelectorState',
  SELECT_OWNER_RESPONSE: 'com:vmware:xenon:common:NodeSelectorService:SelectOwnerResponse',
  REPLICATION_REQUEST: 'krypton:cluster:ReplicationRequest',
  ROLLBACK_REQUEST: 'krypton:cluster:RollbackRequest',
  SYNCH_SUMMARY_REQUEST: 'krypton:cluster:SynchSummaryRequest',
  SYNCH_FETCH_REQUEST: 'krypton:cluster:SynchFetchRequest',
});

/** Headers every peer request carries (see peer-auth.ts). */
export const PeerHeaders = Object.freeze({
  ID: 'x-krypton-peer-id',
  AUTH: 'x-krypton-peer-auth',
  PROTOCOL: 'x-krypton-group-protocol',
  /** A forwarded request's deadline (epoch micros): past it the sender has answered its client, so the owner must not apply it. */
  DEADLINE: 'x-krypton-deadline-micros',
});

/** `NodeState.customProperties` keys krypton adds (Xenon keeps string values there). */
export const NodeProps = Object.freeze({
  /** Random per process start: a restart is a new incarnation, detected even at the same address. */
  INSTANCE_ID: 'krypton.instanceId',
  /** Process start time (micros): orders incarnations of one node id. */
  INSTANCE_START: 'krypton.instanceStartMicros',
  PROTOCOL: 'krypton.groupProtocolVersion',
});

export type NodeStatus = 'UNKNOWN' | 'UNAVAILABLE' | 'AVAILABLE' | 'SYNCHRONIZING' | 'REPLACED';
export type NodeOption = 'PEER' | 'OBSERVER';

/** Xenon's NodeState: one member's entry. `documentVersion` is the version of the entry. */
export interface NodeState {
  groupReference: string;
  status: NodeStatus;
  options: NodeOption[];
  id: string;
  membershipQuorum: number;
  locationQuorum: number;
  customProperties: Record<string, string>;
  documentVersion: number;
  documentKind: string;
  documentSelfLink: string;
  documentUpdateTimeMicros: number;
  documentExpirationTimeMicros: number;
}

export interface NodeGroupConfig {
  nodeRemovalDelayMicros: number;
  stableGroupMaintenanceIntervalCount: number;
  peerRequestTimeoutMicros: number;
}

export type GroupChange = 'SELF_CHANGE' | 'QUORUM_CHANGED' | 'PEER_ADDED' | 'PEER_STATUS_CHANGE' | 'PEER_UNAVAILABLE' | 'PEER_EXPIRED';

/** Xenon's NodeGroupState: a node's view of the group; also the gossip body (PATCH). */
export interface NodeGroupState {
  config: NodeGroupConfig;
  nodes: Record<string, NodeState>;
  lastChanges: GroupChange[];
  membershipUpdateTimeMicros: number;
  localMembershipUpdateTimeMicros: number;
  /** The node that produced this view (the sender, in gossip). */
  documentOwner: string;
  documentVersion: number;
  documentKind: string;
  documentSelfLink: string;
  documentUpdateTimeMicros: number;
  documentExpirationTimeMicros: number;
}

export interface JoinPeerRequest {
  kind?: string;
  memberGroupReference: string;
  membershipQuorum?: number | null;
  locationQuorum?: number | null;
  localNodeOptions?: NodeOption[] | null;
}

export interface UpdateQuorumRequest {
  kind: string;
  isGroupUpdate: boolean;
  membershipQuorum?: number | null;
  locationQuorum?: number | null;
}

/** One version of a document as the owner committed it; replicas store it as is (no handlers). */
export interface ReplicatedVersion {
  doc: Doc;
  purgeFirst: boolean;
}

/** The versions of one write (a create, an update, or one import batch) of one factory. */
export interface ReplicationItem {
  factoryLink: string;
  versions: ReplicatedVersion[];
}

/**
 * `mode: 'replicate'`: from the owner, applied when it continues the replica's copy (higher
 * version, epoch not lower). `mode: 'synch'`: applied when newer (synchronization rules).
 */
export interface ReplicationRequest {
  kind: string;
  mode: 'replicate' | 'synch';
  items: ReplicationItem[];
}

export type ReplicationResult =
  | { status: 'ok' }
  /** The replica holds a copy the owner has not seen (newer or conflicting): the owner adopts it first. */
  | { status: 'stale'; current: Doc }
  /** The version was rolled back (a failed write); it is never stored again. */
  | { status: 'revoked' }
  | { status: 'failed'; statusCode: number; message: string };

export interface ReplicationResponse {
  results: ReplicationResult[];
}

/** A version of a write that failed for lack of quorum: removed wherever it was stored, never restored. */
export interface Revocation {
  link: string;
  version: number;
  updateTimeMicros: number;
}

export interface RollbackRequest {
  kind: string;
  factoryLink: string;
  revocations: Revocation[];
}

/** One page of a factory's latest versions, by link (keyset `afterLink`). */
export interface SynchSummaryRequest {
  kind: string;
  factoryLink: string;
  afterLink: string;
  limit: number;
}

/** `[documentSelfLink, documentEpoch, documentVersion, documentUpdateTimeMicros]`. */
export type SummaryEntry = [string, number, number, number];

export interface SynchSummaryResponse {
  entries: SummaryEntry[];
  /** Present on the first page (`afterLink` empty): every revocation the peer knows for the factory. */
  revocations?: Revocation[];
  nextAfterLink?: string;
}

export interface SynchFetchRequest {
  kind: string;
  factoryLink: string;
  links: string[];
}

export interface SynchFetchResponse {
  documents: Doc[];
}

/** Xenon's SelectOwnerResponse (POST `{key}` to the node selector). */
export interface SelectOwnerResponse {
  key: string;
  ownerNodeId: string;
  ownerNodeGroupReference: string;
  isLocalHostOwner: boolean;
  availableNodeCount: number;
  selectedNodes: NodeState[];
  membershipUpdateTimeMicros: number;
  documentKind: string;
}

export function isUnavailable(n: NodeState): boolean {
  return n.status === 'UNAVAILABLE' || n.status === 'REPLACED';
}

export function isObserver(n: NodeState): boolean {
  return n.options.includes('OBSERVER');
}

/** The base URI (scheme, host, port) of a node, from its groupReference. */
export function nodeBaseUri(n: Pick<NodeState, 'groupReference'>): string {
  const u = new URL(n.groupReference);
  return `${u.protocol}//${u.host}`;
}

/** Orders two incarnations of one node id: by start time, then instance id. */
export function compareIncarnation(a: NodeState, b: NodeState): number {
  const sa = Number(a.customProperties?.[NodeProps.INSTANCE_START] ?? 0);
  const sb = Number(b.customProperties?.[NodeProps.INSTANCE_START] ?? 0);
  if (sa !== sb) return sa < sb ? -1 : 1;
  const ia = a.customProperties?.[NodeProps.INSTANCE_ID] ?? '';
  const ib = b.customProperties?.[NodeProps.INSTANCE_ID] ?? '';
  return ia === ib ? 0 : ia < ib ? -1 : 1;
}

export function isJoinPeerRequest(b: Doc): boolean {
  return typeof b['memberGroupReference'] === 'string';
}

export function isUpdateQuorumRequest(b: Doc): boolean {
  return b['kind'] === Kinds.UPDATE_QUORUM_REQUEST && b['nodes'] == null && b['config'] == null;
}

export function isGossip(b: Doc): boolean {
  const nodes = b['nodes'];
  return !!nodes && typeof nodes === 'object' && Object.keys(nodes).length > 0;
}

export function isNodeStateInsert(b: Doc): boolean {
  return typeof b['id'] === 'string' && typeof b['groupReference'] === 'string' && b['nodes'] == null;
}
