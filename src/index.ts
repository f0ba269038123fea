/**
 * krypton's public API: define services, start a host from your own code.
 *
 * @example
 * import { startHost, defineStatefulService, Type } from 'krypton';
 * const host = await startHost({ port: 8000, sandbox: './sandbox', services: [MyService] });
 */
export { Type, type Static, type TSchema } from '@sinclair/typebox';
export { defineStatefulService, defineStatelessService } from './core/service-definition.js';
export type { StatefulServiceDefinition, StatelessServiceDefinition, ServiceDefinition, CreateContext, UpdateContext } from './core/service-definition.js';
export { Host, DEFAULT_HOST_OPTIONS, type HostOptions } from './core/host.js';
export { Operation, Pragma, type Reply } from './core/operation.js';
export { fail, KryptonError, Errors, XenonErrorCode, toServiceErrorResponse, type ServiceErrorResponse } from './core/errors.js';
export type { Doc } from './core/document.js';
export { ExampleService, EXAMPLE_KIND } from './services/example-service.js';

import { Host, type HostOptions } from './core/host.js';
import { installCoreServices } from './services/install.js';

/** Starts a host with the core services, ExampleService and `options.services`; resolves when listening. */
export async function startHost(options: Partial<HostOptions> = {}): Promise<Host> {
  const host = new Host(options);
  await host.start((h) => installCoreServices(h, () => void h.stop()));
  return host;
}
