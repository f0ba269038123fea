import type { Doc } from '../core/document.js';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import type { WriteOp } from '../store/write-ops.js';

/**
 * `P/subscriptions` (xenon-core-wire.md §10.5): a client registers a callback URI (`reference`) on a
 * document or a factory, and after every update the host sends it a request with the update's verb
 * and the new state as body, marked with pragma `xn-nt`. A factory's subscribers hear of every
 * child it creates (POST). Subscriptions live in the memory of the host that took them, as in
 * Xenon; they watch the index, so an update applied there by any path (a request, a migration
 * import, a node-group replica) is notified.
 *
 * Beyond Xenon: a subscriber's notifications leave one at a time, in update order, with at most
 * MAX_QUEUED waiting (older ones are dropped first and the next notification carries
 * `xn-nt-skipped`); with auth on, a notification carries a document only if the subscriber may
 * read it under the policies in force when it is sent.
 */

/** Consecutive failed deliveries after which a subscriber is dropped (Xenon: more than 5). */
export const MAX_FAILURES = 5;
/** Notifications waiting per subscriber, at most (see the module note). */
export const MAX_QUEUED = 1_000;
/** Subscribers per link, at most: a 400 beyond it (every update is sent to each). */
export const MAX_SUBSCRIBERS_PER_LINK = 100;
const NOTIFICATION_TIMEOUT_MS = 10_000;
const SUBSCRIPTION_KIND = 'com:vmware:xenon:common:ServiceSubscriptionState:ServiceSubscriber';

/** An update's verb: documentUpdateAction of the version. */
type UpdateAction = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Notification {
  action: UpdateAction;
  json: string;
  /** Already filtered for its reader (a continuous query task's results): no per-document read check. */
  filtered?: boolean;
}

interface Subscriber {
  reference: string;
  replayState: boolean;
  usePublicUri: boolean;
  notificationLimit: number | undefined;
  documentExpirationTimeMicros: number;
  notificationCount: number;
  failedNotificationCount: number;
  /** With auth on: may the subscriber read this document now? undefined: auth is off. */
  mayRead: ((doc: Doc) => boolean) | undefined;
  consecutiveFailures: number;
  firstFailureMicros: number;
  queue: Notification[];
  sending: boolean;
  skipped: boolean;
  removed: boolean;
}

export class Subscriptions {
  /** Watched link (a document or a factory) → reference → subscriber. */
  private readonly byLink = new Map<string, Map<string, Subscriber>>();
  /** Subscribers in byLink, over all links (at most the host's subscriptionLimit). */
  private count = 0;
  private stopped = false;

  constructor(private readonly host: Host) {}

  /** Starts watching the index's committed writes (called once the store is open). */
  watch(): void {
    this.host.store.commits.onCommitted((ops) => {
      if (this.byLink.size > 0) this.committed(ops);
    });
  }

  stop(): void {
    this.stopped = true;
    this.byLink.clear();
    this.count = 0;
  }

  /** Maintenance: ends the subscriptions past their documentExpirationTimeMicros (each is sent a DELETE). */
  sweep(nowMicros: number): void {
    for (const [link, subs] of [...this.byLink]) {
      for (const s of [...subs.values()]) if (s.documentExpirationTimeMicros > 0 && s.documentExpirationTimeMicros <= nowMicros) this.remove(link, s, true);
    }
  }

  /** Sends `link`'s subscribers an update of a service whose state is not in the index (a CONTINUOUS query task). */
  publish(link: string, action: UpdateAction, json: string): void {
    const subs = this.byLink.get(link);
    if (subs) for (const s of subs.values()) this.enqueue(link, s, { action, json, filtered: true });
  }

  /** The service at `link` is gone (a query task deleted or expired): its subscriptions end. */
  end(link: string): void {
    const subs = this.byLink.get(link);
    if (!subs) return;
    for (const s of subs.values()) s.removed = true;
    this.dropLink(link);
  }

  /** Forgets every subscriber of `link` (true if it had any). */
  private dropLink(link: string): boolean {
    const subs = this.byLink.get(link);
    if (!subs) return false;
    this.count -= subs.size;
    this.byLink.delete(link);
    return true;
  }

  /** Subscriptions held now, over all links. */
  get size(): number {
    return this.count;
  }

