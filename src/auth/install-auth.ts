import type { Host } from '../core/host.js';
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
      await bootstrapAdmin(host, host.options.adminUser, host.options.adminPassword);
      host.log.info({ key: key.origin }, 'auth on: tokens are signed with this key; hosts that must accept each other\'s tokens need the same --keyFile');
    },
  });
}
