import type { Doc } from '../core/document.js';
import { kryptonError } from '../core/errors.js';
import type { ClientResponse } from '../core/http-client.js';
import type { Action, Operation } from '../core/operation.js';
import { nodeBase, type MigrationTaskState } from '../migration/migration-state.js';
import type { MigrationTaskService } from '../migration/migration-task-service.js';
import { FactoryService } from '../services/factory-service.js';
import { AUTH_TOKEN_HEADER, CREDENTIALS_LINK, SYSTEM_USER_LINK, VERIFICATION_LINK } from './auth-links.js';
import type { AuthRuntime, Identity } from './auth-runtime.js';
import type { Authorizer } from './authorizer.js';
import type { AuthContext } from './policy.js';

interface Need {
  base: string;
  path: string;
  action: Action;
}

/** A credentials task reads password hashes, which only the system identity may (DECISIONS, Auth). */
export function isCredentialsTask(task: Pick<MigrationTaskState, 'sourceFactoryLink' | 'destinationFactoryLink'>): boolean {
  return task.sourceFactoryLink === CREDENTIALS_LINK || task.destinationFactoryLink === CREDENTIALS_LINK;
}

/**
 * Migration under auth (DECISIONS, Auth; xenon-cluster-auth.md D.2).
 *
 * - Posting a task needs read (GET) on the source factory and write (POST, PUT) on the destination
 *   factory — and POST on the transformation service when there is one — each asked of the group
 *   that holds it, with the caller's identity, through `GET /core/authz/verification`
 *   (a non-krypton source is asked `GET <factory>/config` instead). Otherwise 403.
 * - The task keeps its creator's principal (`ownerPrincipal`) and every remote call carries a fresh
 *   short-lived token for it, minted with the host's key: the source and the destination, which
 *   share that key, re-authorize each call with their own roles, and the task outlives the
 *   creator's token (Xenon's task silently became guest when it expired).
 * - A credentials task reads and writes as the system identity (hashes are readable by nobody
 *   else). It may be posted only by a principal allowed to write credentials on both groups, and
 *   each call re-checks that the creator still may on this host.
 */
export class MigrationAuth {
  constructor(
    private readonly rt: AuthRuntime,
    private readonly authorizer: Authorizer,
  ) {}

  /** The TaskIdentity hook of MigrationTaskService. */
  identity = (principal: string | undefined, task: MigrationTaskState): Record<string, string> => {
    if (!principal) return {};
    if (principal !== SYSTEM_USER_LINK && isCredentialsTask(task)) {
      const ctx = this.rt.engine.contextFor(principal);
      if (!this.authorizer.allowsPath(ctx, 'POST', CREDENTIALS_LINK).allowed) {
        throw kryptonError('FORBIDDEN', `forbidden: the task's creator ${principal} may no longer write ${CREDENTIALS_LINK} on this host`);
      }
      return { [AUTH_TOKEN_HEADER]: this.rt.tokenFor(SYSTEM_USER_LINK) };
    }
    return { [AUTH_TOKEN_HEADER]: this.rt.tokenFor(principal) };
  };

  /** Makes in-process imports (the task runs on a destination node) check each write like remote ones. */
  guardLocalImports(service: MigrationTaskService): void {
    const original = service.importLocally;
    if (!original) return;
    service.importLocally = async (factoryLink, docs, history, overwrite, principal, credentials) => {
      const factory = this.rt.host.service(factoryLink);
      if (principal && factory instanceof FactoryService) {
        const refused = this.authorizer.refusedImport(this.rt.engine.contextFor(principal), factory, docs, history);
        if (refused) throw kryptonError('FORBIDDEN', `forbidden: ${principal} may not write ${refused} (migration import)`);
      }
      return original(factoryLink, docs, history, overwrite, principal, credentials);
    };
  }

