import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
// The built modules, as a host runs them: the writer thread needs the compiled writer-worker.js.
import { SqliteStore } from '../dist/store/sqlite-store.js';
import type { WriteOp } from '../dist/store/write-ops.js';
import { http, startHost, tempDir, waitFor } from './support/hosts.js';

const write = (link: string): WriteOp => ({
  t: 'write',
  v: { link, factory: '/f', version: 0, kind: null, updateTime: 1, action: 'POST', expiration: 0, owner: null, authPrincipal: null, json: JSON.stringify({ documentSelfLink: link }) },
  knownNew: true,
});

/** The nice value of each thread of process `pid` (Linux /proc: the 19th field of a task's stat). */
function threadNices(pid: number | 'self'): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}
const lowered = (pid: number | 'self' = 'self') => [...threadNices(pid)].filter(([, nice]) => nice > 0).map(([tid, nice]) => ({ tid, nice }));
/** A thread's scheduling class (the 41st field of its stat): 0 SCHED_OTHER, 5 SCHED_IDLE. */
function policyOf(tid: number, pid: number | 'self' = 'self'): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
}
const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
/** util-linux chrt, which sets the idle class (without it the writer is only lowered by its nice value). */
const hasChrt = spawnSync('chrt', ['--version']).status === 0;

/** Whether node started so (`prefix`: a command that execs it) may raise its priority again after lowering it (CAP_SYS_NICE, or a high RLIMIT_NICE). */
function mayRaiseBack(prefix: string[] = []): boolean {
  const command = [...prefix, process.execPath, '-e', "const os = require('node:os'); os.setPriority(10); os.setPriority(0);"];
  return process.platform === 'linux' && spawnSync(command[0]!, command.slice(1)).status === 0;
}
const canRaiseBack = mayRaiseBack();
/** util-linux setpriv dropping CAP_SYS_NICE: a host as an unprivileged user, or in a container without SYS_NICE. */
const WITHOUT_CAP_SYS_NICE = ['setpriv', '--bounding-set=-sys_nice', '--inh-caps=-sys_nice', '--'];
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

