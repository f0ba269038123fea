import { Type } from '@sinclair/typebox';
import { fail } from '../core/errors.js';
import { userFields, type Doc } from '../core/document.js';
import { xenonFnv64 } from '../core/fnv-hash.js';
import type { Host } from '../core/host.js';
import { ACTIONS, RawJson, type Operation, type Reply } from '../core/operation.js';
import { defineStatefulService, type StatefulServiceDefinition } from '../core/service-definition.js';
import { FactoryService } from '../services/factory-service.js';
import { hasStringField } from '../query/query-compiler.js';
import { normalizeQuerySpec } from '../query/query-validator.js';
import type { Query } from '../query/query-types.js';
import {
  CREDENTIALS_KIND,
  CREDENTIALS_LINK,
  PASSWORD_CHANGED_FIELD,
  PATCH_QUERY_REQUEST_KIND,
  RESOURCE_GROUP_KIND,
  RESOURCE_GROUPS_LINK,
  REVOKED_TOKEN_KIND,
  REVOKED_TOKENS_LINK,
  ROLE_KIND,
  ROLES_LINK,
  USER_GROUP_KIND,
  USER_GROUPS_LINK,
  USER_KIND,
  USERS_LINK,
} from './auth-links.js';
import { hashPassword, isPasswordHash, verifyPassword } from './password-hash.js';

