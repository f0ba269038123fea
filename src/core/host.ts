import type { Server } from 'node:http';
import { getHeapStatistics } from 'node:v8';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { pino, stdSerializers, type Logger } from 'pino';
import { SandboxLock } from '../store/sandbox-lock.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { opLink } from '../store/write-ops.js';
import { fail, kryptonError } from './errors.js';
import { SystemClock, type Clock } from './clock.js';
import { LinkLocks } from './link-locks.js';
import { HttpClient } from './http-client.js';
import { BodyBudget, createHttpServer, errorReply } from './http-server.js';
import { JsonStream, REQUEST_COUNT_STAT, type Operation, type Reply } from './operation.js';
import { ServiceStats, UTILITY_SUFFIXES, type Service } from './service.js';
import type { ServiceDefinition } from './service-definition.js';
import { genericUtility } from '../services/utility-handlers.js';
import { Subscriptions } from '../services/subscriptions.js';
import { QueryPages } from '../query/query-pages.js';
import { xenonFnv64 } from './fnv-hash.js';
import { useRecent } from './recently-used.js';
import { ErrorLogThrottle } from './error-log-throttle.js';
import { WriteFreeze } from './write-freeze.js';

/** How often a host whose writes are halted tries whether the index takes them again. */
const RESUME_INTERVAL_MICROS = 5_000_000;

export interface HostOptions {
  port: number;
  bindAddress: string;
  /** Host id; default: the id persisted in the sandbox, else a new random UUID. */
  id?: string;
  sandbox: string;
  publicUri?: string;
  peerNodes: string[];
  isAuthorizationEnabled: boolean;
  adminUser: string;
  adminPassword?: string;
  keyFile?: string;
  keyPassphrase?: string;
  /** User services (the authoring API); ExampleService and the core services are always started. */
  services: ServiceDefinition[];
  requestPayloadSizeLimit: number;
  /** A request not fully received this long after it began is answered 408 (a slow or stalled client; see http-server.ts). */
  requestTimeoutMicros: number;
  /** Plain requests that have wholly arrived are read without node:http (see core/fast-http.ts). */
  httpFastPath: boolean;
  /** Period of host maintenance (expiration purge, task expiry). */
  maintenanceIntervalMicros: number;
  /** Longest wait of a logged write before the index applies it (see store/commit-queue.ts). */
  indexFlushDelayMs: number;
  /** How much lower (nice) the index writer thread runs while nobody waits for it (see store/thread-priority.ts); 0: never. */
  indexWriterNice: number;
  /** Default lifetime of query tasks and their pages. */
  queryTaskExpirationMicros: number;
  /** Live query pages kept at most (see QueryPages); the oldest goes first. */
  queryPageLimit: number;
  /** Live asynchronous query tasks kept at most, per task service (see QueryTaskService.makeRoom). */
  queryTaskLimit: number;
  /** Subscriptions (P/subscriptions) the host holds at most, over all links (see Subscriptions). */
  subscriptionLimit: number;
  /** Default migration task maintenance interval (continuous re-runs). */
  migrationIntervalMicros: number;
  logLevel: string;
  clock?: Clock;
  // --- Node groups (src/cluster/cluster-settings.ts holds the defaults and the meaning of each) ---
  groupSecret?: string;
  groupSecretFile?: string;
  membershipQuorum?: number;
  gossipIntervalMicros?: number;
  nodeUnavailableTimeoutMicros?: number;
  nodeRemovalDelayMicros?: number;
  peerRequestTimeoutMicros?: number;
  operationTimeoutMicros?: number;
}

export const DEFAULT_HOST_OPTIONS: HostOptions = Object.freeze({
  port: 8000,
  bindAddress: '127.0.0.1',
  sandbox: './sandbox',
  peerNodes: [],
  isAuthorizationEnabled: false,
  adminUser: 'admin@localhost',
  services: [],
  requestPayloadSizeLimit: 64 * 1024 * 1024,
  requestTimeoutMicros: 300_000_000,
  httpFastPath: true,
  maintenanceIntervalMicros: 1_000_000,
  indexFlushDelayMs: 50,
  indexWriterNice: 19,
  queryTaskExpirationMicros: 600_000_000,
  queryPageLimit: 50_000,
  queryTaskLimit: 100_000,
  subscriptionLimit: 100_000,
  migrationIntervalMicros: 60_000_000,
  logLevel: 'info',
}) as HostOptions;

/**
 * The URI a host advertises without `--publicUri`: its bind address, loopback for the wildcard
 * addresses (`0.0.0.0`, `::`), IPv6 in brackets.
 */
