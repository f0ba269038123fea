import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ROOT, http, startHost, tempDir, waitFor } from './support/hosts.js';

describe('sandbox format compatibility', () => {
  it('opens a sandbox written by release 0.1.0 (format 1) and serves its documents and history', async () => {
    const sandbox = tempDir();
    cpSync(join(ROOT, 'test', 'fixtures', 'sandbox-format-1'), sandbox, { recursive: true });
    const h = await startHost([], { sandbox });
    try {
      assert.match(h.output(), /id=fixture-host/);
      const list = await http('GET', `${h.uri}/core/examples`);
      assert.deepEqual([...list.json.documentLinks].sort(), ['/core/examples/f1', '/core/examples/f2']);
      const f1 = await http('GET', `${h.uri}/core/examples/f1`);
      assert.equal(f1.json.counter, 10);
      assert.equal(f1.json.documentVersion, 1);
      assert.equal((await http('GET', `${h.uri}/core/examples/f3`)).json.errorCode, -2147483646, 'the deleted document stays deleted');
      const q = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'tags.item', matchValue: 't2' } } } });
      assert.deepEqual(q.json.results.documentLinks, ['/core/examples/f2'], 'the old index answers queries');
      const w = await http('PATCH', `${h.uri}/core/examples/f2`, { counter: 7 });
      assert.equal(w.json.documentVersion, 1);
    } finally {
      await h.stop();
    }
    // An index keeps the page size it was created with (4 KB then); a new one gets 16 KB pages.
    const fresh = await startHost();
    await fresh.stop();
    const pageSize = (dir: string) => {
      const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
      try {
        return db.pragma('page_size', { simple: true });
      } finally {
        db.close();
      }
    };
    assert.equal(pageSize(sandbox), 4096);
    assert.equal(pageSize(fresh.sandbox), 16384);
  });

  it('replays a commit log left by release 0.1.0 (one JSON line per record)', async () => {
    const sandbox = tempDir();
    cpSync(join(ROOT, 'test', 'fixtures', 'sandbox-format-1'), sandbox, { recursive: true });
    const kind = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';
    const f4 = {
      keyValues: {},
      counter: 4,
      name: 'logged-by-0.1',
      tags: [],
      isFromMigration: false,
      documentVersion: 0,
      documentEpoch: 0,
      documentKind: kind,
      documentSelfLink: '/core/examples/f4',
      documentUpdateTimeMicros: 1795290012900000,
      documentUpdateAction: 'POST',
      documentExpirationTimeMicros: 0,
      documentOwner: 'fixture-host',
    };
    const f2 = {
      keyValues: {},
      counter: 20,
      name: 'fixture-2',
      tags: ['t2'],
      isFromMigration: false,
      documentVersion: 1,
      documentEpoch: 0,
      documentKind: kind,
      documentSelfLink: '/core/examples/f2',
      documentUpdateTimeMicros: 1795290012900001,
      documentUpdateAction: 'PATCH',
      documentExpirationTimeMicros: 0,
      documentOwner: 'fixture-host',
    };
    const v = (d: typeof f4) => ({
      link: d.documentSelfLink,
      factory: '/core/examples',
      version: d.documentVersion,
      kind,
      updateTime: d.documentUpdateTimeMicros,
      action: d.documentUpdateAction,
      expiration: 0,
      owner: 'fixture-host',
      authPrincipal: null,
    });
    // Exactly what 0.1.0's encoder wrote: the document embedded as `d`, one record per line.
    const lines = [
      `{"s":1,"o":[{"t":"write","k":true,"r":{"limit":1000,"floor":500},"v":${JSON.stringify(v(f4))},"d":${JSON.stringify(f4)}}]}`,
      `{"s":2,"o":[{"t":"write","k":false,"r":{"limit":1000,"floor":500},"v":${JSON.stringify(v(f2))},"d":${JSON.stringify(f2)}}]}`,
    ];
    mkdirSync(join(sandbox, 'commit-log'));
    writeFileSync(join(sandbox, 'commit-log', '0000000000000001.log'), `${lines.join('\n')}\n`);
    const h = await startHost(['--logLevel=info'], { sandbox });
    try {
      // Log lines are written asynchronously: the ready line may come first.
      await waitFor(async () => /replayed acknowledged writes from the commit log/.test(h.output()), 'the replay in the log');
      assert.deepEqual((await http('GET', `${h.uri}/core/examples/f4`)).json, f4);
      assert.deepEqual((await http('GET', `${h.uri}/core/examples/f2`)).json, f2);
      const q = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'logged-by-0.1' } } } });
      assert.deepEqual(q.json.results.documentLinks, ['/core/examples/f4'], 'the replayed version is indexed');
      const w = await http('POST', `${h.uri}/core/examples`, { name: 'after-replay', documentSelfLink: 'f5' });
      assert.equal(w.status, 200);
    } finally {
      assert.equal(await h.stop(), 0);
    }
    assert.deepEqual(readdirSync(join(sandbox, 'commit-log')), [], 'the replayed log is gone after a clean stop');
  });
});