describe('the index writer thread priority', { skip: process.platform !== 'linux' && 'thread priorities are read from Linux /proc' }, () => {
  it('lowers the writer while it only applies acknowledged writes, and raises it the moment anyone waits for it', async () => {
    const store = SqliteStore.open(tempDir(), { flushDelayMs: 60_000, writerNice: 19 });
    try {
      assert.equal(store.submit([write('/f/a')], 'logged'), undefined);
      if (!canRaiseBack) {
        // The writer could not be raised back when a reader needs it: it is never lowered. The
        // checkpointer, which nobody waits for, is lowered for good (no privilege needed).
        await store.commits.drain();
        await waitFor(async () => lowered().length === 1, 'the checkpointer lowered');
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual(
          lowered().map((t) => t.nice),
          [19],
        );
        return;
      }
      // Nobody waits for the queued logged write: the writer runs 19 lower, as the checkpointer does.
      const background = await waitFor(async () => (lowered().length === 2 ? lowered() : undefined), 'the writer and the checkpointer lowered');
      assert.deepEqual(
        background.map((t) => t.nice),
        [19, 19],
      );
      const checkpointer = background.map((t) => t.tid).sort((a, b) => a - b)[0]!;
      const writer = background.find((t) => t.tid !== checkpointer)!.tid;
      // A second in the background: the writer takes the idle class too (chrt), the checkpointer never.
      if (hasChrt) await waitFor(async () => policyOf(writer) === SCHED_IDLE, 'the writer in SCHED_IDLE', 10_000);
      assert.equal(policyOf(checkpointer), SCHED_OTHER);
      // An import is answered only after its commit: its submitter waits, the writer is raised at once.
      const imported = store.submit([write('/f/b')], 'import')!;
      const during = lowered();
      assert.deepEqual(during, [background.find((t) => t.tid === checkpointer)], 'the writer is raised while an import waits; the checkpointer stays lowered');
      await imported;
      // Its class follows (a chrt, a few milliseconds), and stays until a second in the background again.
      await waitFor(async () => policyOf(writer) === SCHED_OTHER, 'the writer back in SCHED_OTHER', 10_000);
      assert.deepEqual(lowered(), background, 'lowered again once the import is committed');
      // A reader settling on an acknowledged write waits for the writer too.
      assert.equal(store.submit([write('/f/c')], 'logged'), undefined);
      assert.deepEqual(lowered(), background, 'a logged write alone keeps it lowered');
      const read = store.read(() => store.getLatest('/f/c'));
      assert.deepEqual(lowered(), during, 'raised while a reader settles');
      assert.equal((await read)?.link, '/f/c');
      assert.deepEqual(lowered(), background);
    } finally {
      await store.close();
    }
  });

  it('krypton host lowers the index writer and the checkpointer, and --indexWriterNice=0 neither', async () => {
    const body = { name: 'example-1', counter: 1 };
    const lowering = await startHost();
    const plain = await startHost(['--indexWriterNice=0']);
    try {
      for (const h of [lowering, plain]) for (let i = 0; i < 20; i++) assert.equal((await http('POST', `${h.uri}/core/examples`, body)).status, 200);
      const query = { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'example-1' } }, options: ['COUNT'] } };
      for (const h of [lowering, plain]) assert.equal((await http('POST', `${h.uri}/core/query-tasks`, query)).json.results.documentCount, 20);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(lowered(plain.proc.pid!), []);
      // The writer and the checkpointer; where the writer could not be raised back, the checkpointer only.
      assert.deepEqual(
        lowered(lowering.proc.pid!).map((t) => t.nice),
        canRaiseBack ? [19, 19] : [19],
      );
      // A second after the writes, the writer of the host that may raise it back is in the idle class.
      const idle = () => [...threadNices(lowering.proc.pid!).keys()].filter((tid) => policyOf(tid, lowering.proc.pid!) === SCHED_IDLE);
      if (canRaiseBack && hasChrt) await waitFor(async () => idle().length === 1, 'the writer in SCHED_IDLE', 10_000);
      else {
        await new Promise((r) => setTimeout(r, 1500));
        assert.deepEqual(idle(), []);
      }
      assert.deepEqual(
        [...threadNices(plain.proc.pid!).keys()].filter((tid) => policyOf(tid, plain.proc.pid!) !== SCHED_OTHER),
        [],
      );
    } finally {
      await Promise.all([lowering.stop(), plain.stop()]);
    }
  });

  it('uses the nice value alone where util-linux chrt cannot be found', { skip: !canRaiseBack && 'the writer is lowered only where it may be raised back' }, async () => {
    const h = await startHost([], { env: { PATH: '/nonexistent' } });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: `p-${i}`, counter: i })).status, 200);
      await new Promise((r) => setTimeout(r, 1500));
      const pid = h.proc.pid!;
      assert.deepEqual(
        lowered(pid).map((t) => [t.nice, policyOf(t.tid, pid)]),
        [
          [19, SCHED_OTHER],
          [19, SCHED_OTHER],
        ],
      );
      // It still serves, and reads see every write.
      const query = { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'p-*', matchType: 'WILDCARD' } }, options: ['COUNT'] } };
      assert.equal((await http('POST', `${h.uri}/core/query-tasks`, query)).json.results.documentCount, 20);
      assert.equal(await h.stop(), 0);
    } finally {
      if (h.proc.exitCode === null) await h.stop();
    }
  });

  it('never lowers the writer of a host that could not raise it back (no CAP_SYS_NICE); its checkpointer still is', { skip: !hasSetpriv && 'needs util-linux setpriv' }, async () => {
    const h = await startHost([], { execWith: WITHOUT_CAP_SYS_NICE });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: `n-${i}`, counter: i })).status, 200);
      const query = { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'n-*', matchType: 'WILDCARD' } }, options: ['COUNT'] } };
      assert.equal((await http('POST', `${h.uri}/core/query-tasks`, query)).json.results.documentCount, 20);
      await new Promise((r) => setTimeout(r, 200));
      // Where even that host could raise it back (an RLIMIT_NICE of 20 or more), the writer is lowered too.
      assert.deepEqual(
        lowered(h.proc.pid!).map((t) => t.nice),
        mayRaiseBack(WITHOUT_CAP_SYS_NICE) ? [19, 19] : [19],
      );
      if (!mayRaiseBack(WITHOUT_CAP_SYS_NICE)) {
        // Nor does it take the idle class, which it could not leave either.
        await new Promise((r) => setTimeout(r, 1500));
        assert.deepEqual(
          [...threadNices(h.proc.pid!).keys()].filter((tid) => policyOf(tid, h.proc.pid!) !== SCHED_OTHER),
          [],
        );
      }
      assert.equal(await h.stop(), 0);
    } finally {
      if (h.proc.exitCode === null) await h.stop();
    }
  });
});
