import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeness, fnvHashSigned, fnvHashSignedReference, hashNodes, selectNodes } from '../src/cluster/consistent-hashing.js';
import { mergeGroup, type GroupView } from '../src/cluster/node-group-merge.js';
import { NodeProps, type NodeState } from '../src/cluster/node-group-messages.js';
import { defaultQuorum, normalizePeerNodes } from '../src/cluster/cluster-settings.js';
import { isNewer } from '../src/cluster/replica-store.js';

const MIN = -(2n ** 63n);

describe("owner selection reproduces Xenon's consistent hashing (spec B.2 test vectors)", () => {
  it('hashes with FNVHash.compute as signed 64-bit longs', () => {
    assert.equal(fnvHashSigned(''), 4695981039346656037n);
    assert.equal(fnvHashSigned('host-1'), -4221509889627796163n);
    assert.equal(fnvHashSigned('host-2'), -4222072839581440195n);
    assert.equal(fnvHashSigned('host-3'), -4222635789535084227n);
    assert.equal(fnvHashSigned('/core/examples/foo'), 8477909326081282349n);
  });

  it('hashes on 32-bit halves exactly as the BigInt reference does, for any UTF-16 text', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      let s = '';
      for (let j = rnd(48); j > 0; j--) s += String.fromCharCode(rnd(3) === 0 ? rnd(65536) : 32 + rnd(95));
      assert.equal(fnvHashSigned(s), fnvHashSignedReference(s), JSON.stringify(s));
    }
  });

  it('orders nodes by |(nodeHash − keyHash)²| with wrapping arithmetic', () => {
    const nodes = hashNodes(['host-1', 'host-2', 'host-3'], (n) => n);
    assert.deepEqual(selectNodes('/core/examples/foo', nodes, 3), ['host-2', 'host-1', 'host-3']);
    assert.deepEqual(selectNodes('/core/examples/foo', nodes), ['host-2']);
    assert.deepEqual(selectNodes('/core/examples/bar', nodes), ['host-3']);
  });

  it('squares with 64-bit wrap-around and takes the absolute value as a Java long', () => {
    assert.equal(closeness(2n ** 32n, 0n), 0n, '(2^32)^2 wraps to 0');
    // 3037000500^2 = 9223372037000250000 > 2^63 − 1: wraps negative, then |·|
    assert.equal(closeness(3037000500n, 0n), 9223372036709301616n);
    assert.equal(closeness(0n, 3037000500n), 9223372036709301616n, 'the sign of d does not matter');
    assert.equal(BigInt.asIntN(64, -MIN), MIN, "negating Long.MIN_VALUE wraps to itself, as Java's Math.abs does");
  });

  it('a single node owns everything; no node selects nothing', () => {
    assert.deepEqual(
      selectNodes(
        '/any',
        hashNodes(['only'], (n) => n),
      ),
      ['only'],
    );
    assert.deepEqual(selectNodes('/any', []), []);
  });

  it('spreads ownership over the members', () => {
    const nodes = hashNodes(['host-1', 'host-2', 'host-3'], (n) => n);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const o = selectNodes(`/core/examples/doc-${i}`, nodes)[0]!;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const n of ['host-1', 'host-2', 'host-3']) assert.ok((counts.get(n) ?? 0) > 600, `host ${n} owns ${counts.get(n)} of 3000`);
  });
});

describe('node-group settings (spec A.3, A.4)', () => {
  it("computes Xenon's default quorum from the number of peers", () => {
    assert.deepEqual([0, 1, 2, 3, 4].map(defaultQuorum), [1, 2, 2, 3, 3]);
  });

  it('normalizes --peerNodes: bare names get http:// and port 8000, self is skipped', () => {
    assert.deepEqual(normalizePeerNodes(['h2', 'http://127.0.0.1:8001', 'http://127.0.0.1:8000', 'localhost:8000', 'h3:9000/'], 'http://127.0.0.1:8000', 8000), [
      'http://h2:8000',
      'http://127.0.0.1:8001',
      'http://h3:9000',
    ]);
  });
});

function node(id: string, status: NodeState['status'], version: number, extra: Partial<NodeState> = {}): NodeState {
  return {
    groupReference: `http://${id}:8000/core/node-groups/default`,
    status,
    options: ['PEER'],
    id,
    membershipQuorum: 2,
    locationQuorum: 1,
    customProperties: { [NodeProps.INSTANCE_ID]: `${id}-a`, [NodeProps.INSTANCE_START]: '100' },
    documentVersion: version,
    documentKind: 'k',
    documentSelfLink: `/core/node-groups/default/${id}`,
    documentUpdateTimeMicros: 1000,
    documentExpirationTimeMicros: 0,
    ...extra,
  };
}

function view(...nodes: NodeState[]): GroupView {
  return { nodes: Object.fromEntries(nodes.map((n) => [n.id, n])), membershipUpdateTimeMicros: 1000, localMembershipUpdateTimeMicros: 1000 };
}

const ctx = (now: number) => ({ selfId: 'a', selfGroupReference: 'http://a:8000/core/node-groups/default', nowMicros: now, nodeRemovalDelayMicros: 300 });

