import type { Statement } from 'better-sqlite3';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import { ACTIONS, type Action } from '../core/operation.js';
import { compileWhere, hasStringField, type SqlFragment } from '../query/query-compiler.js';
import type { Query } from '../query/query-types.js';
import { normalizeQuerySpec } from '../query/query-validator.js';
import {
  CREDENTIALS_LINK,
  GUEST_USER_LINK,
  PASSWORD_CHANGED_FIELD,
  RESOURCE_GROUPS_LINK,
  ROLES_LINK,
  SYSTEM_READ_ONLY_FACTORIES,
  SYSTEM_USER_LINK,
  USER_GROUPS_LINK,
  USER_KIND,
  USERS_LINK,
} from './auth-links.js';
import { DocumentView, matchesQuery } from './query-matcher.js';

/** What one verb's roles say: resource-group queries that ALLOW and that DENY. */
interface VerbPolicy {
  allow: Query[];
  deny: Query[];
  /** A DENY role whose resource group is missing or unreadable: fail closed (deny everything). */
  denyAll: boolean;
}

const NOTHING: SqlFragment = { sql: '0', params: [] };
const EMPTY: VerbPolicy = Object.freeze({ allow: [], deny: [], denyAll: false }) as VerbPolicy;

/**
 * The resolved rights of one principal (Xenon's AuthorizationContext with its per-verb filters,
 * xenon-cluster-auth.md C.7), with DECISIONS' rule everywhere: access needs at least one matching
 * ALLOW and no matching DENY. Xenon's in-memory filter dropped the ALLOW clauses as soon as a DENY
 * existed; krypton evaluates the same rule in SQL (index) and in memory.
 */
export class AuthContext {
  private readonly scopes = new Map<Action, SqlFragment>();

  constructor(
    readonly principal: string,
    readonly generation: number,
    private readonly verbs: ReadonlyMap<Action, VerbPolicy>,
    /** Explanations for the log: dangling references, invalid queries. */
    readonly warnings: readonly string[] = [],
  ) {}

  get isSystem(): boolean {
    return this.principal === SYSTEM_USER_LINK;
  }

  get isGuest(): boolean {
    return this.principal === GUEST_USER_LINK;
  }

  /**
   * The SQL restriction (over `docs d`) of the documents this principal may `action`: compiled once
   * per context from each role's resource-group query by the query compiler. GET also hides the
   * system-only factories (credentials, revoked tokens). Undefined for the system identity.
   */
  scope(action: Action): SqlFragment | undefined {
    if (this.isSystem) return undefined;
    let s = this.scopes.get(action);
    if (!s) {
      s = compileScope(this.policy(action), action === 'GET');
      this.scopes.set(action, s);
    }
    return s;
  }

  /** In-memory check of a document that is not (yet) in the index: a new state or a stub. */
  allows(action: Action, doc: Doc, fixedItemNameFields: readonly string[] = []): boolean {
    if (this.isSystem) return true;
    if (action === 'GET' && isSystemReadOnly(doc['documentSelfLink'])) return false;
    const p = this.policy(action);
    if (p.denyAll || p.allow.length === 0) return false;
    const view = new DocumentView(doc, fixedItemNameFields);
    return p.allow.some((q) => matchesQuery(q, view)) && !p.deny.some((q) => matchesQuery(q, view));
  }

  private policy(action: Action): VerbPolicy {
    return this.verbs.get(action) ?? EMPTY;
  }
}

function isSystemReadOnly(link: unknown): boolean {
  return typeof link === 'string' && SYSTEM_READ_ONLY_FACTORIES.some((f) => link === f || link.startsWith(`${f}/`));
}

function compileScope(p: VerbPolicy, hideSystemOnly: boolean): SqlFragment {
  if (p.denyAll || p.allow.length === 0) return NOTHING;
  const allow = orAll(p.allow.map((q) => compileWhere(q)));
  const parts: SqlFragment[] = [allow];
  if (p.deny.length > 0) {
    const deny = orAll(p.deny.map((q) => compileWhere(q)));
    parts.push({ sql: `NOT ${deny.sql}`, params: deny.params });
  }
  if (hideSystemOnly) parts.push({ sql: `d.factory NOT IN (${SYSTEM_READ_ONLY_FACTORIES.map(() => '?').join(', ')})`, params: [...SYSTEM_READ_ONLY_FACTORIES] });
  return { sql: `(${parts.map((f) => f.sql).join(' AND ')})`, params: parts.flatMap((f) => f.params) };
}

function orAll(parts: SqlFragment[]): SqlFragment {
  return { sql: `(${parts.map((f) => f.sql).join(' OR ')})`, params: parts.flatMap((f) => f.params) };
}

/** Validates a stored query (resource or user group); undefined when it is not a valid query. */
export function validQuery(raw: unknown): Query | undefined {
  try {
    return normalizeQuerySpec({ query: raw }).query;
  } catch {
    return undefined;
  }
}

/**
 * Resolves principals into AuthContexts from the auth documents in the index, caching them until
 * any user, group, role, resource group or revocation changes (`generation`, bumped by an SQLite
 * trigger on every write path: requests, migration imports, replication).
 */