  /** The POST-time check; throws 403 naming every missing right. */
  async checkTaskPost(op: Operation, ctx: AuthContext, identity: Identity): Promise<void> {
    if (ctx.isSystem) return;
    let body: Doc;
    try {
      body = op.bodyObject() ?? {};
    } catch {
      return;
    }
    const src = baseOf(body['sourceReferences'], body['sourceNodeGroupReference']);
    const dst = baseOf(body['destinationReferences'], body['destinationNodeGroupReference']);
    const srcFactory = body['sourceFactoryLink'];
    const dstFactory = body['destinationFactoryLink'];
    if (!src || !dst || typeof srcFactory !== 'string' || typeof dstFactory !== 'string') return; // the service answers 400
    // Credentials are readable by the system identity only, so "read on the source" becomes
    // "may write credentials there too": only an administrator of both groups copies them.
    const credentials = isCredentialsTask({ sourceFactoryLink: srcFactory, destinationFactoryLink: dstFactory });
    const needs: Need[] = [
      credentials ? { base: src, path: CREDENTIALS_LINK, action: 'POST' } : { base: src, path: srcFactory, action: 'GET' },
      { base: dst, path: dstFactory, action: 'POST' },
      { base: dst, path: dstFactory, action: 'PUT' },
    ];
    if (credentials && dstFactory !== CREDENTIALS_LINK) needs.push({ base: dst, path: CREDENTIALS_LINK, action: 'POST' });
    const transform = body['transformationServiceLink'];
    if (typeof transform === 'string') needs.push({ base: dst, path: transform, action: 'POST' });
    const token = this.rt.tokenFor(ctx.principal);
    const answers = await Promise.all(needs.map(async (n) => ({ n, why: await this.missing(n, token) })));
    const missing = answers.filter((a) => a.why !== undefined).map((a) => `${a.n.action} on ${a.n.base}${a.n.path}${a.why ? ` (${a.why})` : ''}`);
    if (missing.length > 0) {
      const who = identity.tokenProblem ? `guest (${identity.tokenProblem})` : ctx.principal;
      throw kryptonError('FORBIDDEN', `forbidden: ${who} may not post this migration task: it needs read on the source factory and write on the destination factory; missing: ${missing.join(', ')}`);
    }
  }

  /** undefined when allowed, else a reason ('' when the remote just says no). */
  private async missing(n: Need, token: string): Promise<string | undefined> {
    const headers = { [AUTH_TOKEN_HEADER]: token };
    const url = `${n.base}${VERIFICATION_LINK}?path=${encodeURIComponent(n.path)}&action=${n.action}`;
    let res: ClientResponse;
    try {
      res = await this.rt.host.client.sendRaw(url, { method: 'GET', headers, timeoutMs: 10_000 });
    } catch (err) {
      throw kryptonError('UNAVAILABLE', `cannot check the rights this migration task needs on ${n.base}: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 200) {
      const b = (res.body ?? {}) as Doc;
      if (b['allowed'] === true) return undefined;
      if (b['tokenProblem']) return `there: ${String(b['tokenProblem'])}`;
      if (b['exists'] === false) return 'no such service there';
      return '';
    }
    if (res.status !== 404) throw kryptonError('REMOTE', `${url} answered ${res.status} while checking the migration task's rights`);
    // Not a krypton host (a Xenon blue): read access shows as a readable factory config; writes are
    // authorized there, document by document, when the task runs.
    if (n.action !== 'GET') return undefined;
    const probe = await this.rt.host.client.sendRaw(`${n.base}${n.path}/config`, { method: 'GET', headers, timeoutMs: 10_000 }).catch(() => undefined);
    return probe?.status === 200 ? undefined : `GET ${n.path}/config answered ${probe?.status ?? 'nothing'}`;
  }
}

function baseOf(refs: unknown, groupRef: unknown): string | undefined {
  try {
    if (Array.isArray(refs) && typeof refs[0] === 'string') return nodeBase(refs[0]);
    if (typeof groupRef === 'string') return nodeBase(groupRef);
  } catch {
    /* invalid URI: the service answers 400 */
  }
  return undefined;
}
