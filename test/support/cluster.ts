import assert from 'node:assert/strict';
import { freePort, http, startHost, waitFor, type RunningHost } from './hosts.js';

export const SECRET = 'test-group-secret';

/** Timings shortened for tests (each is one flag): gossip 100 ms, UNAVAILABLE after 4 s of silence. */
export const FAST_GROUP = ['--gossipIntervalMicros=100000', '--nodeUnavailableTimeoutMicros=4000000', '--peerRequestTimeoutMicros=5000000', '--operationTimeoutMicros=15000000'];

export interface GroupMember extends RunningHost {
  id: string;
  args: string[];
}

/** Starts n hosts that form a group through --peerNodes, and waits until every view converged. */
export async function startGroup(n: number, prefix: string, extra: string[] = [], opts: { sandboxes?: (string | undefined)[] } = {}): Promise<GroupMember[]> {
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  const members = await Promise.all(
    ports.map(async (port, i) => {
      const peers = ports.filter((p) => p !== port).map((p) => `http://127.0.0.1:${p}`);
      const args = [`--id=${prefix}-${i + 1}`, `--groupSecret=${SECRET}`, ...FAST_GROUP, ...(peers.length ? [`--peerNodes=${peers.join(',')}`] : []), ...extra];
      const sandbox = opts.sandboxes?.[i];
      const h = await startHost(args, { port, ...(sandbox ? { sandbox } : {}) });
      return { ...h, id: `${prefix}-${i + 1}`, args };
    }),
  );
  await waitConverged(members);
  return members;
}

/** Restarts a member with the same sandbox, id, port and flags. */
export async function restart(m: GroupMember): Promise<GroupMember> {
  const h = await startHost(m.args, { port: m.port, sandbox: m.sandbox });
  return { ...h, id: m.id, args: m.args };
}

export async function groupState(m: RunningHost): Promise<any> {
  const r = await http('GET', `${m.uri}/core/node-groups/default`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/**
 * Polls until every member sees exactly the given members AVAILABLE, with the same membership time
 * and (optionally) the same quorum everywhere.
 */
export async function waitConverged(members: readonly RunningHost[], quorum?: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const states = await Promise.all(members.map(groupState));
      const times = new Set(states.map((s) => s.membershipUpdateTimeMicros));
      const ids = states
        .map((s) => s.documentOwner)
        .sort()
        .join(',');
      for (const s of states) {
        // Members that left stay listed as UNAVAILABLE until nodeRemovalDelayMicros passes.
        const nodes = (Object.values(s.nodes) as any[]).filter((x) => x.status !== 'UNAVAILABLE' && x.status !== 'REPLACED');
        if (
          nodes
            .map((x) => x.id)
            .sort()
            .join(',') !== ids ||
          nodes.some((x) => x.status !== 'AVAILABLE')
        )
          return false;
        if (quorum !== undefined && nodes.some((x) => x.membershipQuorum !== quorum)) return false;
      }
      return times.size === 1;
    },
    `${members.length} members to converge${quorum ? ` with quorum ${quorum}` : ''}`,
    timeoutMs,
    100,
  );
}

/** PATCH UpdateQuorumRequest with isGroupUpdate (A.8), then poll every member (the spec's loop). */
export async function setQuorum(members: readonly RunningHost[], quorum: number): Promise<void> {
  const r = await http('PATCH', `${members[0]!.uri}/core/node-groups/default`, {
    kind: 'com:vmware:xenon:services:common:NodeGroupService:UpdateQuorumRequest',
    isGroupUpdate: true,
    membershipQuorum: quorum,
  });
  assert.equal(r.status, 200, r.text);
  await waitConverged(members, quorum);
}

/** A member's own stored copy of a document, bypassing owner forwarding (the document index). */
export async function localCopy(m: RunningHost, link: string): Promise<any> {
  const r = await http('GET', `${m.uri}/core/document-index?documentSelfLink=${encodeURIComponent(link)}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

export async function ownerOf(m: RunningHost, link: string): Promise<string> {
  const r = await http('POST', `${m.uri}/core/node-selectors/default`, { key: link });
  assert.equal(r.status, 200, r.text);
  return r.json.ownerNodeId;
}

/** Loads documents quickly through the batched import (each routed to its owner and replicated). */
export async function importExamples(base: string, n: number, prefix: string, batch = 5000, factory = '/core/examples'): Promise<void> {
  const t0 = Date.now() * 1000;
  for (let start = 0; start < n; start += batch) {
    const documents = [];
    for (let i = start; i < Math.min(n, start + batch); i++) documents.push({ name: `${prefix}-${i}`, counter: i, documentSelfLink: `/${prefix}-${i}`, documentUpdateTimeMicros: t0 + i });
    const r = await http('POST', `${base}/management/migration-import`, { destinationFactoryLink: factory, documents });
    assert.equal(r.status, 200, r.text.slice(0, 500));
    assert.equal(r.json.outcomes.filter((o: any) => o.result !== 'migrated').length, 0);
  }
}

/** The number of live documents a member holds in a factory (its local index). */
export async function localCount(m: RunningHost, factory = '/core/examples'): Promise<number> {
  const r = await http('GET', `${m.uri}${factory}?$count=true`);
  if (r.status !== 200) return -1;
  return r.json.totalCount ?? r.json.documentCount;
}
