import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { Operation, Pragma } from '../core/operation.js';
import { AUTH_TOKEN_HEADER, SYSTEM_USER_LINK } from './auth-links.js';
import { MIGRATION_TASKS_LINK } from '../migration/migration-state.js';
import { MigrationTaskService } from '../migration/migration-task-service.js';
import { adminComplete, bootstrapAdmin } from './admin-bootstrap.js';
import { authFilter } from './auth-filter.js';
import { AuthRuntime } from './auth-runtime.js';
import { startAuthFactories } from './auth-services.js';
import { Authorizer } from './authorizer.js';
import { BasicAuthService } from './basic-auth-service.js';
import { identityStubs, verificationService } from './identity-services.js';
import { MigrationAuth } from './migration-auth.js';
import { loadSigningKey } from './signing-key.js';
import { registerAuthRuntime } from './system-identity.js';

/**
 * Turns authentication and authorization on (`--isAuthorizationEnabled=true`); does nothing when
 * it is off, so a host without auth behaves exactly as before. Must run before any other request
 * filter is added: authenticate → authorize is the first phase of every request.
 *
 * Starts Xenon's auth services, the login service, the auth filter, and at host start: the admin
 * bootstrap and the migration task's identity hook.
 */
export function installAuth(host: Host): void {
  if (!host.options.isAuthorizationEnabled) return;
  const key = loadSigningKey({ keyFile: host.options.keyFile, keyPassphrase: host.options.keyPassphrase, sandbox: host.options.sandbox });
  const rt = new AuthRuntime(host, key);
  rt.watchPolicyChanges();
  const authorizer = new Authorizer(rt);
  const migration = new MigrationAuth(rt, authorizer);
  registerAuthRuntime(host, rt);
  startAuthFactories(host);
  host.register(new BasicAuthService(rt));
  host.register(verificationService(rt, authorizer));
  for (const s of identityStubs()) host.register(s);
  host.addFilter(authFilter(rt, authorizer, migration));
  host.addComponent({
    start: async () => {
      const tasks = host.service(MIGRATION_TASKS_LINK);
      if (tasks instanceof MigrationTaskService) {
        tasks.identity = migration.identity;
        migration.guardLocalImports(tasks);
      }
      host.log.info({ key: key.origin }, "auth on: tokens are signed with this key; hosts that must accept each other's tokens need the same --keyFile");
      // Alone, the admin is made before the host is ready (or the start fails, saying why). A member
      // of a group waits for it: the bootstrap's writes need the group's quorum (gossip starts after
      // this), and a member started without --adminPassword gets the admin by synchronization.
      if (host.options.peerNodes.length === 0) await bootstrap();
      else bootstrapInBackground();
    },
    stop: () => {
      stopped = true;
      clearTimeout(waiting);
    },
  });

  let stopped = false;
  let waiting: NodeJS.Timeout | undefined;
  function bootstrap(): Promise<void> {
    return bootstrapAdmin(host, host.options.adminUser, host.options.adminPassword, systemCreate);
  }
  /** A POST as the system identity through every filter (owner forwarding included). */
  function systemCreate(factoryLink: string, body: Doc, recreate: boolean): Promise<{ status: number; body?: unknown }> {
    return systemRequest('POST', factoryLink, body, recreate ? Pragma.FORCE_INDEX_UPDATE : undefined);
  }
  async function systemRequest(action: 'GET' | 'POST', path: string, body?: Doc, pragma?: string): Promise<{ status: number; body?: unknown }> {
    const headers: Record<string, string> = { [AUTH_TOKEN_HEADER]: rt.tokenFor(SYSTEM_USER_LINK) };
    if (body) headers['content-type'] = 'application/json';
    if (pragma) headers['pragma'] = pragma;
    const op = new Operation({
      action,
      path,
      rawQuery: '',
      headers,
      bodyText: body ? JSON.stringify(body) : undefined,
      contentType: body ? 'application/json' : undefined,
      uri: () => `${host.uri}${path}`,
      remoteAddress: () => undefined,
    });
    const reply = await host.dispatch(op);
    return { status: reply.status, body: reply.body };
  }
  /** The node group (as this member sees it) has its quorum of AVAILABLE members: writes can succeed. */
  /**
   * Whether this member may write the admin now: it sees every member it was given (--peerNodes)
   * AVAILABLE, so the members agree on each link's owner and only that owner writes it (with views
   * still converging, two members each took itself for the owner and wrote the credentials twice,
   * which voided the first login's token). After `patienceMs` a quorum of AVAILABLE members is
   * enough (a peer address that never answers must not keep the admin from being made).
   */
  async function groupReady(patienceMs: number): Promise<boolean> {
    const reply = await systemRequest('GET', '/core/node-groups/default');
    const state = reply.body as { nodes?: Record<string, { status?: string; membershipQuorum?: number }> } | undefined;
    const nodes = Object.values(state?.nodes ?? {});
    const available = nodes.filter((n) => n.status === 'AVAILABLE').length;
    const quorum = Math.max(1, ...nodes.map((n) => n.membershipQuorum ?? 1));
    const everyone = host.options.peerNodes.length + 1;
    return reply.status === 200 && available >= (patienceMs > 0 ? Math.max(quorum, everyone) : quorum);
  }
  /** Retries the bootstrap every 0.5 s until it succeeds or the host stops; see groupReady. */
  function bootstrapInBackground(): void {
    let reported = false;
    const patientUntil = Date.now() + 30_000;
    const run = () => {
      const attempt = async () => {
        if (adminComplete(host, host.options.adminUser)) return;
        if (!(await groupReady(patientUntil - Date.now()))) throw new Error('the node group has not formed yet');
        await bootstrap();
      };
      attempt().then(
        () => {
          if (reported) host.log.info('admin bootstrap done');
        },
        (err: Error) => {
          if (stopped) return;
          if (!reported) host.log.info({ reason: err.message }, 'admin bootstrap waits for the node group; retrying every 0.5 s');
          reported = true;
          waiting = setTimeout(run, 500).unref();
        },
      );
    };
    run();
  }
}