export function defaultUri(bindAddress: string, port: number): string {
  const h = bindAddress === '0.0.0.0' ? '127.0.0.1' : bindAddress === '::' ? '::1' : bindAddress;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** Documents whose request statistics a host keeps (the most recently used; see Host.statsFor). */
export const CHILD_STATS_LIMIT = 10_000;

/** A filter runs before routing; returning a Reply ends the request (auth, forwarding). */
/** A request phase before routing: a reply ends the request; undefined (sync or async) passes it on. */
export type RequestFilter = (op: Operation) => Promise<Reply | undefined> | Reply | undefined;

/** Something started with the host and stopped with it (background loops, timers). */
export interface HostComponent {
  start?(): Promise<void> | void;
  stop?(): Promise<void> | void;
  maintain?(nowMicros: number): Promise<void> | void;
}

const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * `t.toString(16)` for the non-negative integers clocks give (microseconds), at a tenth of its cost
 * (V8 converts a double digit by digit): the digits above the low 24 bits change every 16 s and are
 * kept; the low 24 bits are three table lookups. A generated id is one per POST.
 */
export class HexTime {
  private high = -1;
  private highHex = '';

  of(t: number): string {
    if (!(t >= 0x1000000) || !Number.isSafeInteger(t)) return t.toString(16);
    const high = Math.floor(t / 0x1000000);
    const low = t - high * 0x1000000;
    if (high !== this.high) {
      this.high = high;
      this.highHex = high.toString(16);
    }
    return this.highHex + HEX_BYTES[low >>> 16]! + HEX_BYTES[(low >>> 8) & 255]! + HEX_BYTES[low & 255]!;
  }
}

/**
 * A krypton host: one process serving services at URI links over HTTP, with one embedded index.
 * Request pipeline: parse (http-server) → filters (authorize, forward to owner) → route → handle.
 */
export class Host {
  readonly options: HostOptions;
  readonly clock: Clock;
  readonly log: Logger;
  readonly locks = new LinkLocks();
  readonly client = new HttpClient();
  store!: SqliteStore;
  readonly queryPages = new QueryPages(this);
  readonly subscriptions = new Subscriptions(this);
  /** Refuses clients' document writes during an upgrade's maintenance window (see write-freeze.ts). */
  readonly writeFreeze = new WriteFreeze(this);
  id = '';
  private idPrefix = '';
  private readonly hexTime = new HexTime();
  private readonly services = new Map<string, Service>();
  /** Stats of the services registered here (a fixed set). */
  private readonly stats = new Map<string, ServiceStats>();
  /** Stats of documents (a factory's children), least recently used first; see statsFor. */
  private readonly childStats = new Map<string, ServiceStats>();
  private readonly filters: RequestFilter[] = [];
  private readonly components: HostComponent[] = [];
  private server: Server | undefined;
  private sandboxLock: SandboxLock | undefined;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private stopping = false;
  /** The same server error of many requests is logged once per window (a full disk, a broken handler). */
  private readonly errorLog = new ErrorLogThrottle();
  /** When maintenance may next try to end a halt of writes (resumeWrites). */
  private nextResumeAttempt = 0;
  port = 0;

  constructor(options: Partial<HostOptions> = {}) {
    this.options = { ...DEFAULT_HOST_OPTIONS, ...options };
    this.clock = this.options.clock ?? new SystemClock();
    // errWithCause: an error's message as it is, its cause nested (pino's default appends the
    // cause's message to the error's, which ours already quote).
    this.log = pino({ level: this.options.logLevel, base: null, serializers: { err: stdSerializers.errWithCause } });
  }

  /** Base URI peers and clients use for this host. */
  /** True once stop() began: long waits (a query's expectedResultCount) give up instead of holding the stop. */
  get isStopping(): boolean {
    return this.stopping;
  }

  get uri(): string {
    if (this.options.publicUri) return this.options.publicUri.replace(/\/$/, '');
    return defaultUri(this.options.bindAddress, this.port);
  }

  /** A new document id in Xenon's format: hex(hash(hostId)) + hex(nowMicros); unique per host. */
  newId(): string {
    return this.idPrefix + this.hexTime.of(this.clock.nowMicros());
  }

  register(service: Service): void {
    if (this.services.has(service.link)) fail('CONFLICT', `a service is already started at ${service.link}`);
    this.services.set(service.link, service);
  }

  service(link: string): Service | undefined {
    return this.services.get(link);
  }

  serviceLinks(): string[] {
    return [...this.services.keys()].sort();
  }

  /**
   * The request statistics of `link`. A document's are kept for the CHILD_STATS_LIMIT documents
   * used last: every GET, PUT, PATCH or DELETE of a document counts on its stats, and keeping them
   * for every document ever touched grew the heap without bound (measured after one GET of each of
   * 200,000 documents: RSS +80 MB before, +21 MB with the limit, the same as after 100,000). Xenon
   * likewise drops an idle service's stats when it stops the service to free memory.
   */
  statsFor(link: string): ServiceStats {
    if (this.services.has(link)) {
      let s = this.stats.get(link);
      if (!s) {
        s = new ServiceStats();
        this.stats.set(link, s);
      }
      return s;
    }
    return useRecent(this.childStats, link, () => new ServiceStats(), CHILD_STATS_LIMIT);
  }

  /** Filters run in order; `first` puts one ahead of all others (node groups: peer authentication). */
  addFilter(filter: RequestFilter, position: 'first' | 'last' = 'last'): void {
    if (position === 'first') this.filters.unshift(filter);
    else this.filters.push(filter);
  }

  addComponent(c: HostComponent): void {
    this.components.push(c);
  }

  /**
   * Takes the sandbox (one host each, see SandboxLock), opens it, starts every service and listens.
   * If any step fails, what was started is stopped again (the sandbox released) and the error thrown.
   */
  async start(install: (host: Host) => Promise<void> | void): Promise<void> {
    if (this.options.sandbox !== ':memory:') this.sandboxLock = SandboxLock.acquire(this.options.sandbox);
    try {
      this.store = SqliteStore.open(this.options.sandbox, {
        flushDelayMs: this.options.indexFlushDelayMs,
        largestDocumentBytes: this.options.requestPayloadSizeLimit,
        writerNice: this.options.indexWriterNice,
      });
      const upgraded = this.store.upgraded;
      if (upgraded) this.log.info(upgraded, `upgraded the index from format ${upgraded.from} to ${upgraded.to}`);
      const { writes, failed } = this.store.replayed;
      if (writes > 0) this.log.info({ writes, failed: failed.length }, 'replayed acknowledged writes from the commit log into the index');
      for (const error of failed.slice(0, 10)) this.log.error({ error }, 'a logged write could not be replayed');
      this.store.commits.onApplyError = (error, ops) => {
        const links = ops.map(opLink).filter((l) => l !== undefined);
        // Up to 2,048 writes a batch: the first links name them, the count says how many.
        this.log.error({ error, writes: links.length, links: links.slice(0, 20) }, 'acknowledged writes could not be applied to the index (they are kept in the commit log)');
      };
      this.id = this.options.id ?? this.store.getMeta('hostId') ?? randomUUID();
      this.store.setMeta('hostId', this.id);
      this.writeFreeze.load();
      if (this.writeFreeze.frozen)
        this.log.warn(this.writeFreeze.describe(), 'writes are frozen (kept in the sandbox): clients\' document writes are refused until PUT /management/write-freeze {"frozen": false}');
      this.subscriptions.watch();
      this.idPrefix = xenonFnv64(this.id).toString(16);
      await install(this);
      for (const c of this.components) await c.start?.();
      this.server = createHttpServer((op) => this.dispatch(op), {
        requestPayloadSizeLimit: this.options.requestPayloadSizeLimit,
        requestTimeoutMs: Math.max(1, Math.round(this.options.requestTimeoutMicros / 1000)),
        fastPath: this.options.httpFastPath,
        // A tenth of the heap: a body is held four or five times over while it is handled.
        bodyBudget: new BodyBudget(Math.max(this.options.requestPayloadSizeLimit, Math.floor(getHeapStatistics().heap_size_limit / 10))),
        onError: (err, op) => this.logError(err, op),
        // From its first byte: a request still uploading its body is in flight too (stop waits).
        track: () => {
          this.inFlight++;
          return () => this.inFlight--;
        },
      });
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', (err: NodeJS.ErrnoException) => {
          const why = err.code === 'EADDRINUSE' ? 'the address is in use (another process listens there)' : err.message;
          reject(kryptonError('UNAVAILABLE', `cannot listen on ${this.options.bindAddress}:${this.options.port}: ${why}`, { cause: err }));
        });
        this.server!.listen(this.options.port, this.options.bindAddress, () => resolve());
      });
      this.port = (this.server.address() as AddressInfo).port;
      const interval = Math.max(10, this.options.maintenanceIntervalMicros / 1000);
      this.maintenanceTimer = setInterval(() => void this.maintain(), interval);
      this.maintenanceTimer.unref();
    } catch (err) {
      await this.stop().catch((e: unknown) => this.log.error({ err: e }, 'stopping after a failed start failed'));
      throw err;
    }
  }

  private async maintain(): Promise<void> {
    if (this.stopping) return;
    try {
      const now = this.clock.nowMicros();
      if (this.store.writesHalted) await this.resumeWrites(now);
      // Expiry purges are writes: none while they are refused.
      if (!this.store.writesHalted) await this.store.purgeExpired(now);
      this.queryPages.sweep(now);
      this.subscriptions.sweep(now);
      for (const c of this.components) await c.maintain?.(now);
    } catch (err) {
      // Once a second while the cause lasts (a halted index): logged once per window, as request errors are.
      this.logErrorOncePerWindow(`maintenance ${(err as Error | undefined)?.message}`, { err }, 'maintenance failed');
    }
  }

  /**
   * While writes are halted (the index could not take an acknowledged write), tries every
   * RESUME_INTERVAL_MICROS whether it takes the writes it lacks now (space freed, a lock released).
   */
  private async resumeWrites(now: number): Promise<void> {
    if (now < this.nextResumeAttempt) return;
    this.nextResumeAttempt = now + RESUME_INTERVAL_MICROS;
    let writes: number | undefined;
    try {
      writes = await this.store.resumeWrites();
    } catch (err) {
      this.logErrorOncePerWindow(
        `resume ${(err as Error).message}`,
        { reason: (err as Error).message },
        'writes stay halted: the index does not take the acknowledged writes it lacks yet; trying again in a few seconds',
        'warn',
      );
      return;
    }
    if (writes !== undefined) this.log.info({ writes }, 'the index takes writes again: the acknowledged writes it lacked were applied from the commit log');
  }

  /** Routes one operation: filters, then exact link, utility suffix, factory child, else 404. */
  async dispatch(op: Operation): Promise<Reply> {
    this.inFlight++;
    try {
      for (const f of this.filters) {
        const pending = f(op);
        const r = pending instanceof Promise ? await pending : pending;
        if (r) return this.counted(r);
      }
      return this.counted(await this.route(op));
    } catch (err) {
      this.logError(err, op);
      return errorReply(err);
    } finally {
      this.inFlight--;
    }
  }

  /** A streamed reply stays in flight until its last chunk is sent (stop waits for it, as for any request). */
  private counted(reply: Reply): Reply {
    if (!(reply.body instanceof JsonStream)) return reply;
    const source = reply.body.chunks;
    this.inFlight++;
    let done = false;
    const finish = () => {
      if (!done) this.inFlight--;
      done = true;
    };
    async function* chunks(): AsyncGenerator<string> {
      try {
        yield* source;
      } finally {
        finish();
      }
    }
    // A reply that is never iterated (its client left before) is not waited for past stop's deadline.
    return { ...reply, body: new JsonStream(chunks()) };
  }

  /** May throw at once (404): dispatch awaits it inside its try. */
  private route(op: Operation): Promise<Reply> {
    const path = op.path;
    const direct = this.services.get(path);
    if (direct) {
      this.statsFor(path).adjust(REQUEST_COUNT_STAT[op.action], 1, this.clock.nowMicros());
      return direct.handle(op);
    }
    const slash = path.lastIndexOf('/');
    const parent = path.slice(0, slash);
    const last = path.slice(slash + 1);
    if (UTILITY_SUFFIXES.has(last)) {
      const owner = this.services.get(parent);
      if (owner) return owner.handleUtility ? owner.handleUtility(op, last) : genericUtility(this, owner.link, op, last);
      const gp = parent.lastIndexOf('/');
      const factory = this.services.get(parent.slice(0, gp));
      if (factory?.handleChild) return factory.handleChild(op, parent, last);
    }
    const factory = this.services.get(parent);
    if (factory?.handleChild && last.length > 0) return factory.handleChild(op, path, undefined);
    return fail('NOT_FOUND', `Service not found: ${op.uri}`);
  }

  private logError(err: unknown, op: Operation | undefined): void {
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    const ctx = op ? { action: op.action, path: op.path } : {};
    if (status >= 500) this.logErrorOncePerWindow(`${status} ${(err as Error | undefined)?.message}`, { err, ...ctx }, 'request failed');
    else this.log.debug({ status, reason: (err as Error).message, ...ctx }, 'request rejected');
  }

  /** Logs an error unless the same one (`key`) was logged less than a window ago; see ErrorLogThrottle. */
  private logErrorOncePerWindow(key: string, fields: Record<string, unknown>, message: string, level: 'error' | 'warn' = 'error'): void {
    const held = this.errorLog.admit(key);
    if (held !== undefined) this.log[level]({ ...fields, ...(held > 0 ? { repeatsNotLogged: held } : {}) }, message);
  }

  /** Graceful stop: stop accepting, finish in-flight requests, stop components, close the index. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.maintenanceTimer) clearInterval(this.maintenanceTimer);
    const closed = this.server ? new Promise<void>((resolve) => this.server!.close(() => resolve())) : Promise.resolve();
    this.server?.closeIdleConnections();
    const deadline = Date.now() + 10_000;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.server?.closeAllConnections();
    await closed;
    for (const c of [...this.components].reverse()) await c.stop?.();
    this.subscriptions.stop();
    await this.client.close();
    try {
      await this.store?.close();
    } finally {
      this.sandboxLock?.release();
    }
  }
}
