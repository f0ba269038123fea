import { longField, type Doc } from '../core/document.js';
import { fail, kryptonError, toServiceErrorResponse } from '../core/errors.js';
import { hasStringField } from '../query/query-compiler.js';
import type { Operation, Reply } from '../core/operation.js';
import type { Service } from '../core/service.js';
import { AUTH_COOKIE, AUTH_TOKEN_HEADER, BASIC_AUTH_LINK, CREDENTIALS_LINK, USERS_LINK } from './auth-links.js';
import type { AuthRuntime } from './auth-runtime.js';
import { userIdFor } from './auth-services.js';
import { LoginThrottle } from './login-throttle.js';
import { dummyVerify, verifyPassword } from './password-hash.js';

/** Xenon's default session length (xenon.BasicAuthenticationService.AUTH_TOKEN_EXPIRATION_SECONDS). */
export const DEFAULT_SESSION_SECONDS = 3600;
/** krypton caps requested sessions (Xenon had no cap by default). */
export const MAX_SESSION_SECONDS = 30 * 24 * 3600;
const MAX_CREDENTIALS_TRIED = 5;
const BASIC = /^basic$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * `POST /core/authn/basic` (xenon-cluster-auth.md C.3): LOGIN with `Authorization: Basic` answers
 * the token in `x-xenon-auth-token` and the `xenon-auth-cookie` cookie; LOGOUT revokes the token
 * it carries (Xenon revoked nothing). Statuses as in Xenon: 401 without credentials, 400 for a
 * malformed header, 403 for an unknown user or a wrong password (one message for both, and the
 * same time spent, so neither reveals which users exist). Failed logins are slowed down.
 */
export class BasicAuthService implements Service {
  readonly link = BASIC_AUTH_LINK;

  constructor(
    private readonly rt: AuthRuntime,
    private readonly throttle = new LoginThrottle(),
  ) {}

  async handle(op: Operation): Promise<Reply> {
    if (op.action !== 'POST') fail('METHOD_NOT_ALLOWED', `Action not supported: ${op.action}`);
    const body = op.bodyObject();
    if (!body) fail('VALIDATION', 'a JSON body is required: {"requestType":"LOGIN"} or {"requestType":"LOGOUT"}');
    const type = body['requestType'] ?? 'LOGIN';
    if (type === 'LOGOUT') return this.logout(op, body);
    if (type !== 'LOGIN') fail('VALIDATION', `requestType must be LOGIN or LOGOUT: ${String(type)}`);
    return this.login(op, body);
  }

  private async login(op: Operation, body: Doc): Promise<Reply> {
    const header = op.headers['authorization'];
    if (!header) {
      const err = kryptonError('UNAUTHORIZED', 'credentials are required: send Authorization: Basic base64(email:password)');
      return { status: 401, body: toServiceErrorResponse(err), headers: { 'www-authenticate': 'Basic realm="xenon"' } };
    }
    const { email, password } = parseBasic(header);
    const seconds = sessionSeconds(body);
    const address = op.remoteAddress ?? 'unknown';
    const slot = this.throttle.reserve(email, address);
    if (slot.refused) {
      const retry = Math.ceil(slot.waitMs / 1000);
      return { status: 429, body: toServiceErrorResponse(kryptonError('TOO_MANY_REQUESTS', `too many failed logins for ${email}: retry in ${retry} s`)), headers: { 'retry-after': String(retry) } };
    }
    let userLink: string | undefined;
    try {
      if (slot.waitMs > 0) await new Promise((r) => setTimeout(r, slot.waitMs));
      userLink = await this.check(email, password);
    } finally {
      this.throttle.settle(email, address, userLink !== undefined);
    }
    if (!userLink) fail('FORBIDDEN', 'forbidden: unknown user or wrong password');
    // JWT `exp` is in whole seconds: rounded up, so a session lasts at least the seconds asked for
    // (rounded down, a 1-second session could end at once).
    const exp = Math.ceil((this.rt.host.clock.nowMicros() + seconds * 1e6) / 1e6);
    const token = this.rt.signer.sign(userLink, exp, { issuedAt: true });
    const cookie = `${AUTH_COOKIE}=${token}; Max-Age=${seconds}; Expires=${new Date(exp * 1000).toUTCString()}; Path=/; HttpOnly; SameSite=Strict`;
    return { status: 200, body, headers: { [AUTH_TOKEN_HEADER]: token, 'set-cookie': cookie } };
  }

  /** The user's link when `password` matches one of its credentials; undefined otherwise. */
  private async check(email: string, password: string): Promise<string | undefined> {
    const user = this.findUser(email);
    const credentials = user ? this.findCredentials(email) : [];
    if (credentials.length === 0) {
      await dummyVerify(password);
      return undefined;
    }
    for (const c of credentials) if (await verifyPassword(password, c['privateKey'])) return user!['documentSelfLink'] as string;
    return undefined;
  }

  private findUser(email: string): Doc | undefined {
    const byId = this.rt.engine.live(`${USERS_LINK}/${userIdFor(email)}`);
    if (byId?.['email'] === email) return byId;
    return this.liveByField(USERS_LINK, 'email', email, 1)[0];
  }

  private findCredentials(email: string): Doc[] {
    return this.liveByField(CREDENTIALS_LINK, 'userEmail', email, MAX_CREDENTIALS_TRIED);
  }

  private liveByField(factory: string, field: string, value: string, limit: number): Doc[] {
    const byField = hasStringField(field, [value]);
    const rows = this.rt.host.store.all<{ json: string }>(
      `SELECT d.json FROM docs d WHERE d.factory = ? AND d.latest = 1 AND d.action != 'DELETE' AND (d.expiration = 0 OR d.expiration > ?)
         AND ${byField.sql} ORDER BY d.id LIMIT ?`,
      [factory, this.rt.host.clock.nowMicros(), ...byField.params, limit],
    );
    return rows.map((r) => JSON.parse(r.json) as Doc);
  }

  private async logout(op: Operation, body: Doc): Promise<Reply> {
    const token = this.rt.tokenOf(op);
    if (token) {
      const check = await this.rt.signer.verify(token);
      if (check.ok) await this.rt.revoke(token, check.expSeconds);
    }
    return { status: 200, body, headers: { 'set-cookie': `${AUTH_COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Strict` } };
  }
}

/**
 * `Basic base64(email:password)`: exactly two space-separated parts (Xenon), valid base64, and a
 * colon with something on both sides. Unlike Xenon, the password may itself contain colons
 * (RFC 7617 splits at the first one).
 */
function parseBasic(header: string): { email: string; password: string } {
  const parts = header.split(' ');
  if (parts.length !== 2 || !BASIC.test(parts[0]!)) fail('BAD_REQUEST', 'malformed Authorization header: expected "Basic base64(email:password)"');
  if (!BASE64.test(parts[1]!)) fail('BAD_REQUEST', 'malformed Authorization header: the credentials are not base64');
  const decoded = Buffer.from(parts[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon === decoded.length - 1) fail('BAD_REQUEST', 'malformed Basic credentials: expected base64(email:password) with a non-empty email and password');
  return { email: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function sessionSeconds(body: Doc): number {
  if (body['sessionExpirationSeconds'] === undefined || body['sessionExpirationSeconds'] === null) return DEFAULT_SESSION_SECONDS;
  const s = longField(body, 'sessionExpirationSeconds');
  if (s === undefined || s <= 0) fail('VALIDATION', `sessionExpirationSeconds must be a positive integer: ${String(body['sessionExpirationSeconds'])}`);
  return Math.min(s, MAX_SESSION_SECONDS);
}
