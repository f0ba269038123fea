import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Host, type HostOptions } from '../core/host.js';
import { isHttpUri } from '../core/http-client.js';
import type { ServiceDefinition } from '../core/service-definition.js';
import { installCoreServices } from '../services/install.js';
import { missingPeerKeyReason } from '../cluster/cluster-settings.js';
import { parseFlags, usage, UsageError, type FlagSpec, type FlagValues } from './flags.js';

export const HOST_FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze({
  port: { type: 'int', help: 'HTTP port (default 8000; 0 picks a free port)' },
  bindAddress: { type: 'string', help: 'interface to listen on (default 127.0.0.1)' },
  id: { type: 'string', help: 'host id (default: the id stored in the sandbox, else a random UUID)' },
  sandbox: { type: 'string', help: 'directory of the persistent index (default ./sandbox)' },
  publicUri: { type: 'string', help: 'URI advertised to peers' },
  peerNodes: { type: 'list', help: 'comma-separated peer URIs to join at start' },
  isAuthorizationEnabled: { type: 'bool', help: 'require authentication and authorization' },
  adminUser: { type: 'string', help: 'admin user email (default admin@localhost)' },
  adminPassword: { type: 'string', help: 'admin password; creates the admin user' },
  keyFile: { type: 'string', help: 'PKCS#8 PEM private key used to sign tokens' },
  keyPassphrase: { type: 'string', help: 'passphrase of --keyFile' },
  services: { type: 'list', repeatable: true, help: 'JavaScript module exporting service definitions (repeatable)' },
  requestPayloadSizeLimit: { type: 'int', help: 'largest accepted request body in bytes (default 67108864)' },
  requestTimeoutMicros: { type: 'int', help: 'a request whose headers and body have not all arrived this long after it began is answered 408 (default 300000000)' },
  httpFastPath: {
    type: 'bool',
    help: 'read plain, wholly arrived requests without node:http (faster); false: node:http reads every request (default true)',
  },
  maintenanceIntervalMicros: { type: 'int', help: 'host maintenance period: expiry purge (default 1000000)' },
  indexFlushDelayMs: { type: 'int', help: 'longest wait of an acknowledged write in the commit log before it is applied to the index in a batch (default 50)' },
  indexWriterNice: {
    type: 'int',
    help: 'how much lower (nice, 0-19) the index writer thread runs while it only applies writes already acknowledged, after a second also in the idle scheduling class (Linux, where the host may raise it back; chrt), and the WAL checkpointer thread throughout; 0: both at the host priority (default 19)',
  },
  queryTaskExpirationMicros: { type: 'int', help: 'default lifetime of query tasks and pages (default 600000000)' },
  queryPageLimit: { type: 'int', help: 'live query pages kept at most; beyond it the oldest is dropped (its link answers 404) (default 50000)' },
  queryTaskLimit: {
    type: 'int',
    help: 'live asynchronous query tasks kept at most, per task service; beyond it the oldest finished one is dropped (its link answers 404), and while every one is still running a new one is refused with 503 (default 100000)',
  },
  subscriptionLimit: {
    type: 'int',
    help: 'subscriptions (P/subscriptions) the host holds at most, over all links; beyond it a new one is refused with 503 (default 100000)',
  },
  migrationIntervalMicros: { type: 'int', help: 'default interval of continuous migration runs (default 60000000)' },
  logLevel: { type: 'string', help: 'pino log level: fatal, error, warn, info, debug (default info)' },
  groupSecret: { type: 'string', help: 'shared secret of the node group; every member needs the same (required with --peerNodes)' },
  groupSecretFile: { type: 'string', help: 'file holding the group secret (instead of --groupSecret, which ps shows)' },
  membershipQuorum: { type: 'int', help: 'members that must store a write (default: floor((peers+1)/2)+1, 1 alone)' },
  gossipIntervalMicros: { type: 'int', help: 'node-group gossip period, jittered ±25% (default 1000000)' },
  nodeUnavailableTimeoutMicros: { type: 'int', help: 'a peer silent this long is marked UNAVAILABLE (default 5000000)' },
  nodeRemovalDelayMicros: { type: 'int', help: 'an UNAVAILABLE peer is removed from the group after this (default 300000000)' },
  peerRequestTimeoutMicros: { type: 'int', help: 'timeout of one peer request: gossip, replication, synchronization (default 20000000)' },
  operationTimeoutMicros: { type: 'int', help: 'deadline of a request forwarded to its owner, retries included (default 60000000)' },
  securePort: { type: 'int', help: 'HTTPS port', ignored: true },
  sslClientAuthMode: { type: 'string', help: 'TLS client auth', ignored: true },
  certificateFile: { type: 'string', help: 'HTTPS certificate', ignored: true },
  perFactoryPeerSynchronizationLimitSeconds: { type: 'int', help: 'per-factory synchronization limit', ignored: true },
  isPeerSynchronizationEnabled: { type: 'bool', help: 'synchronize on group changes', ignored: true },
  authProviderHostUri: { type: 'string', help: 'delegate authentication', ignored: true },
  resourceSandbox: { type: 'string', help: 'UI resources directory', ignored: true },
  location: { type: 'string', help: 'location tag', ignored: true },
  autoBackupDirectory: { type: 'string', help: 'backup directory', ignored: true },
  isAutoBackupEnabled: { type: 'bool', help: 'automatic backups', ignored: true },
});

