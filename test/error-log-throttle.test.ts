import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorLogThrottle } from '../src/core/error-log-throttle.js';
import { http, ROOT, startHost, tempDir, waitFor } from './support/hosts.js';

describe('the same server error of many requests is logged once per window', () => {
  it('holds repeats back within the window and reports how many with the next one logged', () => {
    let now = 1_000;
    const throttle = new ErrorLogThrottle(10_000, 3, () => now);
    assert.equal(throttle.admit('500 disk full'), 0, 'the first is logged');
    for (let i = 0; i < 5; i++) assert.equal(throttle.admit('500 disk full'), undefined);
    assert.equal(throttle.admit('500 another error'), 0, 'another error is logged at once');
    now += 9_999;
    assert.equal(throttle.admit('500 disk full'), undefined, 'still inside the window');
    now += 1;
    assert.equal(throttle.admit('500 disk full'), 6, 'the window passed: logged, with the six held back');
    assert.equal(throttle.admit('500 disk full'), undefined, 'a new window starts');
  });

  it('remembers a bounded number of distinct errors, dropping the oldest', () => {
    const now = 0;
    const throttle = new ErrorLogThrottle(10_000, 3, () => now);
    for (const k of ['a', 'b', 'c']) assert.equal(throttle.admit(k), 0);
    assert.equal(throttle.admit('d'), 0, 'a fourth error evicts the oldest, a');
    assert.equal(throttle.admit('a'), 0, 'a is forgotten: logged again');
    assert.equal(throttle.admit('c'), undefined, 'c is still remembered');
  });

  it('a host logs a handler that always throws once, answers every request with a 500, and keeps the cause apart', async () => {
    const file = join(tempDir(), 'failing.mjs');
    const api = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    writeFileSync(
      file,
      `import { defineStatelessService } from '${api}';
export const Broken = defineStatelessService({ link: '/test/broken', handlers: { POST: () => { throw new Error('backend down: connect ECONNREFUSED', { cause: new Error('connect ECONNREFUSED') }); } } });
export const Other = defineStatelessService({ link: '/test/other', handlers: { POST: () => { throw new Error('another failure'); } } });
`,
    );
    const h = await startHost([`--services=${file}`]);
    try {
      for (let i = 0; i < 40; i++) {
        const r = await http('POST', `${h.uri}/test/broken`, { i });
        assert.equal(r.status, 500);
        assert.equal(r.json['documentKind'], 'com:vmware:xenon:common:ServiceErrorResponse');
      }
      assert.equal((await http('POST', `${h.uri}/test/other`, {})).status, 500);
      // The host's output reaches this process through a pipe: wait for the last error's line.
      await waitFor(async () => h.output().includes('another failure'), 'the second error in the log');
      const logged = h
        .output()
        .split('\n')
        .filter((l) => l.includes('"request failed"'))
        .map((l) => JSON.parse(l) as { err: { message: string; cause?: { message: string } }; path: string });
      assert.deepEqual(
        logged.map((l) => l.path),
        ['/test/broken', '/test/other'],
        'each distinct error is logged once, not once per request',
      );
      assert.equal(logged[0]!.err.message, 'backend down: connect ECONNREFUSED', "the message as thrown, without its cause's appended");
      assert.equal(logged[0]!.err.cause?.message, 'connect ECONNREFUSED', 'the cause nested');
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });
});
