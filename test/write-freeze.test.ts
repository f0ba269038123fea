import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, startHost, tempDir, type RunningHost } from './support/hosts.js';
import { createExamples } from './support/data.js';

const FREEZE = '/management/write-freeze';
const digestOf = async (h: RunningHost, factory = '/core/examples', asOf?: number) =>
  (await http('GET', `${h.uri}/management/factory-digest?factoryLink=${encodeURIComponent(factory)}${asOf ? `&asOfMicros=${asOf}` : ''}`)).json;

describe('write freeze and factory digest (/management/write-freeze, /management/factory-digest)', () => {
  let h: RunningHost;
  let sandbox: string;
  let mod: string;
  before(async () => {
    const dir = tempDir();
    // A factory whose create handler takes 1.5 s: a write in flight when the freeze comes.
    mod = join(dir, 'slow.mjs');
    writeFileSync(
      mod,
      `export const Slow = { type: 'stateful', factoryLink: '/slow', documentKind: 'slow',
         create: async ({ body }) => { await new Promise((r) => setTimeout(r, 1500)); return body; } };\n`,
    );
    sandbox = tempDir();
    h = await startHost([`--services=${mod}`], { sandbox });
    await createExamples(h.uri, 50, 'fz');
  });
  after(async () => {
    await h.stop();
  });

  it('refuses every client write with 503 KRY_ERR_WRITES_FROZEN while reads and queries are served', async () => {
    const before = await digestOf(h);
    assert.equal(before.documentCount, 50);
    const frozen = await http('PUT', `${h.uri}${FREEZE}`, { frozen: true, reason: 'upgrade to 2.0' });
    assert.equal(frozen.status, 200, frozen.text);
    assert.equal(frozen.json.frozen, true);
    assert.equal(frozen.json.drained, true);
    assert.equal(frozen.json.reason, 'upgrade to 2.0');
    const writes = [
      await http('POST', `${h.uri}/core/examples`, { name: 'new' }),
      await http('PUT', `${h.uri}/core/examples/fz-1`, { name: 'replaced', counter: 1 }),
      await http('PATCH', `${h.uri}/core/examples/fz-2`, { counter: 100 }),
      await http('DELETE', `${h.uri}/core/examples/fz-3`),
      await http('POST', `${h.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents: [{ documentSelfLink: 'imp', name: 'x', documentUpdateTimeMicros: 1 }] }),
    ];
    for (const w of writes) {
      assert.equal(w.status, 503, w.text);
      assert.equal(w.json.kryptonCode, 'KRY_ERR_WRITES_FROZEN');
      assert.match(w.json.message, /writes are frozen on this host since .* \(upgrade to 2\.0\)/);
    }
    // Nothing changed; reads, listings and queries answer as before.
    assert.equal((await http('GET', `${h.uri}/core/examples/fz-2`)).json.counter, 2);
    assert.equal((await http('GET', `${h.uri}/core/examples/fz-3`)).status, 200);
    assert.equal((await http('GET', `${h.uri}/core/examples`)).json.documentCount, 50);
    const q = await http('POST', `${h.uri}/core/query-tasks`, {
      querySpec: { query: { term: { propertyName: 'documentKind', matchValue: 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState' } }, options: ['COUNT'] },
      taskInfo: { isDirect: true },
    });
    assert.equal(q.json.results.documentCount, 50);
    const state = (await http('GET', `${h.uri}${FREEZE}`)).json;
    assert.equal(state.frozen, true);
    assert.equal(state.refusedWriteCount, 5);
    const same = await digestOf(h, '/core/examples', before.asOfMicros);
    assert.deepEqual([same.documentCount, same.digest, same.newestUpdateTimeMicros], [before.documentCount, before.digest, before.newestUpdateTimeMicros]);
  });

  it('outlives a restart, and unfreezing takes writes again', async () => {
    await h.stop();
    h = await startHost([`--services=${mod}`], { sandbox });
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'after-restart' })).status, 503);
    const thawed = await http('PUT', `${h.uri}${FREEZE}`, { frozen: false });
    assert.equal(thawed.status, 200, thawed.text);
    assert.equal(thawed.json.frozen, false);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'thawed', documentSelfLink: 'thawed' })).status, 200);
    assert.equal((await digestOf(h)).documentCount, 51);
    await http('DELETE', `${h.uri}/core/examples/thawed`);
  });

  it('answers a freeze once the writes admitted before it are done, and they are in the digest', async () => {
    const slow = http('POST', `${h.uri}/slow`, { documentSelfLink: 'in-flight', name: 'slow' });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const frozen = await http('PUT', `${h.uri}${FREEZE}`, { frozen: true });
    const waited = Date.now() - t0;
    assert.equal(frozen.json.drained, true);
    assert.equal(frozen.json.drainedWriteCount, 1);
    assert.equal(frozen.json.writesInFlight, 0);
    assert.ok(waited >= 900, `the freeze answered after the slow write (${waited} ms)`);
    assert.ok(frozen.json.drainMicros >= 900_000, String(frozen.json.drainMicros));
    assert.equal((await slow).status, 200, 'the write admitted before the freeze completes');
    assert.equal((await digestOf(h, '/slow')).documentCount, 1);
    assert.equal((await http('POST', `${h.uri}/slow`, { name: 'late' })).status, 503);
    await http('PUT', `${h.uri}${FREEZE}`, { frozen: false });
  });

  it('reports a drain that timed out (drained: false, the writes still in flight)', async () => {
    const slow = http('POST', `${h.uri}/slow`, { documentSelfLink: 'in-flight-2', name: 'slow' });
    await new Promise((r) => setTimeout(r, 300));
    const frozen = await http('PUT', `${h.uri}${FREEZE}`, { frozen: true, drainTimeoutMicros: 100_000 });
    assert.equal(frozen.json.drained, false);
    assert.equal(frozen.json.drainedWriteCount, 0);
    assert.equal(frozen.json.writesInFlight, 1);
    assert.equal((await slow).status, 200);
    assert.equal((await http('GET', `${h.uri}${FREEZE}`)).json.writesInFlight, 0);
    await http('PUT', `${h.uri}${FREEZE}`, { frozen: false });
  });

  it('refuses bad requests with a 400 and changes nothing', async () => {
    for (const body of [{}, { frozen: 'yes' }, { frozen: true, reason: 7 }, { frozen: true, drainTimeoutMicros: -1 }, [1]]) {
      const r = await http('PUT', `${h.uri}${FREEZE}`, body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.documentKind, 'com:vmware:xenon:common:ServiceErrorResponse');
    }
    assert.equal((await http('GET', `${h.uri}${FREEZE}`)).json.frozen, false);
    assert.equal((await http('GET', `${h.uri}/management/factory-digest`)).status, 400);
    assert.equal((await http('GET', `${h.uri}/management/factory-digest?factoryLink=/core/examples&asOfMicros=abc`)).status, 400);
    assert.equal((await http('GET', `${h.uri}/management/factory-digest?factoryLink=/core/nothing`)).status, 404);
    assert.equal((await http('DELETE', `${h.uri}${FREEZE}`)).status, 405);
  });

  it('digests a range of update times, and lists its documents', async () => {
    const all = await digestOf(h);
    const docs = (await http('GET', `${h.uri}/core/examples?expand`)).json.documents;
    const times = Object.values(docs as Record<string, any>)
      .map((d) => d.documentUpdateTimeMicros)
      .sort((a, b) => a - b);
    const mid = times[20];
    const q = (extra: string) => http('GET', `${h.uri}/management/factory-digest?factoryLink=/core/examples&asOfMicros=${all.asOfMicros}${extra}`);
    const low = (await q(`&toUpdateTimeMicros=${mid}`)).json;
    const high = (await q(`&fromUpdateTimeMicros=${mid}&list=true`)).json;
    assert.equal(low.documentCount, 20);
    assert.equal(low.documentCount + high.documentCount, all.documentCount);
    assert.equal(high.oldestUpdateTimeMicros, mid, 'from is inclusive, to exclusive');
    assert.equal(high.documents.length, high.documentCount);
    assert.equal(high.listTruncated, false);
    assert.deepEqual(high.documents[0], [
      Object.values(docs as Record<string, any>)
        .find((d) => d.documentUpdateTimeMicros === mid)
        .documentSelfLink.slice('/core/examples/'.length),
      mid,
    ]);
    assert.equal((await q('&fromUpdateTimeMicros=-5')).status, 400);
    // split=N: update times that cut the range into N parts of about as many documents each.
    const cut = (await q('&split=4')).json.splitUpdateTimesMicros as number[];
    assert.equal(cut.length, 3);
    assert.deepEqual(
      [...cut].sort((a, b) => a - b),
      cut,
    );
    const parts = await Promise.all([0, ...cut].map(async (from, k) => (await q(`&fromUpdateTimeMicros=${from}${k < cut.length ? `&toUpdateTimeMicros=${cut[k]}` : ''}`)).json.documentCount));
    assert.equal(
      parts.reduce((x, y) => x + y, 0),
      all.documentCount,
    );
    for (const p of parts) assert.ok(p >= 8 && p <= 17, `parts of about a quarter each: ${parts}`);
    assert.equal((await q('&split=65')).status, 400);
  });

  it('digests ids and update times: a change, a deletion or an expiry changes it', async () => {
    const a = await digestOf(h);
    assert.match(a.digest, /^[0-9a-f]{64}$/);
    assert.equal((await digestOf(h)).digest, a.digest, 'stable');
    await http('PATCH', `${h.uri}/core/examples/fz-5`, { counter: 500 });
    const b = await digestOf(h);
    assert.equal(b.documentCount, a.documentCount);
    assert.notEqual(b.digest, a.digest);
    await http('DELETE', `${h.uri}/core/examples/fz-6`);
    const c = await digestOf(h);
    assert.equal(c.documentCount, a.documentCount - 1);
    const soon = Date.now() * 1000 + 60_000_000;
    await http('PATCH', `${h.uri}/core/examples/fz-7`, { documentExpirationTimeMicros: soon });
    const d = await digestOf(h, '/core/examples', soon + 1);
    assert.equal(d.documentCount, a.documentCount - 2, 'a document expired as of asOfMicros is not counted');
  });
});
