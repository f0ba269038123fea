import type { WriteOp } from '../store/write-ops.js';
import { createHash } from 'node:crypto';
import type { Host } from '../core/host.js';
import type { Operation } from '../core/operation.js';
import { FactoryService } from '../services/factory-service.js';
import { AUTH_COOKIE, AUTH_TOKEN_HEADER, GUEST_USER_LINK, POLICY_FACTORIES, REVOKED_TOKENS_LINK, SYSTEM_USER_LINK } from './auth-links.js';
import { TokenSigner } from './auth-token.js';
import { PolicyEngine } from './policy.js';
import type { SigningKey } from './signing-key.js';

/** Who a request is: the principal and, when a token was refused, why (shown in the 403 message). */
export interface Identity {
  principal: string;
  isSystem: boolean;
  /** Why the presented token was not accepted (the request then runs as guest, as in Xenon). */
  tokenProblem?: string;
}

interface CachedToken {
  principal: string;
  expMicros: number;
  generation: number;
}

const TOKEN_CACHE_LIMIT = 10_000;
/** Lifetime of tokens minted for the system identity and for migration tasks (renewed before expiry). */
export const MINTED_TOKEN_SECONDS = 900;
const RENEW_BEFORE_MICROS = 300_000_000;

/**
 * Per-host auth state: the signer, the policy engine, a token cache (token → principal; a hit
 * costs a Map lookup instead of an HMAC verification and a user lookup), and minted tokens.
 * Cache entries die with the token's expiry and with any change to users, groups, roles, resource
 * groups, credentials or revocations (the engine's generation).
 */
export class AuthRuntime {
  readonly signer: TokenSigner;
  readonly engine: PolicyEngine;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly minted = new Map<string, { token: string; expMicros: number }>();

  constructor(
    readonly host: Host,
    readonly key: SigningKey,
  ) {
    this.signer = new TokenSigner(key.secret, () => host.clock.nowMicros());
    this.engine = new PolicyEngine(host);
  }

  /**
   * Makes every write to the policy factories — through a request, a migration import or
   * node-group replication — invalidate cached contexts and tokens: every committed batch of index
   * writes is inspected (the writes themselves run on the writer thread), before its writer is
   * answered.
   */
  watchPolicyChanges(): void {
    const prefixes = POLICY_FACTORIES.map((f) => `${f}/`);
    const touchesPolicy = (op: WriteOp): boolean => (op.t === 'write' && POLICY_FACTORIES.includes(op.v.factory)) || (op.t === 'purge' && prefixes.some((p) => op.link.startsWith(p)));
    this.host.store.commits.onCommitted((ops) => {
      if (ops.some(touchesPolicy)) this.engine.generation++;
    });
  }

  /** The token a request carries: `x-xenon-auth-token`, else the `xenon-auth-cookie` cookie. */
  tokenOf(op: Operation): string | undefined {
    const h = op.headers[AUTH_TOKEN_HEADER];
    const header = Array.isArray(h) ? h[0] : h;
    if (header) return header.trim();
    const cookie = op.headers['cookie'];
    if (!cookie) return undefined;
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === AUTH_COOKIE) return part.slice(eq + 1).trim() || undefined;
    }
    return undefined;
  }

  /**
   * Establishes the principal (xenon-cluster-auth.md C.6): a bad, expired, revoked or unknown-subject
   * token means guest, and so does a login token issued before the user's password was last changed.
   */
  async identify(op: Operation): Promise<Identity> {
    const token = this.tokenOf(op);
    if (!token) return { principal: GUEST_USER_LINK, isSystem: false };
    const now = this.host.clock.nowMicros();
    const hit = this.tokens.get(token);
    if (hit && hit.expMicros > now && hit.generation === this.engine.generation) return { principal: hit.principal, isSystem: hit.principal === SYSTEM_USER_LINK };
    if (hit) this.tokens.delete(token);
    const check = await this.signer.verify(token);
    if (!check.ok) return guest(`the auth token was refused: ${check.reason}`);
    const generation = this.engine.generation;
    if (this.engine.live(revocationLink(token))) return guest('the auth token was revoked (logged out)');
    const sub = check.sub;
    if (sub !== SYSTEM_USER_LINK && sub !== GUEST_USER_LINK) {
      const user = this.engine.user(sub);
      if (!user) return guest(`the auth token's user ${sub} does not exist on this host`);
      // Whole seconds (JWT iat): a token from the very second of the change stays valid.
      const changed = this.engine.passwordChangedMicros(user);
      if (changed !== undefined && check.iatSeconds !== undefined && check.iatSeconds < Math.floor(changed / 1e6)) {
        return guest(`the auth token was issued before the password of ${sub} was changed`);
      }
    }
    if (this.tokens.size >= TOKEN_CACHE_LIMIT) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(token, { principal: sub, expMicros: check.expSeconds * 1e6, generation });
    return { principal: sub, isSystem: sub === SYSTEM_USER_LINK };
  }

  /** A token for `principal` valid MINTED_TOKEN_SECONDS, reused until it nears expiry. */
  tokenFor(principal: string): string {
    const now = this.host.clock.nowMicros();
    const m = this.minted.get(principal);
    if (m && m.expMicros - now > RENEW_BEFORE_MICROS) return m.token;
    const exp = Math.floor(now / 1e6) + MINTED_TOKEN_SECONDS;
    const token = this.signer.sign(principal, exp);
    if (this.minted.size > 1000) this.minted.clear();
    this.minted.set(principal, { token, expMicros: exp * 1e6 });
    return token;
  }

  /** Revokes a token on this host (and, through replication of the revocation factory, its group). */
  async revoke(token: string, expSeconds: number): Promise<void> {
    const factory = this.host.service(REVOKED_TOKENS_LINK);
    if (!(factory instanceof FactoryService)) return;
    const id = revocationLink(token).slice(REVOKED_TOKENS_LINK.length + 1);
    await factory.writer.create({
      body: { documentSelfLink: id, documentExpirationTimeMicros: expSeconds * 1e6 },
      fromMigration: false,
      forceIndexUpdate: true,
      principal: SYSTEM_USER_LINK,
      op: undefined,
    });
    this.tokens.delete(token);
  }
}

function guest(tokenProblem: string): Identity {
  return { principal: GUEST_USER_LINK, isSystem: false, tokenProblem };
}

/** Where a token's revocation is recorded: the SHA-256 of the token, so the index never holds tokens. */
export function revocationLink(token: string): string {
  return `${REVOKED_TOKENS_LINK}/${createHash('sha256').update(token).digest('base64url')}`;
}
