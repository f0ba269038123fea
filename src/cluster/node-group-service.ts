import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { SimpleService } from '../services/core-services.js';
import type { Service } from '../core/service.js';

export const NODE_GROUP_KIND = 'com:vmware:xenon:services:common:NodeGroupService:NodeGroupState';
const NODE_STATE_KIND = 'com:vmware:xenon:services:common:NodeState';

/** The local node's entry in Xenon's NodeState shape. */
export function localNodeState(host: Host, membershipQuorum: number): Doc {
  return {
    groupReference: `${host.uri}/core/node-groups/default`,
    status: 'AVAILABLE',
    options: ['PEER'],
    id: host.id,
    membershipQuorum,
    locationQuorum: 0,
    documentVersion: 0,
    documentKind: NODE_STATE_KIND,
    documentSelfLink: `/core/node-groups/default/${host.id}`,
    documentUpdateTimeMicros: 0,
    documentExpirationTimeMicros: 0,
  };
}

/**
 * `/core/node-groups/default` for a host that is alone: a one-node NodeGroupState. Readiness probes
 * (and the migration task's convergence check) read it.
 */
export function singleNodeGroup(host: Host): Service {
  const started = host.clock.nowMicros();
  return new SimpleService('/core/node-groups/default', {
    GET: () => ({
      status: 200,
      body: {
        config: { nodeRemovalDelayMicros: 300_000_000, stableGroupMaintenanceIntervalCount: 5, peerRequestTimeoutMicros: 10_000_000 },
        nodes: { [host.id]: localNodeState(host, 1) },
        membershipUpdateTimeMicros: started,
        localMembershipUpdateTimeMicros: started,
        documentVersion: 0,
        documentKind: NODE_GROUP_KIND,
        documentSelfLink: '/core/node-groups/default',
        documentUpdateTimeMicros: started,
        documentExpirationTimeMicros: 0,
        documentOwner: host.id,
      },
    }),
  });
}

/** `/core/node-selectors/default`: on one node, every link is owned locally. */
export function singleNodeSelector(host: Host): Service {
  return new SimpleService('/core/node-selectors/default', {
    GET: () => ({
      status: 200,
      body: {
        nodeGroupLink: '/core/node-groups/default',
        membershipQuorum: 1,
        membershipUpdateTimeMicros: 0,
        status: 'AVAILABLE',
        documentVersion: 0,
        documentKind: 'com:vmware:xenon:common:NodeSelectorState',
        documentSelfLink: '/core/node-selectors/default',
        documentUpdateTimeMicros: 0,
        documentExpirationTimeMicros: 0,
        documentOwner: host.id,
      },
    }),
  });
}
