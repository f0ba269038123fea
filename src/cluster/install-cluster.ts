import { defaultUri, type Host } from '../core/host.js';
import type { Operation } from '../core/operation.js';
import { RawJson } from '../core/operation.js';
import { FactoryService } from '../services/factory-service.js';
import { QueryTaskService } from '../query/query-task-service.js';
import { QueryPageForwardingService } from '../query/query-page-service.js';
import { hasOption } from '../query/query-engine.js';
import { MigrationTaskService } from '../migration/migration-task-service.js';
import { MigrationImportService, MIGRATION_IMPORT_LINK } from '../migration/migration-import-service.js';
import { MIGRATION_TASKS_LINK } from '../migration/migration-state.js';
import { clusterSettings } from './cluster-settings.js';
import { Gossip } from './gossip.js';
import { ImportRouter } from './import-router.js';
import { NODE_GROUP_LINK, REPLICATION_LINK, SYNCH_LINK, nodeBaseUri } from './node-group-messages.js';
import { NodeGroup } from './node-group.js';
import { MemberStatus } from './member-status.js';
import { NodeGroupService, NodeGroupsFactoryService } from './node-group-service.js';
import { NodeSelectorService } from './node-selector-service.js';
import { ownerForwardingFilter } from './owner-forwarding.js';
import { PeerAuth, peerFilter } from './peer-auth.js';
import { clientCredentials, PeerClient } from './peer-client.js';
import { ReplicationService, SynchService } from './peer-services.js';
import { RepairQueue } from './repair-queue.js';
import { ReplicaStore } from './replica-store.js';
import { Replicator } from './replicator.js';
import { Synchronizer } from './synchronizer.js';

/** The parts of a node group on one host (exposed for tests and the benchmark). */
export interface Cluster {
  group: NodeGroup;
  gossip: Gossip;
  synchronizer: Synchronizer;
}

/**
 * Makes the host a member of a node group (a group of one until it joins or is joined): the
 * node-group and node-selector services, peer authentication and owner forwarding (request filters,
 * in that order, before any other), replication on every factory's write path, synchronization on
 * membership changes, owner-routed migration imports, and the query hooks (OWNER_SELECTION, pages
 * held by other members). Call after every service is registered.
 */
export function installCluster(host: Host): Cluster {
  const o = host.options;
  const self = new URL(o.publicUri ?? defaultUri(o.bindAddress, o.port));
  const settings = clusterSettings(o, self.href, Number(self.port || 80));
  const auth = new PeerAuth(settings.peerKey, host.id);
  const group = new NodeGroup(host, settings, auth.protocolVersion);
  const client = new PeerClient(auth);
  const replicas = new ReplicaStore(host);
  const repairs = new RepairQueue(host, client, () => group.peerTimeoutMs());
  const synchronizer = new Synchronizer(host, group, client, replicas);
  const replicator = new Replicator(host, group, client, replicas, repairs, () => synchronizer.request('a replica held a copy the owner had not seen'));
  const gossip = new Gossip(host, group, client);
  const router = new ImportRouter(host, group, client);

  host.register(new NodeGroupsFactoryService(host));
  host.register(new NodeGroupService(host, group, gossip, auth, client));
  host.register(new NodeSelectorService(host, group));
  host.register(new ReplicationService(host, group, auth, replicas));
  host.register(new SynchService(host, group, auth, replicas, synchronizer));
  // Xenon's chain: authentication → authorization → forward to owner. Peer authentication goes
  // first of all, so that verified peers reach their endpoints as the system identity.
  host.addFilter(peerFilter(auth, group, isPeerEndpoint, host.options.isAuthorizationEnabled), 'first');
  host.addFilter(ownerForwardingFilter(host, group, client));

  for (const link of host.serviceLinks()) {
    const s = host.service(link);
    if (s instanceof FactoryService) s.writer.replication = replicator;
  }
  wireQueries(host, group, client);
  const migration = host.service(MIGRATION_TASKS_LINK);
  if (migration instanceof MigrationTaskService) migration.importLocally = (f, d, h, ov, p, credentials) => router.route(f, d, h, ov, p, undefined, credentials);
  const importService = host.service(MIGRATION_IMPORT_LINK);
  if (importService instanceof MigrationImportService) importService.importer = (f, d, h, ov, p, op) => router.route(f, d, h, ov, p, op);

  new MemberStatus(host, group, gossip, synchronizer, repairs);
  host.addComponent({
    start: () => gossip.start(),
    stop: async () => {
      gossip.stop();
      await client.close();
    },
  });
  return { group, gossip, synchronizer };
}

/** Peer endpoints act as the system identity once the peer is verified (see peerFilter). */
function isPeerEndpoint(op: Operation): boolean {
  return op.path === REPLICATION_LINK || op.path === SYNCH_LINK || op.path === NODE_GROUP_LINK;
}

/**
 * OWNER_SELECTION on a local query task keeps the documents this node owns (by consistent hashing
 * over the members when the query is created — not the stored `documentOwner`, so data restored
 * from another host is still selected exactly once, and later pages keep the same partition). Query tasks on `/core/query-tasks` answer from the local index: with
 * full replication every synchronized member holds every document, so a BROADCAST query's merged
 * answer is the local one and lists each document once. Pages held by another member are fetched
 * from it.
 */
function wireQueries(host: Host, group: NodeGroup, client: PeerClient): void {
  const local = host.service('/core/local-query-tasks');
  if (local instanceof QueryTaskService) local.ownerFilter = (spec) => (hasOption(spec, 'OWNER_SELECTION') ? group.ownerSnapshot() : undefined);
  const pages = host.service('/core/query-page-forwarding');
  if (pages instanceof QueryPageForwardingService) {
    pages.forwarder = async (peerId, op, pagePath) => {
      const peer = group.node(peerId);
      if (!peer || peerId === host.id) return undefined;
      const headers = clientCredentials(op.headers);
      const limit = op.query.get('$limit');
      const res = await client.send(`${nodeBaseUri(peer)}${pagePath}${limit ? `?$limit=${encodeURIComponent(limit)}` : ''}`, {
        method: 'GET',
        headers,
        timeoutMs: Math.ceil(group.settings.operationTimeoutMicros / 1000),
        signed: false,
      });
      return { status: res.status, body: new RawJson(res.text) };
    };
  }
}
