import type { Host } from '../core/host.js';
import type { ServiceDefinition } from '../core/service-definition.js';
import { installCluster } from '../cluster/install-cluster.js';
import { QueryPageForwardingService, QueryPageService } from '../query/query-page-service.js';
import { QueryTaskService } from '../query/query-task-service.js';
import { documentIndex, management, rootNamespace } from './core-services.js';
import { ExampleService } from './example-service.js';
import { FactoryService } from './factory-service.js';
import { StatelessService } from './stateless-service.js';
import { MigrationTaskService } from '../migration/migration-task-service.js';
import { importIntoFactory, MigrationImportService } from '../migration/migration-import-service.js';
import { installAuth } from '../auth/install-auth.js';
import { factoryDigestService, writeFreezeService } from './upgrade-services.js';

/** Starts a user's service definition on the host. */
export function startService(host: Host, def: ServiceDefinition): void {
  host.register(def.type === 'stateful' ? new FactoryService(host, def) : new StatelessService(host, def));
}

/**
 * The services every krypton host starts (Xenon's core services, ExampleService), then the user's.
 * Later features (node groups, auth, migration) register themselves here as services too.
 */
export function installCoreServices(host: Host, onStopRequested: () => void): void {
  // Auth first: its filter (authenticate → authorize) must precede every other filter. No-op when off.
  installAuth(host);
  host.register(rootNamespace(host));
  host.register(management(host, onStopRequested));
  host.register(documentIndex(host));
  const queryTasks = new QueryTaskService('/core/query-tasks', host, host.queryPages);
  const localQueryTasks = new QueryTaskService('/core/local-query-tasks', host, host.queryPages);
  host.register(queryTasks);
  host.register(localQueryTasks);
  const pageService = new QueryPageService(host, host.queryPages, (id) => queryTasks.pageLink(id));
  host.register(pageService);
  host.register(new QueryPageForwardingService(host, pageService));
  host.addComponent({
    maintain: (now) => {
      queryTasks.sweep(now);
      localQueryTasks.sweep(now);
    },
  });
  startService(host, ExampleService);
  for (const def of host.options.services) startService(host, def);
  const migration = new MigrationTaskService(host);
  migration.importLocally = (factory, docs, history, overwrite, principal) => importIntoFactory(host, factory, docs, history, overwrite, principal);
  host.register(migration);
  host.register(new MigrationImportService(host));
  host.register(writeFreezeService(host));
  host.register(factoryDigestService(host));
  host.addComponent({ start: () => migration.resumeAll(), stop: () => migration.stopAll() });
  // Last: node groups hook into every service registered above (filters, writers, queries).
  installCluster(host);
}
