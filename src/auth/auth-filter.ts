import type { Doc } from '../core/document.js';
import { kryptonError } from '../core/errors.js';
import type { RequestFilter } from '../core/host.js';
import type { Action, Operation, ReadScope, RequestAuthz } from '../core/operation.js';
import { QUERY_TASK_KIND } from '../query/query-task-service.js';
import { MIGRATION_TASKS_LINK } from '../migration/migration-state.js';
import { REVOKED_TOKENS_LINK, SYSTEM_USER_LINK } from './auth-links.js';
import type { AuthRuntime, Identity } from './auth-runtime.js';
import { forbidden, type Authorizer } from './authorizer.js';
import type { MigrationAuth } from './migration-auth.js';
import type { AuthContext, PolicyEngine } from './policy.js';
import { resolveTarget } from './request-target.js';
import { isPeerOnly } from './system-identity.js';

const identities = new WeakMap<Operation, Identity>();

/** The identity the auth phase established for a request (token problems included). */
export function identityOf(op: Operation): Identity | undefined {
  return identities.get(op);
}

/**
 * What handlers consult (Operation.authz): the caller's read scope for queries, and checks of
 * documents only the handler sees — the state a write is about to commit, in-memory query tasks.
 */
class OperationAuthz implements RequestAuthz {
  readonly readScope: ReadScope | undefined;

  constructor(
    private readonly ctx: AuthContext,
    private readonly identity: Identity,
    private readonly fixedItemNameFields: readonly string[],
    private readonly engine: PolicyEngine,
  ) {
    const s = ctx.scope('GET');
    this.readScope = s ? { sql: s.sql, params: s.params, principal: ctx.principal } : undefined;
  }

  allows(action: Action, doc: Doc): boolean {
    if (this.ctx.isSystem) return true;
    // A principal may always read back (and delete) the query tasks and pages it created.
    if (doc['documentKind'] === QUERY_TASK_KIND && doc['documentAuthPrincipalLink'] === this.ctx.principal && !this.ctx.isGuest && (action === 'GET' || action === 'DELETE')) return true;
    return this.ctx.allows(action, doc);
  }

  check(action: Action, doc: Doc): void {
    if (!this.allows(action, doc)) throw forbidden(this.identity, action, String(doc['documentSelfLink']));
  }

  reader(): (doc: Doc) => boolean {
    if (this.ctx.isSystem) return () => true;
    const { engine, fixedItemNameFields } = this;
    const principal = this.ctx.principal;
    return (doc) => engine.contextFor(principal).allows('GET', doc, fixedItemNameFields);
  }

  checkWrite(action: Action, next: Doc, current: Doc | undefined): void {
    if (this.ctx.isSystem) return;
    const link = String(next['documentSelfLink']);
    if (current && !this.ctx.allows(action, current, this.fixedItemNameFields)) throw forbidden(this.identity, action, link);
    if (!this.ctx.allows(action, next, this.fixedItemNameFields)) throw forbidden(this.identity, `${action} (the resulting state of)`, link);
  }
}

/**
 * The authenticate + authorize phase, registered as the host's first request filter:
 * token → principal (guest when absent or refused), peer pragmas only from the system identity,
 * then the target's authorization; migration task POSTs also need rights on both groups.
 */
export function authFilter(rt: AuthRuntime, authorizer: Authorizer, migration: MigrationAuth): RequestFilter {
  return async (op) => {
    // A member of the node group, already authenticated by the group's peer signature (src/cluster),
    // acts as the system identity (DECISIONS: peer traffic runs as the system identity).
    const identity: Identity = op.isSystem ? { principal: SYSTEM_USER_LINK, isSystem: true } : await rt.identify(op);
    identities.set(op, identity);
    op.principal = identity.principal;
    op.isSystem = identity.isSystem;
    const ctx = rt.engine.contextFor(identity.principal);
    const target = resolveTarget(rt.host, op.path);
    const fixed = target.kind === 'factory' || target.kind === 'child' ? (target.factory.def.fixedItemNameFields ?? []) : [];
    op.authz = new OperationAuthz(ctx, identity, fixed, rt.engine);
    if (identity.isSystem) return undefined;
    if (isPeerOnly(rt.host, op)) {
      throw kryptonError('FORBIDDEN', `forbidden: peer requests (pragma ${[...op.pragmas].join(';')}) are accepted only from the system identity of this node group`);
    }
    if ((target.kind === 'factory' || target.kind === 'child') && target.factory.link === REVOKED_TOKENS_LINK) throw forbidden(identity, op.action, op.path);
    authorizer.authorize(op, ctx, identity, target);
    if (target.kind === 'factory' && !target.suffix && target.factory.link === MIGRATION_TASKS_LINK && op.action === 'POST') await migration.checkTaskPost(op, ctx, identity);
    return undefined;
  };
}
