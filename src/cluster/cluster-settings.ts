import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { HostOptions } from '../core/host.js';

/**
 * Node-group timings and credentials. Every timing comes from exactly one setting (a host flag of
 * the same name), so tests shorten them instead of sleeping.
 */
export interface ClusterSettings {
  /** Gossip period; each round is jittered by ±25 %. Xenon: the maintenance interval, 1 s. */
  gossipIntervalMicros: number;
  /** A peer that has not answered gossip for this long is marked UNAVAILABLE (several rounds). */
  nodeUnavailableTimeoutMicros: number;
  /** How long an UNAVAILABLE entry stays before it is removed (Xenon: 5 min). */
  nodeRemovalDelayMicros: number;
  /** Timeout of one peer request: gossip, replication, synchronization (Xenon: 20 s). */
  peerRequestTimeoutMicros: number;
  /** Deadline of a client request that is forwarded to the owner, retries included (Xenon: 60 s). */
  operationTimeoutMicros: number;
  /** `--membershipQuorum`, else Xenon's default from the number of peers (A.3). */
  membershipQuorum: number;
  /** HMAC key peers authenticate with; undefined: this host refuses peer traffic (a group of one). */
  peerKey: Buffer | undefined;
  /** Normalized `--peerNodes` (base URIs), self excluded. */
  peerNodes: string[];
}

export const CLUSTER_DEFAULTS = Object.freeze({
  gossipIntervalMicros: 1_000_000,
  nodeUnavailableTimeoutMicros: 5_000_000,
  nodeRemovalDelayMicros: 300_000_000,
  peerRequestTimeoutMicros: 20_000_000,
  operationTimeoutMicros: 60_000_000,
});

/** Xenon's `--peerNodes` normalization: bare names get `http://` and port 8000; self is skipped. */
export function normalizePeerNodes(peers: readonly string[], selfUri: string, selfPort: number): string[] {
  const self = new URL(selfUri);
  const local = new Set(['127.0.0.1', 'localhost', '0.0.0.0', '[::1]', self.hostname]);
  const out = new Set<string>();
  for (const raw of peers) {
    const withScheme = /^https?:\/\//.test(raw) ? raw : `http://${raw.includes(':') ? raw : `${raw}:8000`}`;
    const u = new URL(withScheme);
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    if (local.has(u.hostname) && port === selfPort) continue;
    out.add(`${u.protocol}//${u.host}`);
  }
  return [...out];
}

/** Xenon's default quorum: floor((P+1)/2)+1 for P peers, 1 when alone (A.3). */
export function defaultQuorum(peerCount: number): number {
  return peerCount === 0 ? 1 : Math.floor((peerCount + 1) / 2) + 1;
}

/**
 * The key peers sign requests with: `--groupSecret`, else the contents of `--groupSecretFile`,
 * else, with auth on, the shared `--keyFile` (DECISIONS: peers authenticate under the group's
 * shared key). Hashed, so the secret itself never travels.
 */
export function peerKey(o: Partial<HostOptions>): Buffer | undefined {
  let secret: string | Buffer | undefined = o.groupSecret;
  if (!secret && o.groupSecretFile) secret = readFileSync(o.groupSecretFile, 'utf8').trim();
  if (!secret && o.isAuthorizationEnabled && o.keyFile) secret = readFileSync(o.keyFile);
  if (!secret || secret.length === 0) return undefined;
  return createHash('sha256').update('krypton node group key\n').update(secret).digest();
}

export function clusterSettings(o: HostOptions, selfUri: string, selfPort: number): ClusterSettings {
  const peerNodes = normalizePeerNodes(o.peerNodes, selfUri, selfPort);
  return {
    gossipIntervalMicros: o.gossipIntervalMicros ?? CLUSTER_DEFAULTS.gossipIntervalMicros,
    nodeUnavailableTimeoutMicros: o.nodeUnavailableTimeoutMicros ?? CLUSTER_DEFAULTS.nodeUnavailableTimeoutMicros,
    nodeRemovalDelayMicros: o.nodeRemovalDelayMicros ?? CLUSTER_DEFAULTS.nodeRemovalDelayMicros,
    peerRequestTimeoutMicros: o.peerRequestTimeoutMicros ?? CLUSTER_DEFAULTS.peerRequestTimeoutMicros,
    operationTimeoutMicros: o.operationTimeoutMicros ?? CLUSTER_DEFAULTS.operationTimeoutMicros,
    membershipQuorum: Math.max(1, o.membershipQuorum ?? defaultQuorum(peerNodes.length)),
    peerKey: peerKey(o),
    peerNodes,
  };
}

/** Why a host cannot take part in a group, or undefined when it can (used by the CLI before start). */
export function missingPeerKeyReason(o: Partial<HostOptions>): string | undefined {
  if (peerKey(o)) return undefined;
  return 'node groups need a shared secret: start every member with the same --groupSecret=<secret> (or --groupSecretFile=<file>); members authenticate each other with it';
}
