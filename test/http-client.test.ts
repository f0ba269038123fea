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
