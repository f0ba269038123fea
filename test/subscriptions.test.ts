import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { startListener, type Listener } from './support/listener.js';
import { startGroup, type GroupMember } from './support/cluster.js';

/** Waits until `path` of the listener has received `n` notifications and returns them. */
async function receivedAt(l: Listener, path: string, n: number) {
  return waitFor(async () => l.at(path).length >= n && l.at(path), `${n} notifications at ${path}`, 15_000);
}

describe('subscriptions (P/subscriptions): notifications of updates to a callback URI', () => {
  let h: RunningHost;
  let l: Listener;
  before(async () => {
    h = await startHost(['--maintenanceIntervalMicros=100000']);
    l = await startListener();
  });
  after(async () => {
    await l.close();
    await h.stop();
  });

  it("sends a document's subscriber every update in order, with the update's verb, the new state and pragma xn-nt", async () => {
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'watched', counter: 1, documentSelfLink: 'watched' })).status, 200);
    const sub = await http('POST', `${h.uri}/core/examples/watched/subscriptions`, { reference: l.url('/doc'), replayState: true });
    assert.equal(sub.status, 200, sub.text);
    assert.equal(sub.json.subscribers[l.url('/doc')].reference, l.url('/doc'));
    for (const counter of [2, 3, 4]) assert.equal((await http('PATCH', `${h.uri}/core/examples/watched`, { counter })).status, 200);
    assert.equal((await http('PUT', `${h.uri}/core/examples/watched`, { name: 'replaced', counter: 9 })).status, 200);
    assert.equal((await http('DELETE', `${h.uri}/core/examples/watched`)).status, 200);
    const got = await receivedAt(l, '/doc', 6);
    assert.deepEqual(
      got.map((r) => r.method),
      ['PUT', 'PATCH', 'PATCH', 'PATCH', 'PUT', 'DELETE'],
      'the replayed state (PUT), then each update with its own verb',
    );
    assert.deepEqual(
      got.map((r) => r.body.counter),
      [1, 2, 3, 4, 9, 9],
    );
    assert.deepEqual(
      got.map((r) => r.body.documentVersion),
      [0, 1, 2, 3, 4, 5],
    );
    assert.ok(got.every((r) => r.pragma.split(';').includes('xn-nt') && r.body.documentSelfLink === '/core/examples/watched'));
    // The document is gone, and its subscriptions with it.
    assert.equal((await http('GET', `${h.uri}/core/examples/watched/subscriptions`)).status, 404);
  });

  it('tells a factory subscriber of each child created, not of updates to children', async () => {
    assert.equal((await http('POST', `${h.uri}/core/examples/subscriptions`, { reference: l.url('/factory') })).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'f1', documentSelfLink: 'f1' })).status, 200);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/f1`, { counter: 5 })).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'f2', documentSelfLink: 'f2' })).status, 200);
    const got = await receivedAt(l, '/factory', 2);
    // Notifications leave in order: had the PATCH been sent, it would precede f2's POST.
    assert.deepEqual(
      got.map((r) => `${r.method} ${r.body.documentSelfLink}`),
      ['POST /core/examples/f1', 'POST /core/examples/f2'],
    );
    const list = await http('GET', `${h.uri}/core/examples/subscriptions`);
    assert.equal(list.json.subscribers[l.url('/factory')].notificationCount, 2);
    assert.equal((await http('DELETE', `${h.uri}/core/examples/subscriptions`, { reference: l.url('/factory') })).status, 200);
    assert.deepEqual((await http('GET', `${h.uri}/core/examples/subscriptions`)).json.subscribers, {});
  });

  it('ends a subscription when asked, or at its notificationLimit with a DELETE to the subscriber', async () => {
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'lim', counter: 0, documentSelfLink: 'lim' })).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples/lim/subscriptions`, { reference: l.url('/limited'), notificationLimit: 2 })).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples/lim/subscriptions`, { reference: l.url('/ended') })).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples/lim/subscriptions`, { reference: l.url('/sentinel') })).status, 200);
    const soon = Date.now() * 1000 + 300_000;
    assert.equal((await http('POST', `${h.uri}/core/examples/lim/subscriptions`, { reference: l.url('/expiring'), documentExpirationTimeMicros: soon })).status, 200);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/lim`, { counter: 1 })).status, 200);
    await receivedAt(l, '/ended', 1);
    const ended = await http('DELETE', `${h.uri}/core/examples/lim/subscriptions`, { reference: l.url('/ended') });
    assert.equal(ended.status, 200);
    assert.equal(ended.json.subscribers[l.url('/ended')], undefined);
    for (const counter of [2, 3]) assert.equal((await http('PATCH', `${h.uri}/core/examples/lim`, { counter })).status, 200);
    await receivedAt(l, '/sentinel', 3);
    const limited = await receivedAt(l, '/limited', 3);
    assert.deepEqual(
      limited.map((r) => r.method),
      ['PATCH', 'PATCH', 'DELETE'],
      'two notifications, then the DELETE that ends it',
    );
    assert.equal(l.at('/ended').length, 1, 'nothing after its DELETE');
    // Past its expiration, the maintenance ends a subscription even with no update to send.
    await waitFor(async () => l.at('/expiring').some((r) => r.method === 'DELETE'), 'the expired subscription ended', 15_000);
    const left = await http('GET', `${h.uri}/core/examples/lim/subscriptions`);
    assert.deepEqual(Object.keys(left.json.subscribers), [l.url('/sentinel')]);
  });

  it('drops a subscriber whose notifications keep failing', async () => {
    const failing = await startListener();
    failing.status = 500;
    try {
      assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'flaky', counter: 0, documentSelfLink: 'flaky' })).status, 200);
      assert.equal((await http('POST', `${h.uri}/core/examples/flaky/subscriptions`, { reference: failing.url('/cb') })).status, 200);
      for (let counter = 1; counter <= 8; counter++) {
        assert.equal((await http('PATCH', `${h.uri}/core/examples/flaky`, { counter })).status, 200);
        await new Promise((r) => setTimeout(r, 30));
      }
      await waitFor(async () => failing.at('/cb').some((r) => r.method === 'DELETE'), 'the DELETE that ends a failing subscription', 15_000);
      const left = await http('GET', `${h.uri}/core/examples/flaky/subscriptions`);
      assert.deepEqual(left.json.subscribers, {});
      const patches = failing.at('/cb').filter((r) => r.method === 'PATCH');
      assert.ok(patches.length > 5, `more than 5 failures before it is dropped (saw ${patches.length})`);
      assert.ok(
        patches.slice(1).every((r) => r.pragma.includes('xn-nt-skipped')),
        'after a failed delivery, the next one says notifications were missed',
      );
    } finally {
      await failing.close();
    }
  });

  it("tells a migration task's subscriber of its progress until FINISHED", async () => {
    const blue = await startHost();
    try {
      for (let i = 0; i < 5; i++) assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: `m${i}` })).status, 200);
      const task = await http('POST', `${h.uri}/management/migration-tasks`, {
        sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
        destinationNodeGroupReference: `${h.uri}/core/node-groups/default`,
        sourceFactoryLink: '/core/examples',
        destinationFactoryLink: '/core/examples',
      });
      assert.equal(task.status, 200, task.text);
      // replayState: the task's state now, so a task that finished before this POST is still seen to finish.
      const sub = await http('POST', `${h.uri}${task.json.documentSelfLink}/subscriptions`, { reference: l.url('/task'), replayState: true });
      assert.equal(sub.status, 200, sub.text);
      const done = await waitFor(async () => l.at('/task').find((r) => r.body?.taskInfo?.stage === 'FINISHED'), 'a FINISHED notification', 15_000);
      assert.equal(done.body.documentSelfLink, task.json.documentSelfLink);
      assert.equal(done.body.progress.processedServiceCount, 5);
    } finally {
      await blue.stop();
    }
  });

  it('refuses bad subscriptions with a 400 and changes nothing', async () => {
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'b', documentSelfLink: 'bad-subs' })).status, 200);
    const at = `${h.uri}/core/examples/bad-subs/subscriptions`;
    for (const body of [
      undefined,
      {},
      { reference: 'not a uri' },
      { reference: 'ftp://127.0.0.1/x' },
      { reference: l.url('/x'), notificationLimit: 0 },
      { reference: l.url('/x'), documentExpirationTimeMicros: 'soon' },
    ]) {
      const r = await http('POST', at, body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.text}`);
      assert.equal(r.json.documentKind, 'com:vmware:xenon:common:ServiceErrorResponse');
    }
    assert.equal((await http('PUT', at, { reference: l.url('/x') })).status, 405);
    assert.equal((await http('POST', `${h.uri}/core/examples/no-such/subscriptions`, { reference: l.url('/x') })).status, 404);
    const group = await http('POST', `${h.uri}/core/node-groups/default/subscriptions`, { reference: l.url('/x') });
    assert.equal(group.status, 405, 'a service whose state is not in the index has nothing to notify');
    assert.match(group.json.message, /factories and their documents/);
    assert.deepEqual((await http('GET', at)).json.subscribers, {});
  });
});

