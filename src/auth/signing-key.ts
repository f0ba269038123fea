import { createPrivateKey, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { kryptonError } from '../core/errors.js';

/** File in the sandbox holding the generated key when no `--keyFile` is given. */
export const SANDBOX_KEY_FILE = 'auth-signing.key';
const GENERATED_KEY_BYTES = 64;

export interface SigningKey {
  /** HMAC secret for HS256 tokens. */
  secret: Uint8Array;
  /** Where it came from, for the startup log (never the key itself). */
  origin: string;
}

/**
 * The token signing secret (xenon-cluster-auth.md C.4). With `--keyFile` it is the DER encoding
 * (PKCS#8) of that private key, exactly as Xenon derives it, so hosts — krypton or Xenon — given
 * the same key file accept each other's tokens. Without one, Xenon used the public constant
 * `BAD_SECRET_NOT_SECURE`; krypton generates 64 random bytes into the sandbox on first start
 * (mode 0600) and reuses them afterwards, so tokens survive restarts but no other host accepts them.
 */
export function loadSigningKey(options: { keyFile?: string | undefined; keyPassphrase?: string | undefined; sandbox: string }): SigningKey {
  if (options.keyFile) return fromKeyFile(options.keyFile, options.keyPassphrase);
  return fromSandbox(options.sandbox);
}

function fromKeyFile(keyFile: string, passphrase: string | undefined): SigningKey {
  const path = resolve(keyFile);
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (cause) {
    throw kryptonError('VALIDATION', `cannot read --keyFile=${keyFile}: ${(cause as Error).message}`, { cause });
  }
  const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem.toString('latin1'));
  if (encrypted && passphrase === undefined) throw kryptonError('VALIDATION', `cannot load --keyFile=${keyFile}: the key is encrypted; give --keyPassphrase`);
  try {
    const key = createPrivateKey({ key: pem, format: 'pem', ...(passphrase !== undefined ? { passphrase } : {}) });
    const der = key.export({ type: 'pkcs8', format: 'der' });
    return { secret: new Uint8Array(der), origin: `--keyFile=${path}` };
  } catch (cause) {
    const why = encrypted ? 'wrong --keyPassphrase' : 'not a PEM private key (PKCS#8 expected)';
    throw kryptonError('VALIDATION', `cannot load --keyFile=${keyFile}: ${why} (${(cause as Error).message})`, { cause });
  }
}

function fromSandbox(sandbox: string): SigningKey {
  const path = join(resolve(sandbox), SANDBOX_KEY_FILE);
  if (!existsSync(path)) {
    mkdirSync(resolve(sandbox), { recursive: true });
    try {
      writeFileSync(path, `${randomBytes(GENERATED_KEY_BYTES).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw kryptonError('STORAGE', `cannot write the generated signing key ${path}: ${(cause as Error).message}`, { cause });
    }
  }
  const secret = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  if (secret.length < 32) throw kryptonError('STORAGE', `the signing key ${path} is damaged (${secret.length} bytes); delete it to generate a new one (logs everyone out)`);
  try {
    chmodSync(path, 0o600);
  } catch {
    /* best effort on filesystems without modes */
  }
  return { secret: new Uint8Array(secret), origin: `generated ${path}` };
}
