import assert from 'node:assert/strict';
import { http, startHost, waitFor, type RunningHost } from './hosts.js';

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
  void documentVersion;
  void documentOwner;
  void documentEpoch;
  void documentAuthPrincipalLink;
  void documentUpdateAction;
  void isFromMigration;
  return rest;
}

export async function assertSameDocuments(blue: string, green: string, factory = '/core/examples'): Promise<number> {
  const [b, g] = await Promise.all([snapshot(blue, factory), snapshot(green, factory)]);
  assert.deepEqual([...g.keys()].sort(), [...b.keys()].sort(), 'same documentSelfLinks');
  for (const [link, doc] of b) assert.deepEqual(comparable(g.get(link)), comparable(doc), `same content and update time for ${link}`);
  return b.size;
}

export async function waitForStage(base: string, taskLink: string, stages: string[], timeoutMs = 60_000): Promise<any> {
  return waitFor(
    async () => {
      const r = await http('GET', `${base}${taskLink}`);
      return stages.includes(r.json?.taskInfo?.stage) ? r.json : undefined;
    },
    `task ${taskLink} to reach ${stages.join('/')}`,
    timeoutMs,
  );
}

/**
 * A blue and a green host for a describe block, blue seeded with `count` examples:
 * call in the suite body; the hosts are started before and stopped after its tests.
 */
export function blueGreenSuite(
  count: number,
  prefix: string,
  hooks: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void },
  concurrency = 16,
): { blue: RunningHost; green: RunningHost } {
  const pair = {} as { blue: RunningHost; green: RunningHost };
  hooks.before(async () => {
    [pair.blue, pair.green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green'])]);
    await createExamples(pair.blue.uri, count, prefix, concurrency);
  });
  hooks.after(async () => {
    await Promise.all([pair.blue.stop(), pair.green.stop()]);
  });
  return pair;
}

/** A migration task of /core/examples from blue's node group to green's. */
export function migrationTask(blue: RunningHost, green: RunningHost, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
    destinationNodeGroupReference: `${green.uri}/core/node-groups/default`,
    sourceFactoryLink: '/core/examples',
    destinationFactoryLink: '/core/examples',
    ...extra,
  };
}

/** Posts a task to green and waits until it ends; returns the final task document. */
export async function migrate(green: RunningHost, body: unknown): Promise<any> {
  const r = await http('POST', `${green.uri}/management/migration-tasks`, body);
  assert.equal(r.status, 200, r.text);
  return waitForStage(green.uri, r.json.documentSelfLink, ['FINISHED', 'FAILED', 'CANCELLED']);
}
