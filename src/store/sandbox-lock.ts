import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fail, kryptonError } from '../core/errors.js';

/** The lock file (an empty SQLite database) and the note saying who holds it. */
const LOCK_FILE = 'krypton.lock';
const HOLDER_FILE = 'krypton.lock.holder';

/**
 * One host per sandbox. Two hosts on one sandbox would each replay and clear the other's commit
 * log and share a host id, so the second one is refused. The lock is SQLite's exclusive lock on
 * `krypton.lock` (a POSIX record lock underneath): the operating system drops it when the holder
 * exits, even by kill -9, so a crash never leaves a stale lock behind, and a second host in the
 * same process is refused too.
 */
export class SandboxLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly dir: string,
  ) {}

  /** Takes the sandbox `dir` (created if needed), or throws KRY_ERR_UNAVAILABLE naming the holder. */
  static acquire(dir: string): SandboxLock {
    let db: Database.Database;
    try {
      mkdirSync(dir, { recursive: true });
      db = new Database(join(dir, LOCK_FILE), { timeout: 0 });
    } catch (cause) {
      throw kryptonError('STORAGE', `cannot open the sandbox ${dir}: ${(cause as Error).message}`, { cause });
    }
    try {
      db.pragma('journal_mode = OFF');
      db.pragma('locking_mode = EXCLUSIVE');
      // In exclusive locking mode the lock taken by this transaction is kept until the connection closes.
      db.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (cause) {
      db.close();
      if ((cause as { code?: string }).code !== 'SQLITE_BUSY') {
        throw kryptonError('STORAGE', `cannot lock the sandbox ${dir}: ${(cause as Error).message}`, { cause });
      }
      fail('UNAVAILABLE', `the sandbox ${dir} is in use by another krypton host${holderOf(dir)}; stop that host or give this one another --sandbox`);
    }
    try {
      writeFileSync(join(dir, HOLDER_FILE), `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() })}\n`);
    } catch {
      // Only the message of a refused host reads it: without it, that message names no pid.
    }
    return new SandboxLock(db, dir);
  }

  /** Lets the next host in. */
  release(): void {
    if (!this.db.open) return;
    rmSync(join(this.dir, HOLDER_FILE), { force: true });
    this.db.close();
  }
}

/** ` (pid N, started T)` from the holder's note, or nothing when it cannot be read. */
function holderOf(dir: string): string {
  try {
    const h = JSON.parse(readFileSync(join(dir, HOLDER_FILE), 'utf8')) as { pid?: unknown; startedAt?: unknown };
    return typeof h.pid === 'number' ? ` (pid ${h.pid}${typeof h.startedAt === 'string' ? `, started ${h.startedAt}` : ''})` : '';
  } catch {
    return '';
  }
}
