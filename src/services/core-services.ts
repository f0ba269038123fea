import { hostname, cpus, freemem, totalmem, networkInterfaces } from 'node:os';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Doc } from '../core/document.js';
import { RawJson, type Operation, type Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';

/** A service implemented by one function per verb; others answer 405. */
export class SimpleService implements Service {
  constructor(
    readonly link: string,
    private readonly handlers: Partial<Record<Operation['action'], (op: Operation) => Promise<Reply> | Reply>>,
  ) {}

  async handle(op: Operation): Promise<Reply> {
    const h = this.handlers[op.action];
    if (!h) fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    return h(op);
  }
}

/** `/`: the root namespace, the sorted list of service links. */
export function rootNamespace(host: Host): Service {
  return new SimpleService('/', {
    GET: () => {
      const links = host.serviceLinks().filter((l) => l !== '/');
      return { status: 200, body: { documentLinks: links, documentCount: links.length, documentVersion: 0, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0, documentOwner: host.id } };
    },
  });
}

/** `/core/management`: ServiceHostState; DELETE stops the host (202). */
export function management(host: Host, onStopRequested: () => void): Service {
  return new SimpleService('/core/management', {
    GET: () => {
      const o = host.options;
      const ips = Object.values(networkInterfaces()).flatMap((a) => (a ?? []).map((i) => i.address));
      const body: Doc = {
        bindAddress: o.bindAddress,
        httpPort: host.port,
        httpsPort: -1,
        publicUri: host.uri,
        maintenanceIntervalMicros: o.maintenanceIntervalMicros,
        operationTimeoutMicros: 60_000_000,
        requestPayloadSizeLimit: o.requestPayloadSizeLimit,
        storageSandboxFileReference: pathToFileURL(resolve(o.sandbox)).href,
        id: host.id,
        isPeerSynchronizationEnabled: true,
        isAuthorizationEnabled: o.isAuthorizationEnabled,
        isProcessOwner: true,
        initialPeerNodes: o.peerNodes,
        serviceCount: host.serviceLinks().length,
        systemInfo: {
          properties: { 'krypton.version': '0.1.0', 'node.version': process.version, hostname: hostname() },
          availableProcessorCount: cpus().length,
          freeMemoryByteCount: freemem(),
          totalMemoryByteCount: totalmem(),
          maxMemoryByteCount: totalmem(),
          ipAddresses: ips,
          osName: process.platform,
          osFamily: process.platform === 'linux' ? 'LINUX' : process.platform === 'darwin' ? 'MACOS' : process.platform === 'win32' ? 'WINDOWS' : 'OTHER',
          processMemory: process.memoryUsage(),
        },
        documentVersion: 0,
        documentKind: 'com:vmware:xenon:common:ServiceHost:ServiceHostState',
        documentSelfLink: '/core/management',
        documentUpdateTimeMicros: host.clock.nowMicros(),
        documentExpirationTimeMicros: 0,
        documentOwner: host.id,
      };
      return { status: 200, body };
    },
    DELETE: () => {
      setImmediate(onStopRequested);
      return { status: 202 };
    },
  });
}

/** `/core/document-index?documentSelfLink=…[&documentVersion=n]` (Xenon §8.9, exact links). */
export function documentIndex(host: Host): Service {
  return new SimpleService('/core/document-index', {
    GET: (op) => {
      const link = op.query.get('documentSelfLink');
      if (!link) fail('VALIDATION', 'documentSelfLink query parameter is required');
      const v = op.query.get('documentVersion');
      const row = v !== undefined ? host.store.getVersion(link, Number(v)) : host.store.getLatest(link);
      const now = host.clock.nowMicros();
      if (!row || (row.expiration > 0 && row.expiration <= now)) return { status: 200 };
      return { status: 200, body: new RawJson(row.json) };
    },
  });
}
