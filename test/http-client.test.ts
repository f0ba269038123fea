import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpClient } from '../src/core/http-client.js';

/** A loopback server answering `{"port": …}` after `delayMs`. */
async function server(delayMs = 0): Promise<{ uri: string; close: () => Promise<void> }> {
  const s: Server = createServer((_req, res) => {
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ port: (s.address() as AddressInfo).port }));
    }, delayMs);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return {
    uri: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => s.close(() => r())),
  };
}

describe('host-to-host HTTP client', () => {
  it('keeps pools for at most maxOrigins origins: the least recently used closes after its requests in flight are answered', async () => {
    const servers = await Promise.all([server(300), server(), server(), server(), server()]);
    const client = new HttpClient(2, 3);
    try {
      // A slow request on the first origin is in flight while four more origins push it out.
      const slow = client.send<{ port: number }>(`${servers[0]!.uri}/slow`, { method: 'GET' });
      for (const s of servers.slice(1)) {
        const r = await client.send<{ port: number }>(`${s.uri}/x`, { method: 'GET' });
        assert.equal(`http://127.0.0.1:${r.body.port}`, s.uri);
        assert.ok(client.poolCount <= 3, `pools: ${client.poolCount}`);
      }
      assert.equal((await slow).body.port, Number(new URL(servers[0]!.uri).port), 'the request in flight was answered');
      // An origin pushed out gets a new pool when it is used again.
      const again = await client.send<{ port: number }>(`${servers[1]!.uri}/again`, { method: 'GET' });
      assert.equal(again.body.port, Number(new URL(servers[1]!.uri).port));
      assert.equal(client.poolCount, 3);
    } finally {
      await client.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});

describe('host-to-host HTTP client: response text', () => {
  it('reads ASCII, UTF-8 (characters split across chunks), byte-order-marked and empty bodies as their text', async () => {
    const unicode = JSON.stringify({ city: 'Zürich', name: '名前', smile: '😀', large: 'x'.repeat(200_000) });
    const ascii = JSON.stringify({ documentLinks: Array.from({ length: 20_000 }, (_, i) => `/core/examples/doc-${i}`) });
    const s: Server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      const bytes =
        req.url === '/ascii'
          ? Buffer.from(ascii)
          : req.url === '/bom'
            ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(unicode)])
            : req.url === '/empty'
              ? Buffer.alloc(0)
              : Buffer.from(unicode);
      // Odd-sized writes: multi-byte characters are cut between chunks.
      for (let at = 0; at < bytes.length; at += 7_777) res.write(bytes.subarray(at, at + 7_777));
      res.end();
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const uri = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const client = new HttpClient();
    try {
      assert.equal((await client.send<string>(`${uri}/ascii`, { method: 'GET', rawBody: true })).body, ascii);
      assert.equal((await client.send<string>(`${uri}/utf8`, { method: 'GET', rawBody: true })).body, unicode);
      const parsed = (await client.send<{ city: string; name: string; smile: string }>(`${uri}/utf8`, { method: 'GET' })).body;
      assert.deepEqual([parsed.city, parsed.name, parsed.smile], ['Zürich', '名前', '😀']);
      assert.equal((await client.send<string>(`${uri}/bom`, { method: 'GET', rawBody: true })).body, unicode, 'the byte order mark is not part of the text');
      assert.equal((await client.send<unknown>(`${uri}/empty`, { method: 'GET' })).body, undefined);
    } finally {
      await client.close();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});