describe('subscriptions: the host holds at most --subscriptionLimit', () => {
  it('refuses a new subscription with 503 at the limit; a renewed one, a removed one and a deleted document make room', async () => {
    const h = await startHost(['--subscriptionLimit=3']);
    const l = await startListener();
    try {
      for (const id of ['s1', 's2']) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: id, documentSelfLink: id })).status, 200);
      const sub = (id: string, path: string) => http('POST', `${h.uri}/core/examples/${id}/subscriptions`, { reference: l.url(path) });
      for (const [id, path] of [
        ['s1', '/a'],
        ['s1', '/b'],
        ['s2', '/c'],
      ])
        assert.equal((await sub(id!, path!)).status, 200);
      const full = await sub('s2', '/d');
      assert.equal(full.status, 503, full.text);
      assert.match(full.json.message, /--subscriptionLimit=3/);
      assert.deepEqual(Object.keys((await http('GET', `${h.uri}/core/examples/s2/subscriptions`)).json.subscribers), [l.url('/c')], 'nothing was added');
      assert.equal((await sub('s1', '/a')).status, 200, 'renewing a subscription takes no more room');
      assert.equal((await http('DELETE', `${h.uri}/core/examples/s1/subscriptions`, { reference: l.url('/b') })).status, 200);
      assert.equal((await sub('s2', '/d')).status, 200, 'a removed subscription makes room');
      assert.equal((await sub('s2', '/e')).status, 503);
      // A deleted document's subscriptions end with it.
      assert.equal((await http('DELETE', `${h.uri}/core/examples/s2`)).status, 200);
      assert.equal((await sub('s1', '/f')).status, 200);
      assert.equal((await sub('s1', '/g')).status, 200);
      assert.equal((await sub('s1', '/h')).status, 503);
    } finally {
      await l.close();
      await h.stop();
    }
  });
});