  /** The `P/subscriptions` utility of `link`; `factory`: the link is a factory (its children's creations are notified). */
  async handle(link: string, op: Operation, current: (() => string | undefined) | undefined): Promise<Reply> {
    switch (op.action) {
      case 'GET':
        return { status: 200, body: this.document(link) };
      case 'POST':
        return this.subscribe(link, op, current);
      case 'DELETE':
        return this.unsubscribe(link, op);
      default:
        return fail('METHOD_NOT_ALLOWED', `Action not supported on subscriptions: ${op.action}`);
    }
  }

  /** The `P/subscriptions` document of `link`: its subscribers. */
  document(link: string): Doc {
    const subscribers: Record<string, Doc> = {};
    for (const s of this.byLink.get(link)?.values() ?? []) {
      subscribers[s.reference] = {
        reference: s.reference,
        replayState: s.replayState,
        usePublicUri: s.usePublicUri,
        ...(s.notificationLimit !== undefined ? { notificationLimit: s.notificationLimit } : {}),
        notificationCount: s.notificationCount,
        failedNotificationCount: s.failedNotificationCount,
        documentKind: SUBSCRIPTION_KIND,
        documentExpirationTimeMicros: s.documentExpirationTimeMicros,
      };
    }
    return { subscribers, documentVersion: 0, documentSelfLink: `${link}/subscriptions`, documentUpdateTimeMicros: 0, documentExpirationTimeMicros: 0, documentOwner: this.host.id };
  }

  private async subscribe(link: string, op: Operation, current: (() => string | undefined) | undefined): Promise<Reply> {
    const body = op.bodyObject();
    if (!body) fail('VALIDATION', 'body is required: {"reference": "http://…/callback"}');
    const reference = callbackReference(body['reference']);
    const limit = body['notificationLimit'];
    if (limit !== undefined && limit !== null && !(Number.isInteger(limit) && (limit as number) > 0)) fail('VALIDATION', 'notificationLimit must be a positive integer');
    const expiration = body['documentExpirationTimeMicros'];
    if (expiration !== undefined && expiration !== null && !(Number.isSafeInteger(expiration) && (expiration as number) >= 0))
      fail('VALIDATION', 'documentExpirationTimeMicros must be a non-negative integer');
    let subs = this.byLink.get(link);
    if (!subs?.has(reference) && (subs?.size ?? 0) >= MAX_SUBSCRIBERS_PER_LINK) fail('VALIDATION', `${link} has ${MAX_SUBSCRIBERS_PER_LINK} subscribers, the most it takes`);
    // Subscriptions without an expiry live until removed, their document is deleted or purged, or their notifications keep failing: the host holds a bounded number.
    const hostLimit = this.host.options.subscriptionLimit;
    if (!subs?.has(reference) && this.count >= hostLimit) {
      fail(
        'UNAVAILABLE',
        `the host holds ${this.count} subscriptions (--subscriptionLimit=${hostLimit}): remove ones no longer needed (DELETE P/subscriptions) or give them a documentExpirationTimeMicros`,
      );
    }
    if (!subs) {
      subs = new Map();
      this.byLink.set(link, subs);
    }
    const previous = subs.get(reference);
    if (previous) previous.removed = true;
    else this.count++;
    const reader = op.authz?.reader();
    const s: Subscriber = {
      reference,
      replayState: body['replayState'] === true,
      usePublicUri: body['usePublicUri'] === true,
      notificationLimit: typeof limit === 'number' ? limit : undefined,
      documentExpirationTimeMicros: typeof expiration === 'number' ? expiration : 0,
      notificationCount: 0,
      failedNotificationCount: 0,
      mayRead: reader,
      consecutiveFailures: 0,
      firstFailureMicros: 0,
      queue: [],
      sending: false,
      skipped: false,
      removed: false,
    };
    subs.set(reference, s);
    this.host.log.info({ link, reference }, 'subscription added');
    if (s.replayState) {
      const json = current?.();
      if (json !== undefined) this.enqueue(link, s, { action: 'PUT', json });
    }
    return { status: 200, body: this.document(link) };
  }

  private unsubscribe(link: string, op: Operation): Reply {
    const body = op.bodyObject();
    if (!body) fail('VALIDATION', 'body is required: {"reference": "http://…/callback"}');
    const reference = callbackReference(body['reference']);
    const s = this.byLink.get(link)?.get(reference);
    if (s) this.remove(link, s, false);
    return { status: 200, body: this.document(link) };
  }

