import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HexTime } from '../src/core/host.js';
import { startHost } from '../src/index.js';
import { Operation, RawJson } from '../src/core/operation.js';
import { tempDir } from './support/hosts.js';

describe('generated ids: the clock in hex', () => {
  it('writes every time exactly as toString(16) does, across the boundaries it caches', () => {
    const hex = new HexTime();
    const now = Math.floor(Date.now() * 1000);
    const samples = [0, 1, 15, 16, 255, 0xffffff, 0x1000000, 0x1000001, 0x10000ff, 0x1ffffff, 0x2000000, 2 ** 40, 2 ** 40 - 1, Number.MAX_SAFE_INTEGER, now];
    // A run of consecutive microseconds across a change of the cached high digits, then a random walk.
    const edge = Math.ceil(now / 0x1000000) * 0x1000000;
    for (let t = edge - 300; t < edge + 300; t++) samples.push(t);
    let t = now;
    for (let i = 0; i < 20_000; i++) {
      t += 1 + ((i * 7919) % 50_000_000);
      samples.push(t);
    }
    for (const s of samples) assert.equal(hex.of(s), s.toString(16), String(s));
  });

  it('falls back to toString(16) for what clocks do not give', () => {
    const hex = new HexTime();
    for (const s of [-1, -0x1000001, 1.5, 2 ** 53 + 2, 0x1000000 + 0.5]) assert.equal(hex.of(s), s.toString(16), String(s));
  });
});

describe('replies to writes', () => {
  it('answers each of many writes committed in one turn with its own document', async () => {
    const host = await startHost({ port: 0, sandbox: tempDir(), logLevel: 'warn' });
    try {
      const post = (i: number) =>
        host.dispatch(
          new Operation({
            action: 'POST',
            path: '/core/examples',
            rawQuery: '',
            headers: {},
            bodyText: JSON.stringify({ name: `same-turn-${i}`, counter: i }),
            contentType: 'application/json',
            uri: 'http://x/core/examples',
          }),
        );
      // All started before any answer is built: more commits than the writer keeps texts of.
      const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => post(i)));
      const links = new Set<string>();
      for (const [i, r] of replies.entries()) {
        assert.equal(r.status, 200);
        assert.ok(r.body instanceof RawJson);
        const doc = JSON.parse(r.body.text) as Record<string, unknown>;
        assert.equal(doc['name'], `same-turn-${i}`);
        assert.equal(doc['counter'], i);
        links.add(doc['documentSelfLink'] as string);
        assert.equal(host.store.getLatest(doc['documentSelfLink'] as string)?.json, r.body.text, 'the reply is the stored text');
      }
      assert.equal(links.size, 40);
    } finally {
      await host.stop();
    }
  });
});
