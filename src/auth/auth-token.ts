import { createHmac, randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify } from 'jose';

/** Xenon's issuer claim. */
const ISSUER = 'xn';
const ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const HEADER = Buffer.from('{"typ":"JWT","alg":"HS256"}').toString('base64url');

export type TokenCheck = { ok: true; sub: string; expSeconds: number; iatSeconds?: number } | { ok: false; reason: string };

/**
 * Xenon-compatible auth tokens (xenon-cluster-auth.md C.4): compact JWS, header
 * `{"typ":"JWT","alg":"HS256"}`, claims `iss: "xn"`, `sub: <user documentSelfLink>`, `exp`
 * (seconds). krypton adds a random `jti` (a field of Xenon's Claims class, ignored by its
 * verifier) so two logins never produce the same token and one can be revoked alone, and `iat`
 * (whole seconds, Xenon's Claims.issuedAt) to logins, so a password change can end older sessions.
 * The verifier accepts HS256/384/512 with `typ: JWT`, as Xenon's does, and nothing else.
 */
export class TokenSigner {
  constructor(
    private readonly secret: Uint8Array,
    private readonly nowMicros: () => number,
  ) {}

  /**
   * Signs a token for `sub` valid until `expSeconds` (epoch seconds). Synchronous (node:crypto
   * HMAC, byte-identical to Xenon's for the same claims) so that per-call identities — the
   * migration task's, the system's — can be minted inside synchronous header callbacks.
   */
  sign(sub: string, expSeconds: number, options: { jti?: boolean; issuedAt?: boolean } = {}): string {
    const claims: Record<string, unknown> = { iss: ISSUER, sub, exp: expSeconds };
    if (options.issuedAt) claims['iat'] = Math.floor(this.nowMicros() / 1e6);
    if (options.jti !== false) claims['jti'] = randomBytes(16).toString('base64url');
    const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${signingInput}.${createHmac('sha256', this.secret).update(signingInput).digest('base64url')}`;
  }

  /** Checks signature, algorithm, issuer and expiry; says why a token is refused. */
  async verify(token: string): Promise<TokenCheck> {
    if (token.length > 8192) return { ok: false, reason: 'malformed (too long)' };
    try {
      const { payload } = await jwtVerify(token, this.secret, {
        algorithms: ALGORITHMS,
        typ: 'JWT',
        issuer: ISSUER,
        currentDate: new Date(this.nowMicros() / 1000),
        requiredClaims: ['sub', 'exp'],
      });
      if (typeof payload.sub !== 'string' || payload.sub === '') return { ok: false, reason: 'no subject' };
      const check: TokenCheck = { ok: true, sub: payload.sub, expSeconds: payload.exp! };
      if (typeof payload.iat === 'number') check.iatSeconds = payload.iat;
      return check;
    } catch (err) {
      return { ok: false, reason: describe(err) };
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature (altered, or signed with another key)';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `invalid claim ${err.claim}`;
  return 'malformed';
}
