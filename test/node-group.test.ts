import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI, http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { PeerAuth } from '../src/cluster/peer-auth.js';
import { peerKey } from '../src/cluster/cluster-settings.js';
import { FAST_GROUP, SECRET, groupState, importExamples, localCopy, localCount, ownerOf, setQuorum, startGroup, waitConverged, type GroupMember } from './support/cluster.js';

const QUORUM_KIND = 'com:vmware:xenon:services:common:NodeGroupService:UpdateQuorumRequest';

describe('node group: membership, ownership, replication, queries', () => {
  let g: GroupMember[];
  let late: RunningHost | undefined;
  before(async () => {
    g = await startGroup(3, 'host');
  });
  after(async () => {
    await Promise.all([...g.map((h) => h.stop()), late?.stop()]);
  });

  it('three hosts started with --peerNodes converge to the same NodeGroupState', async () => {
    const states = await Promise.all(g.map(groupState));
    for (const s of states) {
      assert.deepEqual(Object.keys(s.nodes).sort(), ['host-1', 'host-2', 'host-3']);
      for (const n of Object.values(s.nodes) as any[]) {
        assert.equal(n.status, 'AVAILABLE');
        assert.equal(n.membershipQuorum, 2, "Xenon's default quorum for two peers");
        assert.equal(n.documentKind, 'com:vmware:xenon:services:common:NodeState');
        assert.match(n.customProperties['krypton.instanceId'], /^[0-9a-f-]{36}$/);
      }
      assert.equal(s.documentKind, 'com:vmware:xenon:services:common:NodeGroupService:NodeGroupState');
      assert.equal(s.config.nodeRemovalDelayMicros, 300_000_000);
    }
    assert.deepEqual(
      states.map((s) => s.documentOwner),
      ['host-1', 'host-2', 'host-3'],
    );
    assert.equal(new Set(states.map((s) => s.membershipUpdateTimeMicros)).size, 1);
    for (const h of g) await waitFor(async () => (await http('GET', `${h.uri}/core/node-groups/default/available`)).status === 200, 'the group to be settled (5 quiet gossip rounds)');
  });

  it("chooses owners with Xenon's consistent hashing: /core/examples/foo → host-2, /core/examples/bar → host-3", async () => {
    for (const h of g) {
      assert.equal(await ownerOf(h, '/core/examples/foo'), 'host-2');
      assert.equal(await ownerOf(h, '/core/examples/bar'), 'host-3');
    }
    const sel = await http('POST', `${g[0]!.uri}/core/node-selectors/default`, { key: '/core/examples/foo' });
    assert.equal(sel.json.isLocalHostOwner, false);
    assert.equal(sel.json.availableNodeCount, 3);
    assert.equal(sel.json.ownerNodeGroupReference, `${g[1]!.uri}/core/node-groups/default`);
  });

  it('a write sent to any member is applied by the owner and replicated to every member', async () => {
    const created = await http('POST', `${g[0]!.uri}/core/examples`, { name: 'foo', documentSelfLink: 'foo' });
    assert.equal(created.status, 200, created.text);
    assert.equal(created.json.documentOwner, 'host-2');
    assert.equal(created.json.documentEpoch, 0);
    const patched = await http('PATCH', `${g[2]!.uri}/core/examples/foo`, { counter: 7 });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.documentVersion, 1);
    for (const h of g) {
      // Answered once a quorum (2 of 3) stored it; the third member may take a moment longer.
      const copy = await waitFor(
        async () => {
          const c = await localCopy(h, '/core/examples/foo');
          return c.counter === 7 ? c : undefined;
        },
        `${h.id} to hold the latest version`,
        10_000,
      );
      assert.equal(copy.documentVersion, 1);
      assert.equal(copy.documentOwner, 'host-2');
      const read = await http('GET', `${h.uri}/core/examples/foo`);
      assert.deepEqual(read.json, patched.json, 'a read on any member returns the same document');
    }
    for (const h of [...g, ...g, ...g]) {
      const generated = await http('POST', `${h.uri}/core/examples`, { name: 'no link given' });
      assert.equal(generated.status, 200, generated.text);
      assert.equal(generated.json.documentOwner, await ownerOf(g[0]!, generated.json.documentSelfLink), 'a generated link is created by its owner');
      assert.equal((await http('DELETE', `${h.uri}${generated.json.documentSelfLink}`)).status, 200);
      const empty = await http('POST', `${h.uri}/core/examples`);
      assert.equal(empty.status, 400, empty.text);
      assert.equal(empty.json.message, 'name is required');
    }
    const dup = await http('POST', `${g[0]!.uri}/core/examples`, { name: 'again', documentSelfLink: 'foo' });
    assert.equal(dup.status, 409, 'the owner answers, and its error is relayed as is');
    assert.match(dup.json.message, /Service already started/);
    const missing = await http('PATCH', `${g[0]!.uri}/core/examples/nope`, { counter: 1 });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.documentKind, 'com:vmware:xenon:common:ServiceErrorResponse');
    const del = await http('DELETE', `${g[1]!.uri}/core/examples/foo`);
    assert.equal(del.status, 200);
    for (const h of g) assert.equal((await http('GET', `${h.uri}/core/examples/foo`)).status, 404);
  });

  it('factory GETs and queries list each document once for the whole group; OWNER_SELECTION splits it by owner', async () => {
    await importExamples(g[1]!.uri, 300, 'q', 100);
    for (let i = 0; i < 30; i++) assert.equal((await http('POST', `${g[i % 3]!.uri}/core/examples`, { name: `w-${i}`, documentSelfLink: `w-${i}` })).status, 200);
    const expected = 330;
    for (const h of g) {
      // Listings read the local index: the member that was not part of a write's quorum may lag briefly.
      const list = await waitFor(
        async () => {
          const l = await http('GET', `${h.uri}/core/examples`);
          return l.json.documentCount >= expected ? l : undefined;
        },
        `${h.id} to list every document`,
        10_000,
      );
      assert.equal(list.json.documentCount, expected);
      assert.equal(new Set(list.json.documentLinks).size, expected);
      const q = await http('POST', `${h.uri}/core/query-tasks`, {
        taskInfo: { isDirect: true },
        querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/*', matchType: 'WILDCARD' } }, options: ['BROADCAST', 'OWNER_SELECTION'] },
      });
      assert.equal(q.json.results.documentLinks.length, expected);
    }
    const owned = await Promise.all(
      g.map(async (h) => {
        const q = await http('POST', `${h.uri}/core/local-query-tasks`, {
          taskInfo: { isDirect: true },
          querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/', matchType: 'PREFIX' } }, options: ['OWNER_SELECTION', 'EXPAND_CONTENT'] },
        });
        for (const d of Object.values(q.json.results.documents) as any[]) assert.equal(d.documentOwner, h.id);
        return q.json.results.documentLinks as string[];
      }),
    );
    const all = owned.flat();
    assert.equal(all.length, expected, 'each document is owned by exactly one member');
    assert.equal(new Set(all).size, expected);
    assert.ok(
      owned.every((o) => o.length > 50),
      'ownership is spread',
    );
  });

  it('serves paged results held by another member (query page forwarding)', async () => {
    const first = await http('GET', `${g[0]!.uri}/core/examples?$limit=100&$filter=name%20eq%20'q-*'`);
    assert.equal(first.status, 200, first.text);
    let next: string | undefined = first.json.nextPageLink;
    assert.match(next!, /peer=host-1/);
    let seen = first.json.documentLinks.length;
    while (next) {
      const page = await http('GET', `${g[2]!.uri}${next}`);
      assert.equal(page.status, 200, page.text);
      seen += page.json.documentLinks.length;
      next = page.json.nextPageLink;
    }
    assert.equal(seen, 300);
  });

  it('a host joins at run time with a JoinPeerRequest, synchronizes every document, then owns its share', async () => {
    late = await startHost([`--id=host-4`, `--groupSecret=${SECRET}`, ...FAST_GROUP]);
    const join = await http('POST', `${late.uri}/core/node-groups/default`, {
      kind: 'com:vmware:xenon:services:common:NodeGroupService:JoinPeerRequest',
      memberGroupReference: `${g[0]!.uri}/core/node-groups/default`,
      membershipQuorum: 2,
    });
    assert.equal(join.status, 200, join.text);
    await waitConverged([...g, late], 2);
    assert.equal(await localCount(late), await localCount(g[0]!), 'the new member holds every document');
    assert.equal((await localCopy(late, '/core/examples/q-7')).name, 'q-7');
    const owners = new Set<string>();
    for (let i = 0; i < 40; i++) owners.add(await ownerOf(late, `/core/examples/q-${i}`));
    assert.ok(owners.has('host-4'), 'the new member owns documents once synchronized');
    await late.stop();
    late = undefined;
    await waitFor(async () => {
      const s = await groupState(g[0]!);
      return s.nodes['host-4']?.status === 'UNAVAILABLE';
    }, 'the stopped member to be UNAVAILABLE');
  });

  it('UpdateQuorumRequest (PATCH, isGroupUpdate) sets the quorum on every member; POST is refused as in Xenon', async () => {
    const post = await http('POST', `${g[0]!.uri}/core/node-groups/default`, { kind: QUORUM_KIND, isGroupUpdate: true, membershipQuorum: 3 });
    assert.equal(post.status, 400);
    assert.equal(post.json.message, 'id is required');
    await setQuorum(g, 3);
    const r = await http('PATCH', `${g[2]!.uri}/core/examples/w-1`, { counter: 1 });
    assert.equal(r.status, 200, 'all three members are up: a quorum of 3 is met');
    // Xenon sets max(1, value): a quorum of 0 means 1.
    const zero = await http('PATCH', `${g[0]!.uri}/core/node-groups/default`, { kind: QUORUM_KIND, isGroupUpdate: false, membershipQuorum: 0 });
    assert.equal(zero.status, 200, zero.text);
    assert.equal(Object.values(zero.json.nodes as Record<string, any>).find((n) => n.id === g[0]!.id).membershipQuorum, 1);
    await setQuorum(g, 2);
  });
});

describe('node group: peer traffic is authenticated', () => {
  let g: GroupMember[];
  const extra: RunningHost[] = [];
  before(async () => {
    g = await startGroup(2, 'sec');
    await http('POST', `${g[0]!.uri}/core/examples`, { name: 'target', documentSelfLink: 'target' });
  });
  after(async () => {
    await Promise.all([...g, ...extra].map((h) => h.stop()));
  });

  it('refuses replication pragmas and peer endpoints from outside clients (Xenon trusted xn-rpl)', async () => {
    for (const h of g) {
      const rpl = await http('PUT', `${h.uri}/core/examples/target`, { name: 'forged' }, { pragma: 'xn-rpl' });
      assert.equal(rpl.status, 403);
      assert.match(rpl.json.message, /accepted only from members of the node group/);
      const fwd = await http('PATCH', `${h.uri}/core/examples/target`, { name: 'forged' }, { pragma: 'xn-fwd' });
      assert.equal(fwd.status, 403);
      const direct = await http('POST', `${h.uri}/core/node-selectors/default/replication`, {
        kind: 'krypton:cluster:ReplicationRequest',
        mode: 'synch',
        items: [{ factoryLink: '/core/examples', versions: [{ doc: { name: 'forged', documentSelfLink: '/core/examples/target', documentVersion: 99 }, purgeFirst: false }] }],
      });
      assert.equal(direct.status, 403);
      const synch = await http('POST', `${h.uri}/core/node-selectors/default/synch`, { kind: 'krypton:cluster:SynchSummaryRequest', factoryLink: '/core/examples', afterLink: '', limit: 10 });
      assert.equal(synch.status, 403);
      const gossip = await http('PATCH', `${h.uri}/core/node-groups/default`, {
        nodes: { evil: { id: 'evil', groupReference: 'http://127.0.0.1:1/core/node-groups/default', status: 'AVAILABLE', documentVersion: 1, membershipQuorum: 1 } },
        documentOwner: 'evil',
      });
      assert.equal(gossip.status, 403);
      const forged = await http(
        'PATCH',
        `${h.uri}/core/node-groups/default`,
        { nodes: { evil: {} }, documentOwner: 'evil' },
        { 'x-krypton-peer-id': 'sec-2', 'x-krypton-group-protocol': '1', 'x-krypton-peer-auth': `${Date.now() * 1000}.00ff` },
      );
      assert.equal(forged.status, 403);
      assert.match(forged.json.message, /peer authentication of sec-2 failed/);
    }
    assert.equal((await http('GET', `${g[1]!.uri}/core/examples/target`)).json.name, 'target');
    assert.ok(!(await groupState(g[0]!)).nodes.evil);
  });

  it('tells a sender that proves the group key but is not in its view yet to try again (503), and refuses it nothing else', async () => {
    // What a member that has just restarted sees: the others forward writes to it before its join
    // is answered and it lists them. That was a 403 the clients of those writes received.
    const ghost = new PeerAuth(peerKey({ groupSecret: SECRET }), 'not-listed-yet');
    const path = '/core/examples/target';
    const fwd = await http('PATCH', `${g[0]!.uri}${path}`, { name: 'from a ghost' }, { pragma: 'xn-fwd', ...ghost.sign('PATCH', path) });
    assert.equal(fwd.status, 503, fwd.text);
    assert.match(fwd.json.message, /not-listed-yet is not a member in this node's view of the group \(yet\); try again/);
    assert.deepEqual(fwd.json.details, ['SHOULD_RETRY']);
    const rpl = await http(
      'POST',
      `${g[0]!.uri}/core/node-selectors/default/replication`,
      { kind: 'krypton:cluster:ReplicationRequest', mode: 'synch', items: [] },
      ghost.sign('POST', '/core/node-selectors/default/replication'),
    );
    assert.equal(rpl.status, 503, rpl.text);
    assert.equal((await http('GET', `${g[0]!.uri}${path}`)).json.name, 'target');
  });

  it('a node with another group secret cannot join, with a clear error', async () => {
    const stranger = await startHost(['--id=stranger', '--groupSecret=not-the-secret', ...FAST_GROUP]);
    extra.push(stranger);
    const r = await http('POST', `${stranger.uri}/core/node-groups/default`, { memberGroupReference: `${g[0]!.uri}/core/node-groups/default` });
    assert.equal(r.status, 403, r.text);
    assert.match(r.json.message, /group secret differs/);
    assert.deepEqual(Object.keys((await groupState(g[0]!)).nodes).sort(), ['sec-1', 'sec-2']);
    assert.deepEqual(Object.keys((await groupState(stranger)).nodes), ['stranger'], 'a refused join leaves the view unchanged');
  });

  it('a node with another group protocol version is refused with a clear error', async () => {
    const other = await startHost(['--id=future', `--groupSecret=${SECRET}`, ...FAST_GROUP], { env: { KRYPTON_GROUP_PROTOCOL_VERSION: '2' } });
    extra.push(other);
    const r = await http('POST', `${other.uri}/core/node-groups/default`, { memberGroupReference: `${g[0]!.uri}/core/node-groups/default` });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.message, /node-group protocol 2, this node speaks 1|protocol 1, this node speaks 2/);
    assert.match(r.json.message, /every member of a group must run a release with the same protocol/);
    assert.ok(!(await groupState(g[0]!)).nodes.future);
  });

  it('--peerNodes without a group secret is refused at start (exit 2)', () => {
    const r = spawnSync(process.execPath, [CLI, 'host', '--port=0', '--peerNodes=http://127.0.0.1:1'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--groupSecret/);
  });
});
