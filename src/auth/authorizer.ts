import { fail, kryptonError, type KryptonError } from '../core/errors.js';
import { userFields, type Doc } from '../core/document.js';
import type { Action, Operation } from '../core/operation.js';
import { MIGRATION_IMPORT_LINK } from '../migration/migration-import-service.js';
import { QUERY_TASK_KIND } from '../query/query-task-service.js';
import { FactoryService } from '../services/factory-service.js';
import { BASIC_AUTH_LINK, VERIFICATION_LINK } from './auth-links.js';
import type { AuthRuntime, Identity } from './auth-runtime.js';
import { AuthFactoryService } from './auth-services.js';
import type { AuthContext } from './policy.js';
import { resolveTarget, type Target } from './request-target.js';

const QUERY_TASK_SERVICES = new Set(['/core/query-tasks', '/core/local-query-tasks']);
/** Services that authorize their own (in-memory) documents: query pages check the page's owner. */
const SELF_CHECKING = new Set(['/core/query-page-forwarding', '/core/query-page']);
/** Reachable without any right: login/logout, and "what may I do" (answers only about the caller). */
const OPEN_SERVICES = new Set([BASIC_AUTH_LINK, VERIFICATION_LINK]);

/** The 403 of a refused request; says which token problem made the caller a guest, if any. */
export function forbidden(identity: Identity, action: string, link: string): KryptonError {
  const who = identity.tokenProblem ? `guest (${identity.tokenProblem})` : identity.principal;
  const hint = identity.principal.endsWith('/guest-user') ? `: log in at ${BASIC_AUTH_LINK} and send x-xenon-auth-token` : '';
  return kryptonError('FORBIDDEN', `forbidden: ${who} may not ${action} ${link}${hint}`);
}

/** The stub a factory-level request is checked against (its utilities, OPTIONS, "may I read/write it"). */
export function factoryStub(factory: FactoryService, principal: string): Doc {
  return { documentSelfLink: factory.link, documentKind: factory.def.documentKind, documentAuthPrincipalLink: principal };
}

/**
 * Per-request authorization (xenon-cluster-auth.md C.7) for everything a handler does not check
 * itself: stored documents against the compiled SQL of the caller's roles, new states and stubs
 * in memory. Xenon's rules where they are safe (404 before 403, factory listings filtered rather
 * than refused, `/available` open); DENY wins everywhere.
 */
export class Authorizer {
  constructor(private readonly rt: AuthRuntime) {}

  /** Throws 403 unless the request may proceed to its handler. */
  authorize(op: Operation, ctx: AuthContext, identity: Identity, target: Target): void {
    if (ctx.isSystem) return;
    const deny = (action: string, link: string) => {
      throw forbidden(identity, action, link);
    };
    switch (target.kind) {
      case 'none':
      case 'memory-child':
        return;
      case 'factory': {
        const { factory, suffix } = target;
        if (suffix === 'available' && op.action === 'GET') return;
        if (!suffix && op.action === 'GET') return; // listings are filtered by the read scope
        if (suffix === 'subscriptions') return; // so are a factory's notifications: each document by the subscriber's read rights
        if (!suffix && op.action === 'POST') return this.checkCreate(op, ctx, factory, deny);
        if (!ctx.allows(op.action, factoryStub(factory, ctx.principal), factory.def.fixedItemNameFields)) deny(op.action, suffix ? `${factory.link}/${suffix}` : factory.link);
        return;
      }
      case 'child': {
        if (target.suffix === 'available' && op.action === 'GET') return;
        const v = this.rt.host.store.getLatest(target.link);
        if (!v || v.action === 'DELETE' || (v.expiration > 0 && v.expiration <= this.rt.host.clock.nowMicros())) return; // the route answers 404
        // Subscribing to a document (and ending it) needs the right to read it, as its notifications carry it.
        const action = target.suffix === 'subscriptions' ? 'GET' : op.action;
        if (!this.rt.engine.allowsStored(ctx, action, target.link)) deny(op.action, target.link);
        return;
      }
      case 'service': {
        const link = target.service.link;
        if (target.suffix === 'available' && op.action === 'GET') return;
        if (!target.suffix && (OPEN_SERVICES.has(link) || SELF_CHECKING.has(link))) return;
        if (!target.suffix && QUERY_TASK_SERVICES.has(link)) return this.checkQueryTask(op, ctx, link, deny);
        if (!target.suffix && link === '/core/document-index' && op.action === 'GET') return this.checkIndexRead(op, ctx, deny);
        if (!target.suffix && link === MIGRATION_IMPORT_LINK && op.action === 'POST') return this.checkImportRequest(op, ctx, deny);
        const stub = { documentSelfLink: link };
        if (!ctx.allows(target.suffix === 'subscriptions' ? 'GET' : op.action, stub)) deny(op.action, target.suffix ? `${link}/${target.suffix}` : link);
        return;
      }
    }
  }

  /** "Could the caller `action` at `path`?" — stub-level, for the verification service and migration checks. */
  allowsPath(ctx: AuthContext, action: Action, path: string): { allowed: boolean; exists: boolean } {
    const target = resolveTarget(this.rt.host, path);
    switch (target.kind) {
      case 'none':
        return { allowed: false, exists: false };
      case 'factory':
        return { allowed: ctx.allows(action, factoryStub(target.factory, ctx.principal), target.factory.def.fixedItemNameFields), exists: true };
      case 'child': {
        const v = this.rt.host.store.getLatest(target.link);
        if (v && v.action !== 'DELETE') return { allowed: this.rt.engine.allowsStored(ctx, action, target.link), exists: true };
        const stub = { documentSelfLink: target.link, documentKind: target.factory.def.documentKind, documentAuthPrincipalLink: ctx.principal };
        return { allowed: ctx.allows(action, stub), exists: false };
      }
      case 'service':
        return { allowed: ctx.allows(action, { documentSelfLink: target.service.link }), exists: true };
      case 'memory-child':
        return { allowed: ctx.isSystem, exists: true };
    }
  }

