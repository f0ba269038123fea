import { compareIncarnation, isUnavailable, type GroupChange, type NodeState } from './node-group-messages.js';

/** The mutable part of a node's view that gossip merges into. */
export interface GroupView {
  nodes: Record<string, NodeState>;
  membershipUpdateTimeMicros: number;
  localMembershipUpdateTimeMicros: number;
}

export interface MergeInput {
  nodes: Record<string, NodeState>;
  /** The sender; equal to `selfId` for a self-patch. */
  documentOwner: string;
  membershipUpdateTimeMicros: number;
}

export interface MergeContext {
  selfId: string;
  selfGroupReference: string;
  nowMicros: number;
  nodeRemovalDelayMicros: number;
}

export interface MergeResult {
  changes: Set<GroupChange>;
  /** A peer reports that the group marked this node UNAVAILABLE (a newer entry version). */
  selfMarkedUnavailable: boolean;
}

/**
 * Xenon's gossip merge (NodeGroupService.handlePatch, spec A.5 rules 1–9), applied in place.
 * krypton's addition: entries carry an incarnation (per-process instance id and start time), so a
 * restarted node's fresh entry replaces its old one whatever the versions, and rumours about an
 * older incarnation are ignored. Changes are recorded only when they are applied.
 */
export function mergeGroup(local: GroupView, incoming: MergeInput, ctx: MergeContext): MergeResult {
  const changes = new Set<GroupChange>();
  let selfMarkedUnavailable = false;
  const now = ctx.nowMicros;
  const isSelfPatch = incoming.documentOwner === ctx.selfId;
  for (const remote of Object.values(incoming.nodes)) {
    const r: NodeState = { ...remote, customProperties: { ...(remote.customProperties ?? {}) }, options: [...(remote.options ?? ['PEER'])] };
    const l = local.nodes[r.id];
    // Rule 1: never adopt a status for yourself; out-vote a stale rumour by taking its version.
    if (r.id === ctx.selfId) {
      if (!l || compareIncarnation(r, l) !== 0 || isSelfPatch) continue;
      if (r.status !== l.status && r.documentVersion > l.documentVersion) {
        l.documentVersion = r.documentVersion;
        l.documentUpdateTimeMicros = now;
        changes.add('SELF_CHANGE');
        if (isUnavailable(r)) selfMarkedUnavailable = true;
      }
      continue;
    }
    // Rule 2: a node we do not know.
    if (!l) {
      const expired = r.documentExpirationTimeMicros > 0 && r.documentExpirationTimeMicros < now;
      if (expired || isUnavailable(r)) continue;
      if (r.groupReference === ctx.selfGroupReference) {
        changes.add('SELF_CHANGE');
        continue;
      }
      local.nodes[r.id] = r;
      changes.add('PEER_ADDED');
      continue;
    }
    const incarnation = compareIncarnation(r, l);
    if (incarnation < 0) continue;
    if (incarnation > 0) {
      local.nodes[r.id] = r;
      changes.add('PEER_STATUS_CHANGE');
      continue;
    }
    // Rule 3.
    let needsUpdate = r.status !== l.status;
    const quorumChanged = r.membershipQuorum !== l.membershipQuorum;
    needsUpdate ||= quorumChanged;
    // Rules 5 and 6: versions only move forward; equal versions: the most recent update wins.
    if (r.documentVersion < l.documentVersion) continue;
    if (r.documentVersion === l.documentVersion && (!needsUpdate || r.documentUpdateTimeMicros < l.documentUpdateTimeMicros)) continue;
    if (r.status !== l.status) {
      if (l.status === 'AVAILABLE' && r.status === 'UNAVAILABLE') changes.add('PEER_UNAVAILABLE');
      else changes.add('PEER_STATUS_CHANGE');
    }
    if (quorumChanged) changes.add('QUORUM_CHANGED');
    // Rule 7: an UNAVAILABLE entry gets an expiration, after which it is removed.
    if (r.status === 'UNAVAILABLE' && !r.documentExpirationTimeMicros && !l.documentExpirationTimeMicros) {
      r.documentExpirationTimeMicros = now + ctx.nodeRemovalDelayMicros;
      changes.add('PEER_UNAVAILABLE');
    } else if (r.status === 'UNAVAILABLE' && !r.documentExpirationTimeMicros) {
      r.documentExpirationTimeMicros = l.documentExpirationTimeMicros;
    }
    // Rule 8: only unavailable entries get their version bumped by other nodes.
    if (l.status === 'UNAVAILABLE' && r.status === 'UNAVAILABLE' && needsUpdate) r.documentVersion++;
    if (r.status !== 'UNAVAILABLE') r.documentExpirationTimeMicros = 0;
    // Rule 9: the whole entry is replaced, quorum included.
    local.nodes[r.id] = r;
  }
  for (const [id, n] of Object.entries(local.nodes)) {
    if (id === ctx.selfId || !isUnavailable(n)) continue;
    const exp = Math.max(n.documentExpirationTimeMicros, incoming.nodes[id]?.documentExpirationTimeMicros ?? 0);
    if (exp > 0 && exp < now) {
      delete local.nodes[id];
      changes.add('PEER_EXPIRED');
    }
  }
  const changed = changes.size > 0;
  local.membershipUpdateTimeMicros = Math.max(incoming.membershipUpdateTimeMicros, changed ? now : local.membershipUpdateTimeMicros);
  if (changed) local.localMembershipUpdateTimeMicros = now;
  return { changes, selfMarkedUnavailable };
}
