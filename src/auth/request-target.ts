import type { Host } from '../core/host.js';
import { UTILITY_SUFFIXES, type Service } from '../core/service.js';
import { FactoryService } from '../services/factory-service.js';

/** What a path addresses, resolved the way Host.route dispatches it. */
export type Target =
  /** A stateful factory (`/core/examples`), or one of its utility suffixes. */
  | { kind: 'factory'; factory: FactoryService; suffix: string | undefined }
  /** A stateful child (`/core/examples/a`), or one of its suffixes (`/core/examples/a/stats`). */
  | { kind: 'child'; factory: FactoryService; link: string; suffix: string | undefined }
  /** Any other service at a fixed link, or one of its suffixes. */
  | { kind: 'service'; service: Service; suffix: string | undefined }
  /** A child a service keeps in memory (query tasks, query pages): that service authorizes it. */
  | { kind: 'memory-child'; service: Service; link: string }
  | { kind: 'none' };

/**
 * Resolves a path like Host.route does (exact link, utility suffix, factory child). Kept apart
 * from the router so that authorization runs before routing without changing it; a route rule
 * added there must be mirrored here (test/auth-host.test.ts covers every kind).
 */
export function resolveTarget(host: Host, path: string): Target {
  const direct = host.service(path);
  if (direct) return wrap(direct, undefined);
  const slash = path.lastIndexOf('/');
  const parent = path.slice(0, slash);
  const last = path.slice(slash + 1);
  if (UTILITY_SUFFIXES.has(last)) {
    const owner = host.service(parent);
    if (owner) return wrap(owner, last);
    const grand = host.service(parent.slice(0, parent.lastIndexOf('/')));
    if (grand instanceof FactoryService) return { kind: 'child', factory: grand, link: parent, suffix: last };
    if (grand?.handleChild) return { kind: 'memory-child', service: grand, link: parent };
  }
  const factory = host.service(parent);
  if (factory?.handleChild && last.length > 0) {
    if (factory instanceof FactoryService) return { kind: 'child', factory, link: path, suffix: undefined };
    return { kind: 'memory-child', service: factory, link: path };
  }
  return { kind: 'none' };
}

function wrap(service: Service, suffix: string | undefined): Target {
  if (service instanceof FactoryService) return { kind: 'factory', factory: service, suffix };
  return { kind: 'service', service, suffix };
}
