import type { TSchema } from '@sinclair/typebox';
import type { Doc } from './document.js';
import type { Action, Operation } from './operation.js';
import type { Host } from './host.js';

/** What a create handler receives: the client's fields (built-ins removed). */
export interface CreateContext<S extends Doc> {
  body: Partial<S> & Doc;
  /** True when the POST carried `pragma: xn-from-migration` (the migration task writes this way). */
  fromMigration: boolean;
  op: Operation | undefined;
  host: Host;
}

/** What an update handler receives: the current state and the request body. */
export interface UpdateContext<S extends Doc> {
  current: S;
  body: Doc;
  fromMigration: boolean;
  op: Operation | undefined;
  host: Host;
}

/**
 * A stateful (persistent, versioned) service and its factory. Handlers return the new user state;
 * krypton adds the built-in fields, stores the version and answers with the full document.
 *
 * @example
 * export const Employee = defineStatefulService<EmployeeState>({
 *   factoryLink: '/quickstart/employees',
 *   documentKind: 'com:example:Employee',
 *   schema: Type.Object({ name: Type.String(), managerLink: Type.Optional(Type.String()) }),
 *   patch: ({ current, body }) => ({ ...current, ...body }),
 * });
 */
export interface StatefulServiceDefinition<S extends Doc = Doc> {
  readonly type: 'stateful';
  readonly factoryLink: string;
  readonly documentKind: string;
  /** TypeBox schema checked on every new state (create, PUT, PATCH result): 400 on mismatch. */
  readonly schema?: TSchema;
  /** POST to an existing link becomes a PUT (Xenon IDEMPOTENT_POST). */
  readonly idempotentPost?: boolean;
  readonly versionRetentionLimit?: number;
  readonly versionRetentionFloor?: number;
  /**
   * Default true: a document whose documentExpirationTimeMicros passed is deleted with its history
   * (Xenon). false: the field is kept as data and nothing is purged (task documents that must
   * report their own expiry as FAILED).
   */
  readonly expirationPurges?: boolean;
  /** Map fields whose keys and values are also indexed as items of the field (Xenon FIXED_ITEM_NAME). */
  readonly fixedItemNameFields?: readonly string[];
  /** Builds the initial state (validate here; throw `fail('VALIDATION', …)`). Default: the body. */
  readonly create?: (ctx: CreateContext<S>) => S | Promise<S>;
  /** Default: the body replaces the state. */
  readonly put?: (ctx: UpdateContext<S>) => S | Promise<S>;
  /** Default: 405 Action not supported. */
  readonly patch?: (ctx: UpdateContext<S>) => S | Promise<S>;
  /** Called before the DELETE version is written; may veto by throwing. */
  readonly delete?: (ctx: UpdateContext<S>) => void | Promise<void>;
}

/** A stateless service at a fixed link (e.g. a transformation service for upgrades). */
export interface StatelessServiceDefinition {
  readonly type: 'stateless';
  readonly link: string;
  /** Handlers per verb; the return value is the JSON response body (200). Missing verbs: 405. */
  readonly handlers: Partial<Record<Action, (op: Operation, host: Host) => unknown | Promise<unknown>>>;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds services of every state type (S appears in both argument and result positions).
export type ServiceDefinition = StatefulServiceDefinition<any> | StatelessServiceDefinition;

export function defineStatefulService<S extends Doc>(def: Omit<StatefulServiceDefinition<S>, 'type'>): StatefulServiceDefinition<S> {
  if (!def.factoryLink.startsWith('/') || def.factoryLink.endsWith('/')) throw new Error(`factoryLink must start with '/' and not end with it: ${def.factoryLink}`);
  return Object.freeze({ ...def, type: 'stateful' as const });
}

export function defineStatelessService(def: Omit<StatelessServiceDefinition, 'type'>): StatelessServiceDefinition {
  if (!def.link.startsWith('/')) throw new Error(`link must start with '/': ${def.link}`);
  return Object.freeze({ ...def, type: 'stateless' as const });
}
