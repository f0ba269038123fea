import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { Kinds, NODE_GROUP_LINK, NODE_SELECTOR_LINK, type SelectOwnerResponse } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';

/**
 * `/core/node-selectors/default` (spec B.1): GET the NodeSelectorState; POST `{"key": link}` answers
 * Xenon's SelectOwnerResponse (which member owns that link, by consistent hashing).
 */
export class NodeSelectorService implements Service {
  readonly link = NODE_SELECTOR_LINK;

  constructor(
    private readonly host: Host,
    private readonly group: NodeGroup,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action === 'GET') {
      return {
        status: 200,
        body: {
          nodeGroupLink: NODE_GROUP_LINK,
          membershipQuorum: this.group.quorum(),
          membershipUpdateTimeMicros: this.group.membershipUpdateTimeMicros,
          status: this.group.isAvailable() ? 'AVAILABLE' : 'UNAVAILABLE',
          documentVersion: 0,
          documentKind: Kinds.NODE_SELECTOR_STATE,
          documentSelfLink: NODE_SELECTOR_LINK,
          documentUpdateTimeMicros: this.group.membershipUpdateTimeMicros,
          documentExpirationTimeMicros: 0,
          documentOwner: this.host.id,
        },
      };
    }
    if (op.action !== 'POST') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const body = op.bodyObject() ?? {};
    const key = body['key'];
    if (typeof key !== 'string' || key === '') fail('VALIDATION', 'key is required');
    if (body['targetPath'] !== undefined) fail('VALIDATION', 'krypton does not forward through the node selector; send the request to any member, it reaches the owner');
    const owner = this.group.owner(key);
    const res: SelectOwnerResponse = {
      key,
      ownerNodeId: owner.id,
      ownerNodeGroupReference: owner.groupReference,
      isLocalHostOwner: owner.isLocal,
      availableNodeCount: this.group.ownerCandidateCount() || 1,
      selectedNodes: [this.group.node(owner.id)!].filter(Boolean),
      membershipUpdateTimeMicros: this.group.membershipUpdateTimeMicros,
      documentKind: Kinds.SELECT_OWNER_RESPONSE,
    };
    return { status: 200, body: res };
  }
}
