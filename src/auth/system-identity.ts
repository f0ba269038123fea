import type { Host } from '../core/host.js';
import { Pragma, type Operation } from '../core/operation.js';
import { AUTH_TOKEN_HEADER, SYSTEM_USER_LINK } from './auth-links.js';
import type { AuthRuntime } from './auth-runtime.js';

/**
 * The system identity for node-to-node traffic inside a group (replication, synchronization,
 * gossip, joins), for the node-group code to call. With auth on, every member is started with the
 * same `--keyFile`, so a system token minted by one member is accepted by all (and by nobody who
 * lacks the key). With auth off, `systemIdentity(host)` is undefined and peers use the group's
 * shared secret instead (DECISIONS, Node groups).
 *
 * @example
 * // sending: a replication PUT to a peer
 * const headers = { ...(systemIdentity(host)?.headers() ?? {}), pragma: 'xn-rpl' };
 * // receiving: the auth phase has already refused peer pragmas from anyone else (403), and sets
 * op.isSystem === true for requests carrying a valid system token.
 */
export interface SystemIdentity {
  /** Headers for a peer request: `x-xenon-auth-token: <system token>` (renewed before it expires). */
  headers(): Record<string, string>;
  /** The system token itself (valid 15 minutes; each call returns a token valid ≥ 10 more minutes). */
  token(): string;
  /** True when `token` is a valid, unexpired system token under this host's key. */
  verify(token: string): Promise<boolean>;
}

const runtimes = new WeakMap<Host, AuthRuntime>();
const systemOnly = new WeakMap<Host, Array<(op: Operation) => boolean>>();

/** Pragmas only peers send (Xenon trusts them blindly, xenon-cluster-auth.md B.8): system identity only. */
export const PEER_PRAGMAS: readonly string[] = [Pragma.REPLICATED, Pragma.SYNCH_OWNER, 'xn-synch-peer', 'xn-clear-auth-cache'];

/** The host's system identity, or undefined when auth is off. */
export function systemIdentity(host: Host): SystemIdentity | undefined {
  const rt = runtimes.get(host);
  if (!rt) return undefined;
  return {
    token: () => rt.tokenFor(SYSTEM_USER_LINK),
    headers: () => ({ [AUTH_TOKEN_HEADER]: rt.tokenFor(SYSTEM_USER_LINK) }),
    verify: async (token) => {
      const check = await rt.signer.verify(token);
      return check.ok && check.sub === SYSTEM_USER_LINK;
    },
  };
}

/**
 * Marks requests that only the system identity may send (e.g. the node-group code's internal
 * endpoints): with auth on they get 403 from anyone else. May be called before or after auth is
 * installed; has no effect with auth off.
 */
export function requireSystem(host: Host, predicate: (op: Operation) => boolean): void {
  const list = systemOnly.get(host) ?? [];
  list.push(predicate);
  systemOnly.set(host, list);
}

/** True when the request is peer traffic: a peer pragma, or a path marked with requireSystem. */
export function isPeerOnly(host: Host, op: Operation): boolean {
  for (const p of op.pragmas) if (PEER_PRAGMAS.includes(p) || p.startsWith('xn-synch')) return true;
  return (systemOnly.get(host) ?? []).some((f) => f(op));
}

/** Called once by installAuth. */
export function registerAuthRuntime(host: Host, rt: AuthRuntime): void {
  runtimes.set(host, rt);
}
