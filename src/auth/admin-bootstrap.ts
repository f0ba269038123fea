import type { Doc } from '../core/document.js';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import { FactoryService } from '../services/factory-service.js';
import { CREDENTIALS_LINK, RESOURCE_GROUPS_LINK, ROLES_LINK, SYSTEM_USER_LINK, USER_GROUPS_LINK, USERS_LINK } from './auth-links.js';
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

/**
 * Xenon's AuthorizationSetupHelper (xenon-cluster-auth.md C.1), run as the system identity at
 * start: the admin user, its credentials, a user group of just that user, a resource group of
 * everything and an ALLOW role for every verb. Unlike Xenon, every link is derived from the admin
 * email (Xenon generated random ones, so two groups bootstrapped the same way disagreed), each
 * piece is created only if missing (a crash mid-way heals at the next start), and an existing
 * admin keeps its password: a different `--adminPassword` is reported, not applied.
 */
export async function bootstrapAdmin(host: Host, email: string, password: string | undefined): Promise<void> {
  const links = adminLinks(email);
  const existing = host.store.getLatest(links.user);
  if (!password) {
    if (!existing || existing.action === 'DELETE') fail('VALIDATION', `auth is on but there is no admin user ${email} yet: start the host with --adminPassword`);
    return;
  }
  const pieces: Array<[string, string, Doc]> = [
    [USERS_LINK, links.user, { email }],
    [CREDENTIALS_LINK, links.credentials, { userEmail: email, userLink: links.user, privateKey: password, type: 'Password' }],
    [USER_GROUPS_LINK, links.userGroup, { query: { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: links.user, matchType: 'TERM' } } }],
    [RESOURCE_GROUPS_LINK, links.resourceGroup, { query: { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: '*', matchType: 'WILDCARD' } } }],
    [ROLES_LINK, links.role, { userGroupLink: links.userGroup, resourceGroupLink: links.resourceGroup, verbs: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'], policy: 'ALLOW' }],
  ];
  for (const [factoryLink, link, body] of pieces) {
    const v = host.store.getLatest(link);
    if (v && v.action !== 'DELETE') {
      if (factoryLink === CREDENTIALS_LINK && !(await verifyPassword(password, (JSON.parse(v.json) as Doc)['privateKey']))) {
        host.log.warn({ user: links.user }, `the admin user exists with another password; --adminPassword was not applied (change it with PUT ${link})`);
      }
      continue;
    }
    const factory = host.service(factoryLink);
    if (!(factory instanceof FactoryService)) fail('INTERNAL', `auth factory ${factoryLink} is not started`);
    await factory.writer.create({ body: { ...body, documentSelfLink: link }, fromMigration: false, forceIndexUpdate: true, principal: SYSTEM_USER_LINK, op: undefined });
  }
}
