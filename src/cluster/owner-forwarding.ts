import { KryptonError, kryptonError, toServiceErrorResponse } from '../core/errors.js';
import type { Host, RequestFilter } from '../core/host.js';
import { Pragma, RawJson, type Operation, type Reply } from '../core/operation.js';
import { UTILITY_SUFFIXES } from '../core/service.js';
import { FactoryService } from '../services/factory-service.js';
import { nodeBaseUri, PeerHeaders } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';
import { wasNotSent, type PeerClient } from './peer-client.js';

/** Headers that belong to one hop (or are re-signed) and are not forwarded. */
const HOP_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'accept-encoding',
  'pragma',
  PeerHeaders.ID,
  PeerHeaders.AUTH,
  PeerHeaders.PROTOCOL,
  PeerHeaders.DEADLINE,
]);

interface Route {
  /** The document link that selects the owner. */
  key: string;
  /** Factory POST: the body to send, with the child's link fixed on this node. */
  createBody?: Record<string, unknown>;
  /** A POST without a body cannot carry the link chosen here to the local factory: always send it. */
  sendEvenIfLocal?: boolean;
}

/**
 * The request filter of the "forward to owner" phase (spec B.4). Factory POSTs and every request to
 * a factory child (utility suffixes included) are sent to the child's owner unless this node owns
 * it; the owner's status and body are relayed verbatim, so a remote error looks like a local one.
 * Factory GETs and queries are answered locally (every member holds every document).
 *
 * While an owner cannot be reached (connection refused: a node that died and is not yet marked
 * UNAVAILABLE), the request waits and retries until ownership moves or the operation timeout ends.
 */
export function ownerForwardingFilter(host: Host, group: NodeGroup, client: PeerClient): RequestFilter {
  return (op) => {
    // Already forwarded by a member (peerFilter verified it): this node handles it, unless the member
    // has given up on it (this node was frozen or slow): applying it now would let a write its client
    // was told failed overwrite later, acknowledged ones (DECISIONS.md).
    if (op.hasPragma(Pragma.FORWARDED)) {
      const deadline = Number(op.headers[PeerHeaders.DEADLINE] ?? 0);
      if (deadline > 0 && host.clock.nowMicros() > deadline) {
        return {
          status: 408,
          body: toServiceErrorResponse(kryptonError('TIMEOUT', `${op.action} ${op.path} arrived after its deadline: the forwarding member has already answered its client; not applied`)),
        };
      }
      return undefined;
    }
    // A group of one (or only observers besides this node): every link is owned here.
    if (group.ownerCandidateCount() <= 1 && group.isLocalOwner('/')) return undefined;
    const route = routeOf(host, group, op);
    if (!route) return undefined;
    if (op.action === 'GET' && op.hasPragma(Pragma.NO_FORWARD)) return undefined;
    // A frozen member takes no document write, not even one that another member owns.
    if (op.action !== 'GET' && op.action !== 'OPTIONS' && (route.key === op.path || route.createBody !== undefined)) host.writeFreeze.refuseWhileFrozen();
    return forward(group, client, op, route);
  };
}

