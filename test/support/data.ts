import assert from 'node:assert/strict';
import { http, waitFor } from './hosts.js';

/** Creates n examples through the public POST, `concurrency` at a time. */
export async function createExamples(base: string, n: number, prefix = 'ex', concurrency = 16, factory = '/core/examples'): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const r = await http('POST', `${base}${factory}`, { name: `${prefix}-${i}`, counter: i, documentSelfLink: `${prefix}-${i}` });
        assert.equal(r.status, 200, r.text);
      }
    }),
  );
}

/** All current documents of a factory, by link. */
export async function snapshot(base: string, factory = '/core/examples'): Promise<Map<string, any>> {
  const r = await http('GET', `${base}${factory}?expand`);
  assert.equal(r.status, 200, r.text);
  return new Map(Object.entries(r.json.documents ?? {}));
}

/** The user's fields plus the update time: what "green equals blue" compares. */
export function comparable(doc: any): any {
  const { documentVersion, documentOwner, documentEpoch, documentAuthPrincipalLink, documentUpdateAction, isFromMigration, ...rest } = doc;
  void documentVersion; void documentOwner; void documentEpoch; void documentAuthPrincipalLink; void documentUpdateAction; void isFromMigration;
  return rest;
}

export async function assertSameDocuments(blue: string, green: string, factory = '/core/examples'): Promise<number> {
  const [b, g] = await Promise.all([snapshot(blue, factory), snapshot(green, factory)]);
  assert.deepEqual([...g.keys()].sort(), [...b.keys()].sort(), 'same documentSelfLinks');
  for (const [link, doc] of b) assert.deepEqual(comparable(g.get(link)), comparable(doc), `same content and update time for ${link}`);
  return b.size;
}

export async function waitForStage(base: string, taskLink: string, stages: string[], timeoutMs = 60_000): Promise<any> {
  return waitFor(async () => {
    const r = await http('GET', `${base}${taskLink}`);
    return stages.includes(r.json?.taskInfo?.stage) ? r.json : undefined;
  }, `task ${taskLink} to reach ${stages.join('/')}`, timeoutMs);
}