describe('gossip merge rules (spec A.5), stepping a clock', () => {
  it('adds unknown available peers, skips unknown unavailable or expired ones', () => {
    const v = view(node('a', 'AVAILABLE', 1));
    const r = mergeGroup(
      v,
      {
        nodes: { b: node('b', 'AVAILABLE', 1), c: node('c', 'UNAVAILABLE', 3), d: node('d', 'AVAILABLE', 1, { documentExpirationTimeMicros: 10 }) },
        documentOwner: 'b',
        membershipUpdateTimeMicros: 5000,
      },
      ctx(2000),
    );
    assert.deepEqual(Object.keys(v.nodes).sort(), ['a', 'b']);
    assert.deepEqual([...r.changes], ['PEER_ADDED']);
    assert.equal(v.membershipUpdateTimeMicros, 5000, 'the global time is the maximum seen');
    assert.equal(v.localMembershipUpdateTimeMicros, 2000);
  });

  it('versions only move forward; equal versions: the most recent update wins', () => {
    const v = view(node('a', 'AVAILABLE', 1), node('b', 'AVAILABLE', 5));
    mergeGroup(v, { nodes: { b: node('b', 'UNAVAILABLE', 4) }, documentOwner: 'c', membershipUpdateTimeMicros: 0 }, ctx(2000));
    assert.equal(v.nodes['b']!.status, 'AVAILABLE');
    mergeGroup(v, { nodes: { b: node('b', 'UNAVAILABLE', 5, { documentUpdateTimeMicros: 999 }) }, documentOwner: 'c', membershipUpdateTimeMicros: 0 }, ctx(2000));
    assert.equal(v.nodes['b']!.status, 'AVAILABLE', 'older update time at the same version loses');
    const r = mergeGroup(v, { nodes: { b: node('b', 'UNAVAILABLE', 5, { documentUpdateTimeMicros: 1500 }) }, documentOwner: 'c', membershipUpdateTimeMicros: 0 }, ctx(2000));
    assert.equal(v.nodes['b']!.status, 'UNAVAILABLE');
    assert.ok(r.changes.has('PEER_UNAVAILABLE'));
    assert.equal(v.nodes['b']!.documentExpirationTimeMicros, 2300, 'removal is scheduled nodeRemovalDelay later');
  });

  it('never adopts a status for itself, but out-votes the rumour and reports it', () => {
    const v = view(node('a', 'AVAILABLE', 2));
    const r = mergeGroup(v, { nodes: { a: node('a', 'UNAVAILABLE', 3) }, documentOwner: 'b', membershipUpdateTimeMicros: 0 }, ctx(2000));
    assert.equal(v.nodes['a']!.status, 'AVAILABLE');
    assert.equal(v.nodes['a']!.documentVersion, 3);
    assert.equal(v.nodes['a']!.documentUpdateTimeMicros, 2000);
    assert.ok(r.selfMarkedUnavailable);
  });

  it('a restarted peer (newer incarnation) replaces its old entry whatever the versions; older rumours are ignored', () => {
    const v = view(node('a', 'AVAILABLE', 1), node('b', 'UNAVAILABLE', 9));
    const reborn = node('b', 'SYNCHRONIZING', 0, { customProperties: { [NodeProps.INSTANCE_ID]: 'b-2', [NodeProps.INSTANCE_START]: '200' } });
    mergeGroup(v, { nodes: { b: reborn }, documentOwner: 'b', membershipUpdateTimeMicros: 0 }, ctx(2000));
    assert.equal(v.nodes['b']!.status, 'SYNCHRONIZING');
    mergeGroup(v, { nodes: { b: node('b', 'UNAVAILABLE', 12) }, documentOwner: 'c', membershipUpdateTimeMicros: 0 }, ctx(2100));
    assert.equal(v.nodes['b']!.status, 'SYNCHRONIZING', 'a rumour about the old incarnation is ignored');
  });

  it('removes unavailable peers once their expiration passed', () => {
    const v = view(node('a', 'AVAILABLE', 1), node('b', 'UNAVAILABLE', 2, { documentExpirationTimeMicros: 1500 }));
    const r = mergeGroup(v, { nodes: { a: node('a', 'AVAILABLE', 1) }, documentOwner: 'a', membershipUpdateTimeMicros: 0 }, ctx(2000));
    assert.deepEqual(Object.keys(v.nodes), ['a']);
    assert.ok(r.changes.has('PEER_EXPIRED'));
  });

  it('merging the same view twice changes nothing (gossip converges)', () => {
    const v = view(node('a', 'AVAILABLE', 1), node('b', 'AVAILABLE', 1));
    const body = { nodes: { a: node('a', 'AVAILABLE', 1), b: node('b', 'AVAILABLE', 1) }, documentOwner: 'b', membershipUpdateTimeMicros: 1000 };
    assert.equal(mergeGroup(v, body, ctx(2000)).changes.size, 0);
    assert.equal(v.membershipUpdateTimeMicros, 1000);
  });
});

describe('synchronization order (spec B.9)', () => {
  it('prefers a higher epoch, then a higher version, then a later update time', () => {
    assert.ok(isNewer({ epoch: 1, version: 0, updateTime: 0 }, { epoch: 0, version: 9, updateTime: 9 }));
    assert.ok(isNewer({ epoch: 0, version: 3, updateTime: 0 }, { epoch: 0, version: 2, updateTime: 9 }));
    assert.ok(isNewer({ epoch: 0, version: 2, updateTime: 10 }, { epoch: 0, version: 2, updateTime: 9 }));
    assert.ok(!isNewer({ epoch: 0, version: 2, updateTime: 9 }, { epoch: 0, version: 2, updateTime: 9 }));
    assert.ok(isNewer({ epoch: 0, version: 0, updateTime: 0 }, undefined));
  });
});