function routeOf(host: Host, group: NodeGroup, op: Operation): Route | undefined {
  const path = op.path;
  const direct = host.service(path);
  if (direct) {
    if (!(direct instanceof FactoryService) || op.action !== 'POST') return undefined;
    const body = op.bodyObject();
    const given = body?.['documentSelfLink'] ?? (body ? direct.defaultSelfLink(body) : undefined);
    let link = direct.writer.childLinkFor(given, op.hasPragma(Pragma.FROM_MIGRATION));
    // A link the client left to the host: like Xenon, an id generated here (hash of this host's id +
    // time); among the next few, one this node owns, so the create needs no hop to another member.
    if ((given === undefined || given === null || given === '') && body) {
      for (let i = 0; i < 4 * group.ownerCandidateCount() && !group.isLocalOwner(link); i++) link = direct.writer.childLinkFor(undefined, false);
    }
    const id = link.slice(direct.link.length + 1);
    // The owner was chosen for this link, so the factory must create exactly this link: a generated
    // id is written into the request's (cached) body for the local path too.
    if (body) body['documentSelfLink'] = id;
    return { key: link, createBody: { ...(body ?? {}), documentSelfLink: id }, sendEvenIfLocal: body === undefined };
  }
  const slash = path.lastIndexOf('/');
  const parent = path.slice(0, slash);
  const last = path.slice(slash + 1);
  if (last === '') return undefined;
  if (UTILITY_SUFFIXES.has(last)) {
    if (host.service(parent)) return undefined;
    const factory = host.service(parent.slice(0, parent.lastIndexOf('/')));
    return factory instanceof FactoryService ? { key: parent } : undefined;
  }
  return host.service(parent) instanceof FactoryService ? { key: path } : undefined;
}

async function forward(group: NodeGroup, client: PeerClient, op: Operation, route: Route): Promise<Reply | undefined> {
  const settings = group.settings;
  const deadline = Date.now() + settings.operationTimeoutMicros / 1000;
  const parsed = route.createBody ?? (op.hasBody() ? op.body() : undefined);
  const body = parsed === undefined ? undefined : JSON.stringify(parsed);
  const headers = forwardHeaders(op);
  for (;;) {
    const owner = group.owner(route.key);
    if (owner.isLocal && !(route.sendEvenIfLocal && group.ownerCandidateCount() > 1)) return undefined;
    const url = `${nodeBaseUri(owner)}${op.path.split('/').map(encodeURIComponent).join('/')}${op.rawQuery ? `?${op.rawQuery}` : ''}`;
    // A read is retried (so it moves to the next owner once this one is marked UNAVAILABLE) after a
    // peer request timeout; a write waits for its one owner until the operation deadline, because a
    // write that timed out may still have been applied there.
    const remaining = deadline - Date.now();
    const attempt = Math.max(1, op.action === 'GET' ? Math.min(remaining, settings.peerRequestTimeoutMicros / 1000) : remaining);
    headers[PeerHeaders.DEADLINE] = String(Math.round((Date.now() + attempt) * 1000));
    try {
      const res = await client.send(url, { method: op.action as 'GET', body, headers, timeoutMs: attempt });
      // A redone replication (409), or an owner that does not list this node yet (503, it has just
      // restarted): both say SHOULD_RETRY.
      if ((res.status === 409 || res.status === 503) && res.text.includes('SHOULD_RETRY') && Date.now() < deadline) {
        await sleep(settings.gossipIntervalMicros / 2000);
        continue;
      }
      const relayed: Reply = { status: res.status };
      if (res.text.length > 0) relayed.body = new RawJson(res.text);
      if (typeof res.headers['retry-after'] === 'string') relayed.headers = { 'retry-after': res.headers['retry-after'] };
      return relayed;
    } catch (err) {
      // Nothing reached the owner (or a read timed out): wait for the group to notice it is gone,
      // then ask the new owner.
      const readTimedOut = op.action === 'GET' && err instanceof KryptonError && err.statusCode === 408;
      if ((wasNotSent(err) || readTimedOut) && Date.now() + settings.gossipIntervalMicros / 1000 < deadline) {
        await sleep(settings.gossipIntervalMicros / 2000);
        continue;
      }
      if (err instanceof KryptonError) {
        throw new KryptonError({ code: err.code, status: err.statusCode, xenonCode: err.xenonCode }, `forwarding ${op.action} ${op.path} to its owner ${owner.id} failed: ${err.message}`, {
          cause: err,
          statusCode: err.statusCode,
        });
      }
      throw err;
    }
  }
}

function forwardHeaders(op: Operation): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(op.headers)) if (typeof v === 'string' && !HOP_HEADERS.has(k)) out[k] = v;
  out['pragma'] = [...op.pragmas, Pragma.FORWARDED].join(';');
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(1, ms)));
}
