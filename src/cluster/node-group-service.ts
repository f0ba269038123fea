import { fail } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { genericUtility } from '../services/utility-handlers.js';
import type { Gossip } from './gossip.js';
import {
  Kinds,
  NODE_GROUP_LINK,
  NODE_GROUPS_LINK,
  isGossip,
  isJoinPeerRequest,
  isNodeStateInsert,
  isUpdateQuorumRequest,
  type JoinPeerRequest,
  type NodeState,
  type UpdateQuorumRequest,
} from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import type { PeerAuth } from './peer-auth.js';
import { clientCredentials, type PeerClient } from './peer-client.js';

const STATUSES = new Set(['UNKNOWN', 'UNAVAILABLE', 'AVAILABLE', 'SYNCHRONIZING', 'REPLACED']);

/**
 * `/core/node-groups/default` (spec A.1): GET the view; POST a JoinPeerRequest (or, from a peer, a
 * NodeState to insert); PATCH a gossip body (peers only), an UpdateQuorumRequest, or a config.
 * `…/available` answers 200 while the group is settled and has quorum, else 503.
 */
export class NodeGroupService implements Service {
  readonly link = NODE_GROUP_LINK;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
    private readonly gossip: Gossip,
    private readonly auth: PeerAuth,
    private readonly client: PeerClient,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action === 'GET') return { status: 200, body: this.group.state() };
    const body = (op.bodyObject() ?? {}) as Doc;
    if (op.action === 'POST') {
      if (isJoinPeerRequest(body)) {
        if (!this.auth.enabled) fail('VALIDATION', 'this node has no group secret: start every member with the same --groupSecret=<secret> (or --groupSecretFile) to form a group');
        await this.gossip.join(body as unknown as JoinPeerRequest, this.host.clock.nowMicros() + this.group.settings.operationTimeoutMicros);
        return { status: 200, body: this.group.state() };
      }
      if (isNodeStateInsert(body)) {
        const peer = this.auth.requirePeer(op, 'node entries (POST NodeState)');
        this.group.insert(checkNode(body));
        this.gossip.heard(peer);
        return { status: 200, body: this.group.state() };
      }
      return fail('VALIDATION', 'id is required');
    }
    if (op.action === 'PATCH') {
      if (isGossip(body)) return this.receiveGossip(op, body);
      if (isUpdateQuorumRequest(body)) return this.updateQuorum(op, body as unknown as UpdateQuorumRequest);
      if (body['config'] && typeof body['config'] === 'object' && body['nodes'] == null) {
        this.group.config = { ...this.group.config, ...(body['config'] as object) };
        return { status: 200, body: this.group.state() };
      }
      return fail('VALIDATION', 'nodes or config are required');
    }
    return fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
  }

  async handleUtility(op: Operation, suffix: string): Promise<Reply> {
    if (suffix === 'available' && op.action === 'GET') {
      if (this.group.isAvailable()) return { status: 200 };
      return fail('UNAVAILABLE', `node group not available: settled=${this.group.isMembershipSettled()}, quorum=${this.group.hasMembershipQuorum()}`);
    }
    return genericUtility(this.host, this.link, op, suffix);
  }

  private receiveGossip(op: Operation, body: Doc): Reply {
    const peer = this.auth.requirePeer(op, 'gossip (PATCH with nodes)');
    if (typeof body['documentOwner'] !== 'string') fail('VALIDATION', 'documentOwner is required in a gossip body');
    const nodes = body['nodes'] as Record<string, Doc>;
    for (const n of Object.values(nodes)) checkNode(n);
    this.gossip.heard(peer);
    this.group.merge({
      nodes: nodes as unknown as Record<string, NodeState>,
      documentOwner: body['documentOwner'] as string,
      membershipUpdateTimeMicros: Number(body['membershipUpdateTimeMicros'] ?? 0),
    });
    return { status: 200, body: this.group.state() };
  }

  /** A.8: set the quorum here, then (isGroupUpdate) on every other AVAILABLE member. */
  private async updateQuorum(op: Operation, req: UpdateQuorumRequest): Promise<Reply> {
    if (req.membershipQuorum != null && !Number.isInteger(req.membershipQuorum)) fail('VALIDATION', 'membershipQuorum must be an integer');
    if (req.locationQuorum != null && !Number.isInteger(req.locationQuorum)) fail('VALIDATION', 'locationQuorum must be an integer');
    // Xenon: max(1, value), so 0 or a negative quorum means 1.
    if (req.membershipQuorum != null) req.membershipQuorum = Math.max(1, req.membershipQuorum);
    if (req.locationQuorum != null) req.locationQuorum = Math.max(1, req.locationQuorum);
    this.group.updateSelf({ membershipQuorum: req.membershipQuorum, locationQuorum: req.locationQuorum });
    if (!req.isGroupUpdate) return { status: 200, body: this.group.state() };
    const peers = this.group.peers().filter((n) => n.status === 'AVAILABLE');
    const forward: UpdateQuorumRequest = { kind: Kinds.UPDATE_QUORUM_REQUEST, isGroupUpdate: false, membershipQuorum: req.membershipQuorum ?? null, locationQuorum: req.locationQuorum ?? null };
    const auth = clientCredentials(op.headers);
    const results = await Promise.allSettled(
      peers.map((p) => {
        if (req.membershipQuorum != null) this.group.setPeerQuorum(p.id, req.membershipQuorum);
        return this.client.json(p.groupReference, { method: 'PATCH', body: forward, headers: auth, timeoutMs: this.group.peerTimeoutMs() });
      }),
    );
    const failed = results.filter((r) => r.status === 'rejected').length;
    const n = peers.length + 1;
    if (failed > Math.floor((n - 1) / 2)) fail('INTERNAL', `Majority of nodes failed request (${failed} of ${peers.length} peers); retry the update`);
    return { status: 200, body: this.group.state() };
  }
}

/** `/core/node-groups`: the node-group factory; krypton runs one group, `default`. */
export class NodeGroupsFactoryService implements Service {
  readonly link = NODE_GROUPS_LINK;

  constructor(private readonly host: Host) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action !== 'GET') fail('VALIDATION', `krypton runs one node group per host (${NODE_GROUP_LINK}); ${op.action} is not supported here`);
    return { status: 200, body: { documentLinks: [NODE_GROUP_LINK], documentCount: 1, documentVersion: 0, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0, documentOwner: this.host.id } };
  }
}

function checkNode(n: Doc): NodeState {
  const ok =
    typeof n['id'] === 'string' && typeof n['groupReference'] === 'string' && STATUSES.has(n['status'] as string) && Number.isInteger(n['documentVersion']) && Number.isInteger(n['membershipQuorum']);
  if (!ok) fail('VALIDATION', 'a NodeState needs id, groupReference, status, documentVersion and membershipQuorum');
  return {
    options: ['PEER'],
    locationQuorum: 1,
    customProperties: {},
    documentExpirationTimeMicros: 0,
    documentUpdateTimeMicros: 0,
    documentKind: Kinds.NODE_STATE,
    documentSelfLink: `${NODE_GROUP_LINK}/${String(n['id'])}`,
    ...n,
  } as unknown as NodeState;
}
