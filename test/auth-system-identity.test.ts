import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHost, defineStatelessService, type Host } from '../src/index.js';
import { requireSystem, systemIdentity } from '../src/auth/system-identity.js';
import { http, tempDir } from './support/hosts.js';
import { ADMIN, ADMIN_PASSWORD, as, login } from './support/auth.js';

/** The hook the node-group code uses for peer traffic (src/auth/system-identity.ts). */
describe('system identity for node-to-node traffic (in-process host)', () => {
  let host: Host;
  let base = '';
  before(async () => {
    const peerOnly = defineStatelessService({ link: '/core/peer-gossip', handlers: { PATCH: () => ({ ok: true }) } });
    host = await startHost({ port: 0, sandbox: tempDir(), isAuthorizationEnabled: true, adminPassword: ADMIN_PASSWORD, logLevel: 'warn', services: [peerOnly] });
    requireSystem(host, (op) => op.path === '/core/peer-gossip');
    base = host.uri;
  });
  after(async () => {
    await host.stop();
  });

  it('lets peers in with the system token and refuses everyone else, the admin included', async () => {
    const identity = systemIdentity(host)!;
    assert.ok(identity, 'defined when auth is on');
    assert.equal((await http('PATCH', `${base}/core/peer-gossip`, {}, identity.headers())).status, 200);
    const admin = await login(base, ADMIN, ADMIN_PASSWORD);
    const r = await http('PATCH', `${base}/core/peer-gossip`, {}, as(admin));
    assert.equal(r.status, 403);
    assert.match(r.json.message, /accepted only from the system identity/);
    assert.equal((await http('PATCH', `${base}/core/peer-gossip`, {})).status, 403);
    assert.equal(await identity.verify(identity.token()), true);
    assert.equal(await identity.verify(admin), false);
  });

  it('is undefined when auth is off (peers then use the group secret)', async () => {
    const plain = await startHost({ port: 0, sandbox: tempDir(), logLevel: 'warn' });
    try {
      assert.equal(systemIdentity(plain), undefined);
    } finally {
      await plain.stop();
    }
  });
});
