import type { Doc } from '../core/document.js';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import { CREDENTIALS_LINK, RESOURCE_GROUPS_LINK, ROLES_LINK, USER_GROUPS_LINK, USERS_LINK } from './auth-links.js';
import { userIdFor } from './auth-services.js';
import { verifyPassword } from './password-hash.js';

/** The links of the admin bootstrap for an email: stable, so every node and both groups agree. */
export function adminLinks(email: string) {
  const id = userIdFor(email);
  return {
    user: `${USERS_LINK}/${id}`,
    credentials: `${CREDENTIALS_LINK}/${id}`,
    userGroup: `${USER_GROUPS_LINK}/${id}-user-group`,
    resourceGroup: `${RESOURCE_GROUPS_LINK}/${id}-resource-group`,
    role: `${ROLES_LINK}/${id}-role`,
  };
}

/** Every piece of the admin bootstrap is in this host's index (nothing left to write). */
export function adminComplete(host: Host, email: string): boolean {
  return Object.values(adminLinks(email)).every((link) => {
    const v = host.store.getLatest(link);
    return v !== undefined && v.action !== 'DELETE';
  });
}

/** Creates one document as the system identity, through the host's request path; answers its status and body. */
export type SystemCreate = (factoryLink: string, body: Doc, recreate: boolean) => Promise<{ status: number; body?: unknown }>;

/**
 * Xenon's AuthorizationSetupHelper (xenon-cluster-auth.md C.1), run as the system identity at
 * start: the admin user, its credentials, a user group of just that user, a resource group of
 * everything and an ALLOW role for every verb. Unlike Xenon, every link is derived from the admin
 * email (Xenon generated random ones, so two groups bootstrapped the same way disagreed), each
 * piece is created only if missing (a crash mid-way heals at the next start), and an existing
 * admin keeps its password: a different `--adminPassword` is reported, not applied. Each piece is
 * POSTed through the host's request path (`create`), so in a node group it is written by its
 * owner alone: members bootstrapping at once do not write conflicting versions (a 409 means
 * another member made it first).
 */
export async function bootstrapAdmin(host: Host, email: string, password: string | undefined, create: SystemCreate): Promise<void> {
  const links = adminLinks(email);
  const existing = host.store.getLatest(links.user);
  if (!password) {
    if (!existing || existing.action === 'DELETE') fail('VALIDATION', `auth is on but there is no admin user ${email} yet: start the host with --adminPassword`);
    return;
  }
  // The credentials last: the admin can log in only once its role exists.
  const pieces: Array<[string, string, Doc]> = [
    [USERS_LINK, links.user, { email }],
    [USER_GROUPS_LINK, links.userGroup, { query: { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: links.user, matchType: 'TERM' } } }],
    [RESOURCE_GROUPS_LINK, links.resourceGroup, { query: { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: '*', matchType: 'WILDCARD' } } }],
    [ROLES_LINK, links.role, { userGroupLink: links.userGroup, resourceGroupLink: links.resourceGroup, verbs: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'], policy: 'ALLOW' }],
    [CREDENTIALS_LINK, links.credentials, { userEmail: email, userLink: links.user, privateKey: password, type: 'Password' }],
  ];
  for (const [factoryLink, link, body] of pieces) {
    const v = host.store.getLatest(link);
    if (v && v.action !== 'DELETE') {
      if (factoryLink === CREDENTIALS_LINK && !(await verifyPassword(password, (JSON.parse(v.json) as Doc)['privateKey']))) {
        host.log.warn({ user: links.user }, `the admin user exists with another password; --adminPassword was not applied (change it with PUT ${link})`);
      }
      continue;
    }
    const reply = await create(factoryLink, { ...body, documentSelfLink: link }, v !== undefined);
    if (reply.status === 409) continue;
    if (reply.status >= 300) {
      const message = (reply.body as { message?: string } | undefined)?.message ?? `status ${reply.status}`;
      fail(reply.status === 503 ? 'UNAVAILABLE' : 'INTERNAL', `creating ${link} failed: ${message}`);
    }
  }
}