export class PolicyEngine {
  generation = 0;
  private readonly contexts = new Map<string, AuthContext>();
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly host: Host) {}

  contextFor(principal: string): AuthContext {
    const cached = this.contexts.get(principal);
    if (cached && cached.generation === this.generation) return cached;
    const ctx = this.compute(principal);
    if (this.contexts.size > 10_000) this.contexts.clear();
    this.contexts.set(principal, ctx);
    for (const w of ctx.warnings) this.host.log.warn({ principal }, w);
    return ctx;
  }

  /** The live user document at `link` (undefined if missing, deleted, expired or not a user). */
  user(link: string): Doc | undefined {
    if (!link.startsWith(`${USERS_LINK}/`)) return undefined;
    return this.live(link);
  }

  /** True when the stored latest version (or `version`) of `link` is within the principal's scope for `action`. */
  allowsStored(ctx: AuthContext, action: Action, link: string, version?: number): boolean {
    const scope = ctx.scope(action);
    if (!scope) return true;
    if (scope === NOTHING || scope.sql === '0') return false;
    const where = version === undefined ? 'd.link = ? AND d.latest = 1' : 'd.link = ? AND d.version = ?';
    const sql = `SELECT 1 FROM docs d WHERE ${where} AND ${scope.sql}`;
    let stmt = this.statements.get(sql);
    if (!stmt) {
      if (this.statements.size > 1000) this.statements.clear();
      stmt = this.host.store.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    const args = version === undefined ? [link, ...scope.params] : [link, version, ...scope.params];
    this.host.store.sync();
    return stmt.get(...args) !== undefined;
  }

  /**
   * When a password of `user` was last changed (the newest stamp on its live credentials, found by
   * email as a login finds them); undefined if never.
   */
  passwordChangedMicros(user: Doc): number | undefined {
    const email = user['email'];
    if (typeof email !== 'string') return undefined;
    let newest: number | undefined;
    const byEmail = hasStringField('userEmail', [email]);
    for (const c of this.liveInFactory(CREDENTIALS_LINK, `AND ${byEmail.sql}`, byEmail.params)) {
      const t = c[PASSWORD_CHANGED_FIELD];
      if (typeof t === 'number' && (newest === undefined || t > newest)) newest = t;
    }
    return newest;
  }

  live(link: string): Doc | undefined {
    const v = this.host.store.getLatest(link);
    if (!v || v.action === 'DELETE' || (v.expiration > 0 && v.expiration <= this.host.clock.nowMicros())) return undefined;
    return JSON.parse(v.json) as Doc;
  }

  private liveInFactory(factory: string, extraSql = '', params: unknown[] = []): Doc[] {
    const rows = this.host.store.all<{ json: string }>(
      `SELECT d.json FROM docs d WHERE d.factory = ? AND d.latest = 1 AND d.action != 'DELETE' AND (d.expiration = 0 OR d.expiration > ?) ${extraSql}`,
      [factory, this.host.clock.nowMicros(), ...params],
    );
    return rows.map((r) => JSON.parse(r.json) as Doc);
  }

  private compute(principal: string): AuthContext {
    const generation = this.generation;
    if (principal === SYSTEM_USER_LINK) return new AuthContext(principal, generation, new Map());
    const user = principal === GUEST_USER_LINK ? { documentSelfLink: GUEST_USER_LINK, documentKind: USER_KIND } : this.user(principal);
    if (!user) return new AuthContext(principal, generation, new Map());
    const warnings: string[] = [];
    const groupLinks = this.groupsOf(user);
    if (groupLinks.length === 0) return new AuthContext(principal, generation, new Map());
    const byGroup = hasStringField('userGroupLink', groupLinks);
    const roles = this.liveInFactory(ROLES_LINK, `AND ${byGroup.sql}`, byGroup.params);
    const verbs = new Map<Action, VerbPolicy>();
    for (const role of roles) {
      const policy = role['policy'] === 'DENY' ? 'DENY' : role['policy'] === 'ALLOW' ? 'ALLOW' : undefined;
      const actions = (Array.isArray(role['verbs']) ? role['verbs'] : []).filter((v): v is Action => ACTIONS.includes(v as Action));
      if (!policy || actions.length === 0) continue;
      const rgLink = role['resourceGroupLink'];
      const rg = typeof rgLink === 'string' && rgLink.startsWith(`${RESOURCE_GROUPS_LINK}/`) ? this.live(rgLink) : undefined;
      const query = rg ? validQuery(rg['query']) : undefined;
      if (!query)
        warnings.push(
          `role ${String(role['documentSelfLink'])} names ${rg ? 'a resource group with an invalid query' : `a missing resource group ${String(rgLink)}`}: ${policy === 'DENY' ? 'denying its verbs entirely (fail closed)' : 'ignored'}`,
        );
      for (const a of actions) {
        const p = verbs.get(a) ?? { allow: [], deny: [], denyAll: false };
        verbs.set(a, p);
        if (!query) p.denyAll ||= policy === 'DENY';
        else (policy === 'ALLOW' ? p.allow : p.deny).push(query);
      }
    }
    return new AuthContext(principal, generation, verbs, warnings);
  }

  /** Xenon C.7 step 2: the listed `userGroupLinks`, else every group whose query matches the user. */
  private groupsOf(user: Doc): string[] {
    const listed = Array.isArray(user['userGroupLinks']) ? (user['userGroupLinks'] as unknown[]).filter((l): l is string => typeof l === 'string') : [];
    if (listed.length > 0) return listed.filter((l) => l.startsWith(`${USER_GROUPS_LINK}/`) && this.live(l) !== undefined);
    const view = new DocumentView(user);
    const out: string[] = [];
    for (const g of this.liveInFactory(USER_GROUPS_LINK)) {
      const q = validQuery(g['query']);
      if (q && matchesQuery(q, view)) out.push(g['documentSelfLink'] as string);
    }
    return out;
  }
}
