import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, http, startHost, waitFor, type RunningHost } from './hosts.js';
import { comparable } from './data.js';
import { FAST_GROUP } from './cluster.js';

export const ADMIN = 'admin@localhost';
export const ADMIN_PASSWORD = 'admin-Pa55word';
export const AUTH_ARGS = ['--isAuthorizationEnabled=true', `--adminPassword=${ADMIN_PASSWORD}`];

export function basic(email: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${email}:${password}`).toString('base64')}` };
}

/** The headers of a request made with `token`. */
export function as(token: string): Record<string, string> {
  return { 'x-xenon-auth-token': token };
}

/** Logs in with HTTP Basic and returns the token. */
export async function login(base: string, email: string, password: string, sessionExpirationSeconds?: number): Promise<string> {
  const body = sessionExpirationSeconds === undefined ? { requestType: 'LOGIN' } : { requestType: 'LOGIN', sessionExpirationSeconds };
  const r = await http('POST', `${base}/core/authn/basic`, body, basic(email, password));
  assert.equal(r.status, 200, `login ${email}: ${r.text}`);
  const token = r.headers.get('x-xenon-auth-token');
  assert.ok(token, 'x-xenon-auth-token header');
  return token;
}

/** Creates a user (and, with a password, its credentials) as the admin; returns the user's link. */
export async function createUser(base: string, adminToken: string, email: string, password?: string): Promise<string> {
  const u = await http('POST', `${base}/core/authz/users`, { email }, as(adminToken));
  assert.equal(u.status, 200, u.text);
  if (password !== undefined) {
    const c = await http('POST', `${base}/core/auth/credentials`, { userEmail: email, privateKey: password }, as(adminToken));
    assert.equal(c.status, 200, c.text);
  }
  return u.json.documentSelfLink;
}

/** A user group of `userLinks`, a resource group of `query` and one role, all named after `name`. */
export async function grant(base: string, adminToken: string, name: string, g: { userLinks: string[]; query: unknown; verbs: string[]; policy?: 'ALLOW' | 'DENY' }) {
  const members = g.userLinks.map((l) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: l } }));
  const group = await http('POST', `${base}/core/authz/user-groups`, { documentSelfLink: `${name}-users`, query: { booleanClauses: members } }, as(adminToken));
  assert.equal(group.status, 200, group.text);
  const rg = await http('POST', `${base}/core/authz/resource-groups`, { documentSelfLink: `${name}-resources`, query: g.query }, as(adminToken));
  assert.equal(rg.status, 200, rg.text);
  const role = await http(
    'POST',
    `${base}/core/authz/roles`,
    { documentSelfLink: `${name}-role`, userGroupLink: group.json.documentSelfLink, resourceGroupLink: rg.json.documentSelfLink, verbs: g.verbs, policy: g.policy ?? 'ALLOW' },
    as(adminToken),
  );
  assert.equal(role.status, 200, role.text);
  return { group: group.json.documentSelfLink as string, resourceGroup: rg.json.documentSelfLink as string, role: role.json.documentSelfLink as string };
}

/** Query clauses used by the roles of the tests. */
export const q = {
  prefix: (value: string) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: value, matchType: 'PREFIX' } }),
  link: (value: string) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: value } }),
  field: (name: string, value: string) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: name, matchValue: value } }),
  any: (...clauses: unknown[]) => ({ booleanClauses: clauses }),
};

/** All documents of a factory as `token` sees them. */
export async function snapshotAs(base: string, token: string, factory = '/core/examples'): Promise<Map<string, any>> {
  const r = await http('GET', `${base}${factory}?expand`, undefined, as(token));
  assert.equal(r.status, 200, r.text);
  return new Map(Object.entries(r.json.documents ?? {}));
}

/** Writes a fresh PKCS#8 PEM private key (encrypted when a passphrase is given); returns its path. */
export function writeKeyFile(dir: string, name: string, passphrase?: string): string {
  const { privateKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: passphrase ? { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase } : { type: 'pkcs8', format: 'pem' },
  });
  const path = join(dir, name);
  writeFileSync(path, privateKey, { mode: 0o600 });
  return path;
}

/** Creates n examples (or documents of `factory`) as `token`, `concurrency` at a time. */
export async function createAs(base: string, token: string, n: number, prefix: string, factory = '/core/examples', concurrency = 16): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const r = await http('POST', `${base}${factory}`, { name: `${prefix}-${i}`, counter: i, documentSelfLink: `${prefix}-${i}` }, as(token));
        assert.equal(r.status, 200, r.text);
      }
    }),
  );
}

/** The user's fields and update time of every document `token` sees in `factory`, by link. */
export async function comparableAs(base: string, token: string, factory = '/core/examples'): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (const [link, doc] of await snapshotAs(base, token, factory)) out.set(link, comparable(doc));
  return out;
}

/** Logs in through `base` once the user is known there (a group member may still be synchronizing); returns the token. */
export async function loginWhenKnown(base: string, email: string, password: string): Promise<string> {
  return waitFor(
    async () => {
      const r = await http('POST', `${base}/core/authn/basic`, { requestType: 'LOGIN' }, basic(email, password));
      return r.status === 200 ? (r.headers.get('x-xenon-auth-token') ?? undefined) : undefined;
    },
    `${email} to log in on ${base}`,
    30_000,
    100,
  );
}

/**
 * Starts three members of a node group with auth on (the same --keyFile, the default quorum) and
 * waits until the admin can log in and every member sees all three AVAILABLE. `args[i]` restarts member i.
 */
export async function startAuthGroup(prefix: string, keyFile: string): Promise<{ members: RunningHost[]; args: string[][]; admin: string }> {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const args = ports.map((port, i) => {
    const peers = ports.filter((p) => p !== port).map((p) => `http://127.0.0.1:${p}`);
    return [...AUTH_ARGS, `--keyFile=${keyFile}`, `--id=${prefix}-${i + 1}`, ...FAST_GROUP, `--peerNodes=${peers.join(',')}`];
  });
  const members = await Promise.all(ports.map((port, i) => startHost(args[i]!, { port })));
  // The admin is bootstrapped once the group has formed: it is not there at start.
  const admin = await loginWhenKnown(members[0]!.uri, ADMIN, ADMIN_PASSWORD);
  await waitFor(
    async () => {
      for (const m of members) {
        const g = await http('GET', `${m.uri}/core/node-groups/default`, undefined, as(admin));
        if (g.status !== 200 || Object.values(g.json.nodes).filter((n: any) => n.status === 'AVAILABLE').length !== 3) return false;
      }
      return true;
    },
    'three members AVAILABLE in every view',
    30_000,
    100,
  );
  return { members, args, admin };
}
