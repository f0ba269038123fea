import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Salted, slow password hashes (scrypt), stored in the credentials' `privateKey` field in a PHC-like
 * string: `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64url). Xenon stored the plain password there.
 *
 * Cost: N = 2^15, r = 8 (32 MiB, ~110 ms on the CI machine) — below OWASP's 2^17 so that a login
 * stays well under a second on small machines; at most MAX_CONCURRENT hashes run at once so a
 * burst of logins cannot exhaust memory.
 */
export const HASH_PREFIX = '$scrypt$';
const DEFAULT_PARAMS = { ln: 15, r: 8, p: 1 };
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
/** Accepted parameter ranges: a stored hash with absurd parameters must not turn a login into a DoS. */
const LIMITS = { ln: [10, 20], r: [1, 16], p: [1, 4] } as const;
const MAX_CONCURRENT = 2;

interface Params {
  ln: number;
  r: number;
  p: number;
}

/** True when the value is already one of our hashes (migrated credentials keep their hash). */
export function isPasswordHash(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(HASH_PREFIX) && parseHash(value) !== undefined;
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string, params: Params = DEFAULT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, params);
  return `${HASH_PREFIX}ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Constant-time comparison of a password with a stored hash; false for anything malformed. */
export async function verifyPassword(password: string, stored: unknown): Promise<boolean> {
  const parsed = typeof stored === 'string' ? parseHash(stored) : undefined;
  if (!parsed) {
    // No usable hash: spend the same time as a real check, so timing does not tell such users apart.
    await dummyVerify(password);
    return false;
  }
  const key = await derive(password, parsed.salt, parsed.params);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

/** Burns the same time as a verification: used for unknown users so timing does not reveal them. */
export async function dummyVerify(password: string): Promise<void> {
  await derive(password, Buffer.alloc(SALT_LENGTH), DEFAULT_PARAMS);
}

function parseHash(s: string): { params: Params; salt: Buffer; key: Buffer } | undefined {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(s);
  if (!m) return undefined;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  for (const k of ['ln', 'r', 'p'] as const) if (params[k] < LIMITS[k][0] || params[k] > LIMITS[k][1]) return undefined;
  const salt = Buffer.from(m[4]!, 'base64url');
  const key = Buffer.from(m[5]!, 'base64url');
  if (salt.length < 8 || key.length < 16) return undefined;
  return { params, salt, key };
}

let running = 0;
const waiting: Array<() => void> = [];

async function derive(password: string, salt: Buffer, params: Params): Promise<Buffer> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    const N = 2 ** params.ln;
    const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * 2 + 1024 * 1024 };
    return await new Promise<Buffer>((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))));
  } finally {
    running--;
    waiting.shift()?.();
  }
}
