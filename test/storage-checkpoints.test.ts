import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { importExamples } from './support/cluster.js';
import { http, startHost, waitFor } from './support/hosts.js';

/** The index file's size on disk, and the size of the database it holds (pages, the WAL's included). */
function sizes(sandbox: string): { file: number; database: number; wal: number } {
  const path = join(sandbox, 'index.sqlite');
  // Read-only: this connection never checkpoints, so what it sees is the host's doing.
  const db = new Database(path, { readonly: true });
  try {
    const pages = db.pragma('page_count', { simple: true }) as number;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    return { file: statSync(path).size, database: pages * pageSize, wal: statSync(`${path}-wal`).size };
  } finally {
    db.close();
  }
}

describe('index checkpoints', () => {
  it('copies written pages from the WAL into the database file in the background, while the host is idle', async () => {
    const host = await startHost();
    try {
      await importExamples(host.uri, 20_000, 'ckpt');
      // 20,000 documents are some 25 MB of WAL: below the writer's own checkpoint threshold, so
      // only the checkpointer thread moves them into the database file.
      const done = await waitFor(
        async () => {
          const s = sizes(host.sandbox);
          return s.file === s.database && s.wal > 0 ? s : undefined;
        },
        'the database file to hold every page',
        10_000,
      );
      assert.ok(done.database > 10_000_000, `database of ${done.database} bytes`);
      const count = await http('GET', `${host.uri}/core/examples?$count=true&$limit=1`);
      assert.equal(count.json.totalCount ?? count.json.documentCount, 20_000);
    } finally {
      await host.stop();
    }
  });

  it('keeps the WAL within its bound (128 MB) under a sustained write load, and loses nothing', async () => {
    const host = await startHost();
    try {
      // The writer's checkpoint threshold, plus what the transaction that crossed it added (its
      // checkpoint runs after that commit): a 5,000-document import's, measured up to 8.1 MB.
      const bound = 8192 * 16_384 + 16_000_000;
      let largest = 0;
      for (let batch = 0; batch < 30; batch++) {
        await importExamples(host.uri, 5_000, `load${batch}`);
        largest = Math.max(largest, sizes(host.sandbox).wal);
      }
      assert.ok(largest <= bound, `the WAL reached ${largest} bytes (bound ${bound})`);
      assert.ok(largest > 100_000_000, `the load should have filled the WAL past its first 100 MB (${largest} bytes)`);
      const count = await http('POST', `${host.uri}/core/query-tasks`, {
        taskInfo: { isDirect: true },
        querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/*', matchType: 'WILDCARD' } }, options: ['COUNT'] },
      });
      assert.equal(count.json.results.documentCount, 150_000);
    } finally {
      assert.equal(await host.stop(), 0);
    }
  });
});
