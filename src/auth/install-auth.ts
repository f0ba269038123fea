import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { Operation, Pragma } from '../core/operation.js';
import { AUTH_TOKEN_HEADER, SYSTEM_USER_LINK } from './auth-links.js';
import { MIGRATION_TASKS_LINK } from '../migration/migration-state.js';
import { MigrationTaskService } from '../migration/migration-task-service.js';
import { bootstrapAdmin } from './admin-bootstrap.js';
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
      host.log.info({ key: key.origin }, 'auth on: tokens are signed with this key; hosts that must accept each other\'s tokens need the same --keyFile');
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
  async function systemCreate(factoryLink: string, body: Doc, recreate: boolean): Promise<{ status: number; body?: unknown }> {
    const headers: Record<string, string> = { [AUTH_TOKEN_HEADER]: rt.tokenFor(SYSTEM_USER_LINK), 'content-type': 'application/json' };
    if (recreate) headers['pragma'] = Pragma.FORCE_INDEX_UPDATE;
    const op = new Operation({
      action: 'POST',
      path: factoryLink,
      rawQuery: '',
      headers,
      bodyText: JSON.stringify(body),
      contentType: 'application/json',
      uri: () => `${host.uri}${factoryLink}`,
      remoteAddress: () => undefined,
    });
    const reply = await host.dispatch(op);
    return { status: reply.status, body: reply.body };
  }
  /** Retries the bootstrap every second until it succeeds or the host stops. */
  function bootstrapInBackground(): void {
    let reported = false;
    const run = () => {
      bootstrap().then(
        () => {
          if (reported) host.log.info('admin bootstrap done');
        },
        (err: Error) => {
          if (stopped) return;
          if (!reported) host.log.info({ reason: err.message }, 'admin bootstrap waits for the node group; retrying every second');
          reported = true;
          waiting = setTimeout(run, 1000).unref();
        },
      );
    };
    run();
  }
}