export function hostUsage(): string {
  return `usage: krypton host [--name=value ...]\n\n${usage(HOST_FLAGS)}`;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Turns parsed flags into host options (flags absent keep the defaults). */
export function hostOptionsFromFlags(flags: FlagValues): Partial<HostOptions> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) if (!HOST_FLAGS[k]?.ignored && k !== 'services') o[k] = v;
  if (typeof o['port'] === 'number' && o['port'] > 65535) throw new UsageError(`--port must be at most 65535: ${o['port']}`);
  if (o['requestPayloadSizeLimit'] === 0) throw new UsageError('--requestPayloadSizeLimit must be positive');
  if (typeof o['requestTimeoutMicros'] === 'number' && o['requestTimeoutMicros'] < 1000) throw new UsageError('--requestTimeoutMicros must be at least 1000');
  if (o['queryPageLimit'] === 0) throw new UsageError('--queryPageLimit must be positive');
  if (o['queryTaskLimit'] === 0) throw new UsageError('--queryTaskLimit must be positive');
  if (o['subscriptionLimit'] === 0) throw new UsageError('--subscriptionLimit must be positive');
  if (typeof o['indexWriterNice'] === 'number' && o['indexWriterNice'] > 19) throw new UsageError(`--indexWriterNice must be between 0 and 19: ${o['indexWriterNice']}`);
  if (typeof o['publicUri'] === 'string' && !isHttpUri(o['publicUri'])) throw new UsageError(`--publicUri must be an http(s) URI: ${o['publicUri']}`);
  if (typeof o['logLevel'] === 'string' && !LOG_LEVELS.includes(o['logLevel'])) throw new UsageError(`--logLevel must be one of ${LOG_LEVELS.join(', ')}: ${o['logLevel']}`);
  const reason = Array.isArray(o['peerNodes']) && o['peerNodes'].length > 0 ? missingPeerKeyReason(o as Partial<HostOptions>) : undefined;
  if (reason) throw new UsageError(`--peerNodes: ${reason}`);
  // A group member: it names peers, or holds the group secret (the first member names none).
  const member = (Array.isArray(o['peerNodes']) && o['peerNodes'].length > 0) || Boolean(o['groupSecret']) || Boolean(o['groupSecretFile']);
  if (member && o['isAuthorizationEnabled'] === true && !o['keyFile']) {
    throw new UsageError(
      'a node group with --isAuthorizationEnabled: start every member with the same --keyFile (a member checks the tokens the others issued; without one each host signs with its own random key)',
    );
  }
  return o as Partial<HostOptions>;
}

/** Loads `--services` modules: every exported service definition (or an exported `services` array). */
export async function loadServiceModules(paths: readonly string[]): Promise<ServiceDefinition[]> {
  const out: ServiceDefinition[] = [];
  for (const p of paths) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(resolve(p)).href)) as Record<string, unknown>;
    } catch (err) {
      // Node's message alone often names neither the module nor the flag (a syntax error).
      const e = err as Error & { code?: string };
      const where = e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(resolve(p)) ? 'no such file' : `${e.name}: ${e.message}`;
      throw new UsageError(`--services=${p}: cannot load ${resolve(p)}: ${where}`);
    }
    const candidates = Array.isArray(mod['services']) ? (mod['services'] as unknown[]) : Object.values(mod);
    const defs = candidates.filter((v): v is ServiceDefinition => !!v && typeof v === 'object' && ['stateful', 'stateless'].includes((v as { type?: string }).type ?? ''));
    if (defs.length === 0) throw new UsageError(`--services=${p}: the module exports no service definitions`);
    out.push(...defs);
  }
  return out;
}

/**
 * V8 lets its heap grow up to 4x past what survived the last full collection before collecting
 * again. A migration keeps about 60 MB of pages alive, so green's heap reached 210 MB (RSS 370 MB
 * over 100,000 documents). Growing by at most 50% keeps it near 100 MB at the same speed. Only
 * the CLI does this: a host embedded in a user's process leaves that process's V8 flags alone.
 */
function boundHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=50');
}

/** `krypton host`: starts a host and runs until SIGINT/SIGTERM (graceful stop: exit 0, or 1 if the stop failed). */
export async function runHost(args: readonly string[]): Promise<number> {
  const flags = parseFlags(args, HOST_FLAGS);
  boundHeapGrowth();
  const services = await loadServiceModules((flags['services'] as string[] | undefined) ?? []);
  const host = new Host({ ...hostOptionsFromFlags(flags), services });
  /** Resolves with the exit code: 0, or 1 when the stop failed (logged). */
  let stopping: Promise<number> | undefined;
  const stop = (reason: string) => {
    stopping ??= (async () => {
      host.log.info({ reason }, 'stopping');
      try {
        await host.stop();
      } catch (err) {
        host.log.error({ err }, 'stopped with an error');
        return 1;
      }
      host.log.info('stopped');
      return 0;
    })();
    return stopping;
  };
  // A bug must not take the whole host down with it: log it loudly and keep serving.
  process.on('unhandledRejection', (err) => host.log.error({ err }, 'unhandled rejection'));
  await host.start((h) => installCoreServices(h, () => void stop('DELETE /core/management').then((code) => process.exit(code))));
  if (host.options.bindAddress === '0.0.0.0' && !host.options.publicUri && host.options.peerNodes.length > 0) {
    host.log.warn({ uri: host.uri }, 'bound to 0.0.0.0 without --publicUri: peers are told this host is at 127.0.0.1, which only works on one machine');
  }
  // Listening for the signals before saying ready: a SIGTERM sent on the ready line (a supervisor,
  // a test) came before the listener 25 times in 30 and killed the host without a graceful stop.
  const done = new Promise<number>((resolveDone) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void stop(sig).then(resolveDone));
  });
  process.stdout.write(`krypton host ready id=${host.id} uri=${host.uri} sandbox=${resolve(host.options.sandbox)}\n`);
  return done;
}
