import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a listener received (a subscription notification). */
export interface Received {
  method: string;
  path: string;
  pragma: string;
  body: any;
}

/** A loopback HTTP server standing in for a subscriber: records what it is sent, answers `status`. */
export interface Listener {
  url: (path: string) => string;
  received: Received[];
  /** What it is sent to `path`. */
  at: (path: string) => Received[];
  status: number;
  close: () => Promise<void>;
}

export async function startListener(): Promise<Listener> {
  const received: Received[] = [];
  const listener = { status: 200 } as Listener;
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // kept as text
      }
      received.push({ method: req.method ?? '', path: req.url ?? '', pragma: String(req.headers['pragma'] ?? ''), body });
      res.statusCode = listener.status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  listener.url = (path) => `http://127.0.0.1:${port}${path}`;
  listener.received = received;
  listener.at = (path) => received.filter((r) => r.path === path);
  listener.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return listener;
}
