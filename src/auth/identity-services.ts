import type { Doc } from '../core/document.js';
import { fail } from '../core/errors.js';
import { ACTIONS, type Action } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { SimpleService } from '../services/core-services.js';
import { GUEST_USER_LINK, SYSTEM_USER_LINK, VERIFICATION_LINK } from './auth-links.js';
import { identityOf } from './auth-filter.js';
import type { AuthRuntime } from './auth-runtime.js';
import type { Authorizer } from './authorizer.js';

/** `/core/authz/guest-user` and `/core/authz/system-user`: Xenon's stateless identity stubs. */
export function identityStubs(): Service[] {
  return [GUEST_USER_LINK, SYSTEM_USER_LINK].map((link) => new SimpleService(link, { GET: () => ({ status: 200, body: { documentSelfLink: link } }) }));
}

/**
 * `GET /core/authz/verification[?path=<link>&action=<verb>]` (krypton; Xenon's service at this link
 * is internal): who the caller is here, and whether it could `action` at `path` — the factory
 * itself for a factory, the stored document for a child. It answers only about the caller, so it
 * is open to everyone; the migration task's POST check asks it on both groups.
 */
export function verificationService(rt: AuthRuntime, authorizer: Authorizer): Service {
  return new SimpleService(VERIFICATION_LINK, {
    GET: (op) => {
      const identity = identityOf(op);
      const principal = op.principal ?? GUEST_USER_LINK;
      const ctx = rt.engine.contextFor(principal);
      const body: Doc = { principal, isSystem: ctx.isSystem, isGuest: ctx.isGuest };
      if (identity?.tokenProblem) body['tokenProblem'] = identity.tokenProblem;
      const path = op.query.get('path');
      if (path !== undefined) {
        const action = (op.query.get('action') ?? 'GET').toUpperCase();
        if (!ACTIONS.includes(action as Action)) fail('VALIDATION', `action must be one of ${ACTIONS.join(', ')}: ${action}`);
        if (!path.startsWith('/')) fail('VALIDATION', `path must be a link starting with '/': ${path}`);
        const answer = authorizer.allowsPath(ctx, action as Action, path);
        Object.assign(body, { path, action, allowed: answer.allowed, exists: answer.exists });
      }
      return { status: 200, body: { ...body, documentSelfLink: VERIFICATION_LINK, documentKind: 'krypton:auth:Verification' } };
    },
  });
}