describe('subscriptions in a node group: a subscriber hears of writes made through any member', () => {
  let g: GroupMember[];
  let l: Listener;
  before(async () => {
    g = await startGroup(3, 'sub');
    l = await startListener();
  });
  after(async () => {
    await l.close();
    await Promise.all(g.map((m) => m.stop()));
  });

  it('notifies a subscriber on one member of creations and updates made through the others, in order', async () => {
    const [a, b, c] = g as [GroupMember, GroupMember, GroupMember];
    assert.equal((await http('POST', `${c.uri}/core/examples/subscriptions`, { reference: l.url('/group-factory') })).status, 200);
    for (const id of ['g1', 'g2', 'g3']) assert.equal((await http('POST', `${a.uri}/core/examples`, { name: id, documentSelfLink: id })).status, 200);
    const created = await receivedAt(l, '/group-factory', 3);
    assert.deepEqual(created.map((r) => `${r.method} ${r.body.documentSelfLink}`).sort(), ['POST /core/examples/g1', 'POST /core/examples/g2', 'POST /core/examples/g3']);

    // A document's subscriber on c: updates made through a and b reach it, each once, in version order.
    await waitFor(async () => (await http('GET', `${c.uri}/core/examples/g1`)).status === 200, 'g1 on c');
    assert.equal((await http('POST', `${c.uri}/core/examples/g1/subscriptions`, { reference: l.url('/group-doc') })).status, 200);
    for (const [member, counter] of [
      [a, 1],
      [b, 2],
      [a, 3],
      [b, 4],
    ] as const)
      assert.equal((await http('PATCH', `${member.uri}/core/examples/g1`, { counter })).status, 200);
    const got = await receivedAt(l, '/group-doc', 4);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      l.at('/group-doc').map((r) => [r.method, r.body.counter, r.body.documentVersion]),
      [
        ['PATCH', 1, 1],
        ['PATCH', 2, 2],
        ['PATCH', 3, 3],
        ['PATCH', 4, 4],
      ],
      'each update once, in order, whichever member took it',
    );
    assert.ok(got.every((r) => r.pragma.split(';').includes('xn-nt')));
    assert.equal(l.at('/group-factory').length, 3, 'updates are not creations');
  });

  it('runs a CONTINUOUS query on one member over writes made through the others', async () => {
    const [a, b, c] = g as [GroupMember, GroupMember, GroupMember];
    const query = { term: { propertyName: 'name', matchValue: 'watched-in-group' } };
    const created = await http('POST', `${c.uri}/core/query-tasks`, { querySpec: { query, options: ['CONTINUOUS', 'EXPAND_CONTENT'] } });
    assert.equal(created.status, 202, created.text);
    const task = `${c.uri}${created.json.documentSelfLink}`;
    await waitFor(async () => (await http('GET', task)).json.results !== undefined, 'the initial results');
    assert.equal((await http('POST', `${task}/subscriptions`, { reference: l.url('/group-cq') })).status, 200);
    assert.equal((await http('POST', `${a.uri}/core/examples`, { name: 'watched-in-group', documentSelfLink: 'cq-g' })).status, 200);
    assert.equal((await http('POST', `${b.uri}/core/examples`, { name: 'not watched', documentSelfLink: 'cq-other' })).status, 200);
    assert.equal((await http('PATCH', `${b.uri}/core/examples/cq-g`, { counter: 3 })).status, 200);
    const got = await receivedAt(l, '/group-cq', 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      l.at('/group-cq').map((r) => [r.body.results.documentLinks[0], r.body.results.documents['/core/examples/cq-g'].counter ?? null, r.body.results.continuousResults]),
      [
        ['/core/examples/cq-g', null, { documentCountAdded: 1, documentCountUpdated: 0, documentCountDeleted: 0 }],
        ['/core/examples/cq-g', 3, { documentCountAdded: 1, documentCountUpdated: 1, documentCountDeleted: 0 }],
      ],
    );
    assert.equal(got[0]!.body.taskInfo.stage, 'STARTED');
  });
});
