import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, http, startHost, tempDir } from './support/hosts.js';

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
  });
});