  private committed(ops: readonly WriteOp[]): void {
    for (const op of ops) {
      if (op.t === 'purge') {
        // Expired or replaced by a forced re-creation: the document's subscriptions end with it.
        if (this.dropLink(op.link)) this.host.log.info({ link: op.link }, 'subscriptions ended: the document was purged');
        continue;
      }
      if (op.t !== 'write') continue;
      const v = op.v;
      const action = v.action as UpdateAction;
      const own = this.byLink.get(v.link);
      if (own) {
        for (const s of own.values()) this.enqueue(v.link, s, { action, json: v.json });
        // A deleted document's subscriptions end with its DELETE notification (queued above), as its service stops in Xenon.
        if (action === 'DELETE') this.dropLink(v.link);
      }
      // A factory hears of the children it creates (a re-creation of a deleted link too).
      const factory = action === 'POST' ? this.byLink.get(v.factory) : undefined;
      if (factory) for (const s of factory.values()) this.enqueue(v.factory, s, { action: 'POST', json: v.json });
    }
  }

  private enqueue(link: string, s: Subscriber, n: Notification): void {
    if (s.removed || this.stopped) return;
    if (s.documentExpirationTimeMicros > 0 && s.documentExpirationTimeMicros <= this.host.clock.nowMicros()) {
      this.remove(link, s, true);
      return;
    }
    if (s.queue.length >= MAX_QUEUED) {
      s.queue.shift();
      s.skipped = true;
    }
    s.queue.push(n);
    if (!s.sending) void this.drain(link, s);
  }

  /** Sends a subscriber's notifications one at a time, in order. */
  private async drain(link: string, s: Subscriber): Promise<void> {
    s.sending = true;
    try {
      for (let n = s.queue.shift(); n && !s.removed && !this.stopped; n = s.queue.shift()) {
        if (s.mayRead && !n.filtered && !readable(s.mayRead, n.json)) continue;
        const delivered = await this.send(s, n);
        if (delivered) {
          s.consecutiveFailures = 0;
          s.notificationCount++;
          if (s.notificationLimit !== undefined && s.notificationCount >= s.notificationLimit) this.remove(link, s, true);
          continue;
        }
        s.failedNotificationCount++;
        const now = this.host.clock.nowMicros();
        if (s.consecutiveFailures++ === 0) s.firstFailureMicros = now;
        // Xenon: more than MAX_FAILURES failures in a row, for longer than a maintenance interval.
        if (s.consecutiveFailures > MAX_FAILURES && now - s.firstFailureMicros >= this.host.options.maintenanceIntervalMicros) {
          this.host.log.warn({ link, reference: s.reference, failures: s.consecutiveFailures }, 'subscriber dropped: its notifications keep failing');
          this.remove(link, s, true);
        }
      }
    } finally {
      s.sending = false;
    }
  }

  private async send(s: Subscriber, n: Notification): Promise<boolean> {
    const pragma = s.skipped ? 'xn-nt;xn-nt-skipped' : 'xn-nt';
    s.skipped = false;
    try {
      const res = await this.host.client.sendRaw(s.reference, { method: n.action, headers: { pragma, 'content-type': 'application/json' }, body: n.json, timeoutMs: NOTIFICATION_TIMEOUT_MS });
      if (res.status < 400) return true;
      this.host.log.debug({ reference: s.reference, status: res.status }, 'notification refused');
    } catch (err) {
      this.host.log.debug({ reference: s.reference, err: (err as Error).message }, 'notification failed');
    }
    s.skipped = true;
    return false;
  }

  /** Removes a subscriber; `tell`: the host ended it (limit, expiry, failures), so it is sent a DELETE, as Xenon does. */
  private remove(link: string, s: Subscriber, tell: boolean): void {
    if (s.removed) return;
    s.removed = true;
    s.queue.length = 0;
    const subs = this.byLink.get(link);
    if (subs?.get(s.reference) === s) {
      subs.delete(s.reference);
      this.count--;
    }
    if (subs?.size === 0) this.byLink.delete(link);
    this.host.log.info({ link, reference: s.reference }, 'subscription removed');
    if (tell && !this.stopped) {
      void this.host.client.sendRaw(s.reference, { method: 'DELETE', headers: { pragma: 'xn-nt' }, timeoutMs: NOTIFICATION_TIMEOUT_MS }).catch(() => undefined);
    }
  }
}

/** The subscriber's callback: an absolute http(s) URI. */
function callbackReference(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0) return fail('VALIDATION', 'reference is required: the URI notifications are sent to');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return fail('VALIDATION', `reference is not an absolute URI: ${raw}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail('VALIDATION', `reference must be an http or https URI: ${raw}`);
  return raw;
}

function readable(mayRead: (doc: Doc) => boolean, json: string): boolean {
  try {
    return mayRead(JSON.parse(json) as Doc);
  } catch {
    return false;
  }
}