const VALID_ID = /^[A-Za-z0-9\-_.~@!$&'()*+,;=:]+$/;

/**
 * The id a user (and its credentials) gets when the POST names none: the email itself, so the same
 * user created on blue and on green has the same documentSelfLink and tokens work on both
 * (the seeds' promise; Xenon generated a random id). Emails with characters an id cannot hold
 * get a stable hash instead.
 */
export function userIdFor(email: string): string {
  return VALID_ID.test(email) ? email : `u-${xenonFnv64(email).toString(16)}`;
}

/** PATCH helper: the current state with the body's non-null user fields laid over it. */
function merge(current: Doc, body: Doc): Doc {
  const out = userFields(current);
  for (const [k, v] of Object.entries(userFields(body))) out[k] = v;
  return out;
}

/** A query given by a client, validated and with Xenon's defaults filled in; migrated ones are kept as sent. */
function checkedQuery(raw: unknown, what: string, fromMigration: boolean): Query {
  if (raw === undefined || raw === null) fail('VALIDATION', `${what} is required`);
  let q: Query | undefined;
  try {
    q = normalizeQuerySpec({ query: raw }).query;
  } catch (err) {
    if (fromMigration) return raw as Query;
    fail('VALIDATION', `${what} is invalid: ${(err as Error).message}`);
  }
  return fromMigration ? (raw as Query) : q!;
}

function checkEmail(email: unknown): string {
  if (email === undefined || email === null || email === '') fail('VALIDATION', 'email is required');
  if (typeof email !== 'string' || email.split('@').length !== 2) fail('VALIDATION', `email is invalid: ${String(email)}`);
  return email;
}

export const UserService = defineStatefulService<Doc>({
  factoryLink: USERS_LINK,
  documentKind: USER_KIND,
  idempotentPost: true,
  schema: Type.Object({ email: Type.String(), userGroupLinks: Type.Optional(Type.Array(Type.String())) }),
  create: ({ body }) => ({ ...userFields(body), email: checkEmail(body['email']) }),
  put: ({ body }) => ({ ...userFields(body), email: checkEmail(body['email']) }),
  // Xenon merges non-null fields; userGroupLinks grow (remove with a PUT).
  patch: ({ current, body }) => {
    const next = merge(current, body);
    if (Array.isArray(body['userGroupLinks'])) next['userGroupLinks'] = [...new Set([...((current['userGroupLinks'] as string[] | undefined) ?? []), ...(body['userGroupLinks'] as string[])])];
    checkEmail(next['email']);
    return next;
  },
});

/** Create and PUT of a group document (user or resource group): its `query` is validated. */
const queryGroupWrites = {
  create: ({ body, fromMigration }: { body: Doc; fromMigration: boolean }) => ({ ...userFields(body), query: checkedQuery(body['query'], 'query', fromMigration) }),
  put: ({ body }: { body: Doc }) => ({ ...userFields(body), query: checkedQuery(body['query'], 'query', false) }),
};

export const UserGroupService = defineStatefulService<Doc>({
  factoryLink: USER_GROUPS_LINK,
  documentKind: USER_GROUP_KIND,
  idempotentPost: true,
  ...queryGroupWrites,
  patch: ({ current, body }) => {
    const next = merge(current, body);
    return { ...next, query: checkedQuery(next['query'], 'query', false) };
  },
});

export const ResourceGroupService = defineStatefulService<Doc>({
  factoryLink: RESOURCE_GROUPS_LINK,
  documentKind: RESOURCE_GROUP_KIND,
  idempotentPost: true,
  ...queryGroupWrites,
  patch: ({ current, body }) => {
    if (body['kind'] === PATCH_QUERY_REQUEST_KIND) return { ...userFields(current), query: patchQuery(current['query'] as Query, body) };
    const next = merge(current, body);
    return { ...next, query: checkedQuery(next['query'], 'query', false) };
  },
  // A role naming a missing resource group would silently lose its effect: refuse while one does.
  delete: ({ current, host }) => {
    const link = current['documentSelfLink'] as string;
    const user = liveRoleNaming(host, 'resourceGroupLink', link);
    if (user) fail('CONFLICT', `resource group ${link} is used by role ${user}: delete or change the role first`);
  },
});

/** Xenon's PatchQueryRequest: adds (or with removeClause, removes) one clause of the group's query. */
function patchQuery(current: Query, body: Doc): Query {
  const clause = checkedQuery(body['clause'], 'clause', false);
  const base: Query = current.booleanClauses ? current : { occurance: 'MUST_OCCUR', booleanClauses: current.term ? [current] : [] };
  const same = (c: Query) => JSON.stringify(c) === JSON.stringify(clause);
  const clauses = body['removeClause'] === true ? base.booleanClauses!.filter((c) => !same(c)) : [...base.booleanClauses!.filter((c) => !same(c)), clause];
  return { ...base, booleanClauses: clauses };
}

function liveRoleNaming(host: Host, field: string, link: string): string | undefined {
  const byField = hasStringField(field, [link]);
  const row = host.store.get<{ link: string }>(`SELECT d.link FROM docs d WHERE d.factory = ? AND d.latest = 1 AND d.action != 'DELETE' AND ${byField.sql} LIMIT 1`, [ROLES_LINK, ...byField.params]);
  return row?.link;
}

function checkRole(state: Doc, host: Host, fromMigration: boolean): Doc {
  for (const f of ['userGroupLink', 'resourceGroupLink', 'policy']) if (typeof state[f] !== 'string' || state[f] === '') fail('VALIDATION', `${f} is required`);
  if (!['ALLOW', 'DENY'].includes(state['policy'] as string)) fail('VALIDATION', `policy must be ALLOW or DENY: ${String(state['policy'])}`);
  const verbs = state['verbs'];
  if (!Array.isArray(verbs) || verbs.length === 0) fail('VALIDATION', 'verbs is required');
  for (const v of verbs) if (!ACTIONS.includes(v as never)) fail('VALIDATION', `verbs: unknown action ${String(v)} (one of ${ACTIONS.join(', ')})`);
  if (state['priority'] !== undefined && !Number.isInteger(state['priority'])) fail('VALIDATION', 'priority must be an integer');
  // Migration brings groups before roles (NodeGroupMigrationTaskService order), but a partial
  // copy must still land: a dangling reference is then handled at evaluation (policy.ts).
  if (!fromMigration) {
    for (const [f, factory] of [
      ['userGroupLink', USER_GROUPS_LINK],
      ['resourceGroupLink', RESOURCE_GROUPS_LINK],
    ] as const) {
      const link = state[f] as string;
      const v = link.startsWith(`${factory}/`) ? host.store.getLatest(link) : undefined;
      if (!v || v.action === 'DELETE') fail('VALIDATION', `${f} ${link} does not exist: create it under ${factory} first`);
    }
  }
  return { ...state, verbs: [...new Set(verbs as string[])] };
}

export const RoleService = defineStatefulService<Doc>({
  factoryLink: ROLES_LINK,
  documentKind: ROLE_KIND,
  idempotentPost: true,
  create: ({ body, host, fromMigration }) => checkRole(userFields(body), host, fromMigration),
  put: ({ body, host }) => checkRole(userFields(body), host, false),
  patch: ({ current, body, host }) => checkRole(merge(current, body), host, false),
});

/** Hashes a plain `privateKey`; a value that already is one of our hashes (migration) is kept. */
async function withHashedKey(state: Doc): Promise<Doc> {
  const key = state['privateKey'];
  if (key === undefined || key === null) return state;
  if (typeof key !== 'string' || key === '') fail('VALIDATION', 'privateKey must be a non-empty string');
  return isPasswordHash(key) ? state : { ...state, privateKey: await hashPassword(key) };
}

/**
 * The new state of existing credentials (PUT, PATCH, a POST to an existing link): a password given
 * in clear that differs from the current one is a password change and is stamped now (tokens
 * issued before it stop working); the same password again keeps the stored hash and the stamp
 * (two members bootstrapping the admin at once must not void the tokens issued in between).
 */
async function updatedCredentials(current: Doc, next: Doc, body: Doc, host: Host, fromMigration: boolean): Promise<Doc> {
  const key = body['privateKey'];
  if (!fromMigration && typeof key === 'string' && !isPasswordHash(key) && (await verifyPassword(key, current['privateKey']))) {
    return stamped({ ...next, privateKey: current['privateKey'] }, current[PASSWORD_CHANGED_FIELD]);
  }
  const state = await withHashedKey(next);
  if (fromMigration) return state;
  const changed = typeof key === 'string' && !isPasswordHash(key);
  return stamped(state, changed ? host.clock.nowMicros() : current[PASSWORD_CHANGED_FIELD]);
}

/** New credentials: only a migration may carry a stamp (the source's), a client may not set one. */
async function createdCredentials(body: Doc, fromMigration: boolean): Promise<Doc> {
  const state = await withHashedKey(userFields(body));
  return fromMigration ? state : stamped(state, undefined);
}

/** `state` with the host's password-change stamp (none if `stamp` is not a number), whatever it held. */
function stamped(state: Doc, stamp: unknown): Doc {
  const { [PASSWORD_CHANGED_FIELD]: _ignored, ...rest } = state;
  return typeof stamp === 'number' ? { ...rest, [PASSWORD_CHANGED_FIELD]: stamp } : rest;
}

/**
 * `/core/auth/credentials`: Xenon's AuthCredentialsServiceState, except that `privateKey` (the
 * password for basic auth) is stored only as a salted scrypt hash — also when it arrives in clear
 * from a Xenon source through migration. Only the system identity can read these documents.
 */
export const CredentialsService = defineStatefulService<Doc>({
  factoryLink: CREDENTIALS_LINK,
  documentKind: CREDENTIALS_KIND,
  idempotentPost: true,
  create: ({ body, fromMigration }) => createdCredentials(body, fromMigration),
  put: ({ current, body, host, fromMigration }) => updatedCredentials(current, userFields(body), body, host, fromMigration),
  patch: ({ current, body, host, fromMigration }) => updatedCredentials(current, merge(current, body), body, host, fromMigration),
});

/** krypton: one document per revoked token (id = SHA-256 of the token), expiring with the token. */
export const RevokedTokenService = defineStatefulService<Doc>({
  factoryLink: REVOKED_TOKENS_LINK,
  documentKind: REVOKED_TOKEN_KIND,
  idempotentPost: true,
  versionRetentionLimit: 2,
  versionRetentionFloor: 1,
});

/**
 * A factory of the auth services: gives POSTs a deterministic default id (users, credentials) and
 * never lets `privateKey` reach anyone but the system identity, whatever the verb.
 */
export class AuthFactoryService extends FactoryService {
  constructor(
    host: Host,
    def: StatefulServiceDefinition,
    private readonly defaultId?: (body: Doc) => string | undefined,
    private readonly secretFields: readonly string[] = [],
  ) {
    super(host, def);
  }

  /** The id a POST without documentSelfLink gets (undefined: a generated one). */
  override defaultSelfLink(body: Doc): string | undefined {
    return this.defaultId?.(body);
  }

  override async handle(op: Operation): Promise<Reply> {
    if (op.action === 'POST') {
      const body = op.bodyObject();
      if (body && (body['documentSelfLink'] === undefined || body['documentSelfLink'] === null)) {
        const id = this.defaultSelfLink(body);
        if (id) body['documentSelfLink'] = id;
      }
    }
    return this.redact(op, await super.handle(op));
  }

  override async handleChild(op: Operation, childLink: string, suffix: string | undefined): Promise<Reply> {
    return this.redact(op, await super.handleChild(op, childLink, suffix));
  }

  private redact(op: Operation, reply: Reply): Reply {
    if (this.secretFields.length === 0 || op.isSystem || !reply.body || typeof reply.body !== 'object') return reply;
    const doc = reply.body instanceof RawJson ? (JSON.parse(reply.body.text) as Doc) : (reply.body as Doc);
    if (Array.isArray(doc) || !this.secretFields.some((f) => f in doc)) return reply;
    const copy = { ...doc };
    for (const f of this.secretFields) delete copy[f];
    return { ...reply, body: copy };
  }
}

/** Registers the auth factories at their Xenon links. */
export function startAuthFactories(host: Host): void {
  const emailId = (field: string) => (body: Doc) => (typeof body[field] === 'string' && (body[field] as string).includes('@') ? userIdFor(body[field] as string) : undefined);
  host.register(new AuthFactoryService(host, UserService, emailId('email')));
  host.register(new AuthFactoryService(host, UserGroupService));
  host.register(new AuthFactoryService(host, ResourceGroupService));
  host.register(new AuthFactoryService(host, RoleService));
  host.register(new AuthFactoryService(host, CredentialsService, emailId('userEmail'), ['privateKey']));
  host.register(new AuthFactoryService(host, RevokedTokenService));
}
