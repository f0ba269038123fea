import { createHmac, timingSafeEqual } from 'node:crypto';
import { fail } from '../core/errors.js';
import type { RequestFilter } from '../core/host.js';
import { Pragma, type Operation } from '../core/operation.js';
import { GROUP_PROTOCOL_VERSION, PeerHeaders } from './node-group-messages.js';
import type { NodeGroup } from './node-group.js';

/** Signatures older or newer than this are refused (bounded replay window, tolerant clock skew). */
const MAX_SKEW_MICROS = 300_000_000;

/** Xenon ≥ the spec's advice (B.8, E): peer pragmas and peer endpoints are trusted only from members. */
export const NOT_A_PEER = 'accepted only from members of the node group';

/**
 * Peer authentication: every peer request carries the sender id, the group protocol version and
 * an HMAC-SHA256 over (sender, time, method, path) keyed with the group's shared key. Knowing the
 * key proves membership of the group; replication, synchronization and forwarded requests also
 * require the sender to be a member in the receiver's view.
 */
export class PeerAuth {
  private readonly verified = new WeakMap<Operation, string>();

  constructor(
    private readonly key: Buffer | undefined,
    private readonly selfId: string,
    /** Tests of the refusal path start a host with another version through this variable. */
    readonly protocolVersion = Number(process.env['KRYPTON_GROUP_PROTOCOL_VERSION'] ?? GROUP_PROTOCOL_VERSION),
  ) {}

  get enabled(): boolean {
    return this.key !== undefined;
  }

  /** Headers for a request this node sends to a peer. */
  sign(method: string, path: string, nowMicros = Date.now() * 1000): Record<string, string> {
    const headers: Record<string, string> = { [PeerHeaders.ID]: this.selfId, [PeerHeaders.PROTOCOL]: String(this.protocolVersion) };
    if (this.key) headers[PeerHeaders.AUTH] = `${nowMicros}.${this.mac(this.selfId, nowMicros, method, pathOnly(path))}`;
    return headers;
  }

  /**
   * Verifies a request's peer headers. Returns the sender id, or undefined when the request claims
   * no peer identity; throws 403/400 with the reason when the claim is false or incompatible.
   */
  verify(op: Operation): string | undefined {
    const cached = this.verified.get(op);
    if (cached) return cached;
    const id = header(op, PeerHeaders.ID);
    if (id === undefined) return undefined;
    const protocol = header(op, PeerHeaders.PROTOCOL);
    if (protocol !== String(this.protocolVersion)) {
      fail(
        'BAD_REQUEST',
        `node ${id} speaks krypton node-group protocol ${protocol ?? '(none)'}, this node speaks ${this.protocolVersion}: every member of a group must run a release with the same protocol`,
      );
    }
    if (!this.key) fail('FORBIDDEN', `this node has no group secret (--groupSecret) and refuses peer requests from ${id}`);
    const auth = header(op, PeerHeaders.AUTH) ?? '';
    const dot = auth.indexOf('.');
    const ts = Number(auth.slice(0, dot));
    const given = Buffer.from(auth.slice(dot + 1), 'hex');
    const expected = Buffer.from(this.mac(id, ts, op.action, op.path), 'hex');
    if (dot < 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      fail('FORBIDDEN', `peer authentication of ${id} failed: its group secret differs from this node's (--groupSecret must be the same on every member)`);
    }
    if (Math.abs(Date.now() * 1000 - ts) > MAX_SKEW_MICROS) fail('FORBIDDEN', `peer request from ${id} is too old or from the future (clock skew above 5 minutes)`);
    this.verified.set(op, id);
    // Proving membership does not make every request the system's: peerFilter grants it on peer
    // endpoints only, and a forwarded client request is judged by the client's own credentials.
    return id;
  }

  /** The verified sender, or 403: for endpoints and pragmas only peers may use. */
  requirePeer(op: Operation, what: string): string {
    const id = this.verify(op);
    if (!id) fail('FORBIDDEN', `${what} ${NOT_A_PEER} (peer authentication missing)`);
    return id;
  }

  private mac(id: string, ts: number, method: string, path: string): string {
    return createHmac('sha256', this.key!).update(`${id}\n${ts}\n${method}\n${path}`).digest('hex');
  }
}

function header(op: Operation, name: string): string | undefined {
  const v = op.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The path as the receiving host's Operation will see it: decoded, no query, no trailing slash. */
function pathOnly(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf('?');
  let p = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  try {
    p = decodeURIComponent(p);
  } catch {
    /* signed as is */
  }
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * The sender must prove the group key AND be a member in this node's view (replaced ids are not).
 * A sender that proves the key but is not in the view yet is told to try again (503 with
 * SHOULD_RETRY), not refused: a member that has just restarted lists only itself until its join is
 * answered, while the others already send it their writes (a 403 reached the clients of those
 * writes). The sender's forwarding retries until its operation deadline.
 */
export function requireMember(op: Operation, auth: PeerAuth, group: NodeGroup, what: string): string {
  const id = auth.requirePeer(op, what);
  const n = group.node(id);
  if (n?.status === 'REPLACED') fail('FORBIDDEN', `${what} ${NOT_A_PEER}: ${id} was replaced`);
  if (!n) fail('UNAVAILABLE', `${what} ${NOT_A_PEER}: ${id} is not a member in this node's view of the group (yet); try again`, { details: ['SHOULD_RETRY'] });
  return id;
}

/**
 * The first request filter: a request claiming a peer identity must prove it, and replication,
 * synchronization and forwarding pragmas are refused from anyone but members (Xenon accepted
 * `xn-rpl` from any client). Verified peers act as the system identity on peer endpoints only; a
 * forwarded client request keeps the client's own credentials.
 */
export function peerFilter(auth: PeerAuth, group: NodeGroup, isPeerEndpoint: (op: Operation) => boolean, authorizationEnabled = false): RequestFilter {
  return (op) => {
    // The common client request: no pragma and no peer identity to check.
    if (op.pragmas.size === 0 && op.headers[PeerHeaders.ID] === undefined) return undefined;
    const peer = auth.verify(op);
    // With auth on and no peer signature, the auth filter decides: it accepts replication and
    // synchronization pragmas only from the system identity (a token under the shared key).
    const leftToAuth = authorizationEnabled && !peer && !op.hasPragma(Pragma.FORWARDED);
    if (!leftToAuth && (op.hasPragma(Pragma.REPLICATED) || op.hasPragma(Pragma.FORWARDED) || [...op.pragmas].some((p) => p.startsWith('xn-synch')))) {
      requireMember(op, auth, group, `requests with pragma ${[...op.pragmas].join(';')}`);
    }
    if (peer && isPeerEndpoint(op)) op.isSystem = true;
    return undefined;
  };
}
