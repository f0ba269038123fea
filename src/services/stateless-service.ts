import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import type { StatelessServiceDefinition } from '../core/service-definition.js';

/** Serves a user's stateless service definition: the handler's return value is the 200 body. */
export class StatelessService implements Service {
  readonly link: string;

  constructor(
    private readonly host: Host,
    private readonly def: StatelessServiceDefinition,
  ) {
    this.link = def.link;
  }

  async handle(op: Operation): Promise<Reply> {
    const h = this.def.handlers[op.action];
    if (!h) fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const body = await h(op, this.host);
    return { status: 200, body };
  }
}