  /**
   * Factory POST: checked here against the document the body describes (so an unauthorized caller
   * cannot make the host hash a password or run a create handler), and again by the writer
   * against the state it commits (RequestAuthz.checkWrite). POST to an existing link of an
   * idempotent factory is a PUT (Xenon IDEMPOTENT_POST) and needs PUT on the current state too.
   */
  private checkCreate(op: Operation, ctx: AuthContext, factory: FactoryService, deny: (a: string, l: string) => never): void {
    let body: Doc;
    let link: string;
    try {
      body = op.bodyObject() ?? {};
      const given = body['documentSelfLink'] ?? (factory instanceof AuthFactoryService ? factory.defaultSelfLink(body) : undefined);
      link = factory.writer.childLinkFor(given, op.hasPragma('xn-from-migration'));
    } catch {
      return; // the factory answers the 400
    }
    if (!this.allowsWrite(ctx, factory, link, body)) deny('POST', link);
  }

  /** May `ctx` create or replace the document `doc` at `link` of `factory`? */
  allowsWrite(ctx: AuthContext, factory: FactoryService, link: string, doc: Doc, importing = false): boolean {
    const stub = { ...userFields(doc), documentSelfLink: link, documentKind: factory.def.documentKind, documentAuthPrincipalLink: ctx.principal };
    const fixed = factory.def.fixedItemNameFields;
    const v = this.rt.host.store.getLatest(link);
    const live = v && v.action !== 'DELETE' && (v.expiration === 0 || v.expiration > this.rt.host.clock.nowMicros());
    // Only an idempotent factory (or an import) turns a write to an existing link into a PUT; others answer 409.
    if (live && (importing || factory.def.idempotentPost)) {
      if (importing && doc['documentUpdateAction'] === 'DELETE') return this.rt.engine.allowsStored(ctx, 'DELETE', link);
      return this.rt.engine.allowsStored(ctx, 'PUT', link) && ctx.allows('PUT', stub, fixed);
    }
    return ctx.allows('POST', stub, fixed);
  }

  /**
   * Query tasks: any authenticated principal may run queries — results only ever contain what its
   * GET roles allow, so a query is no more than a filtered read (Xenon also required a role on the
   * QueryTask document; krypton keeps that requirement for the guest only). Reading a task back is
   * checked by the service (its creator, or GET on the task document).
   */
  private checkQueryTask(op: Operation, ctx: AuthContext, link: string, deny: (a: string, l: string) => never): void {
    if (op.action === 'GET') return;
    if (op.action === 'POST' && !ctx.isGuest) return;
    if (!ctx.allows(op.action, { documentSelfLink: `${link}/new`, documentKind: QUERY_TASK_KIND, documentAuthPrincipalLink: ctx.principal })) deny(op.action, link);
  }

  /** `/core/document-index?documentSelfLink=` returns stored JSON: the document's own GET check applies. */
  private checkIndexRead(op: Operation, ctx: AuthContext, deny: (a: string, l: string) => never): void {
    const link = op.query.get('documentSelfLink');
    if (!link) return;
    const v = op.query.get('documentVersion');
    const version = v === undefined ? undefined : Number(v);
    const row = version === undefined ? this.rt.host.store.getLatest(link) : this.rt.host.store.getVersion(link, version);
    if (row && !this.rt.engine.allowsStored(ctx, 'GET', link, version)) deny('GET', link);
  }

  /** `/management/migration-import`: each imported document is a write the caller must be allowed. */
  private checkImportRequest(op: Operation, ctx: AuthContext, deny: (a: string, l: string) => never): void {
    let body: Doc;
    try {
      body = op.bodyObject() ?? {};
    } catch {
      return;
    }
    const factory = this.rt.host.service(String(body['destinationFactoryLink']));
    if (!(factory instanceof FactoryService) || !Array.isArray(body['documents'])) return;
    const refused = this.refusedImport(ctx, factory, body['documents'] as unknown[], body['history'] === true);
    if (refused) deny('write (migration import)', refused);
  }

  /** The first imported document `ctx` may not write, if any (also used for in-process imports). */
  refusedImport(ctx: AuthContext, factory: FactoryService, docs: readonly unknown[], history: boolean): string | undefined {
    if (ctx.isSystem) return undefined;
    for (const raw of docs) {
      // ALL_VERSIONS: every version replayed is a state the caller writes, not only the last one.
      const versions = history ? (raw as Doc | null)?.['versions'] : [raw];
      if (!Array.isArray(versions)) fail('VALIDATION', 'a history import needs documents of the form {"versions": [ … ]}');
      for (const doc of versions as unknown[]) {
        if (!doc || typeof doc !== 'object') continue;
        let link: string;
        try {
          link = factory.writer.childLinkFor((doc as Doc)['documentSelfLink'], true);
        } catch {
          continue;
        }
        if (!this.allowsWrite(ctx, factory, link, doc as Doc, true)) return link;
      }
    }
    return undefined;
  }
}
