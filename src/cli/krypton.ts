#!/usr/bin/env node
import { KryptonError } from '../core/errors.js';
import { UsageError } from './flags.js';
import { hostUsage, runHost } from './host-command.js';
import { migrateUsage } from './migrate-command.js';
import { cutoverUsage } from './cutover-command.js';

const HELP = `krypton — Xenon-compatible document host built for side-by-side upgrades

usage:
  krypton host [--port=8000] [--id=ID] [--sandbox=DIR] [...]   start a host (krypton host --help)
  krypton migrate --source=URI --destination=URI --factory=LINK  migrate a factory (krypton migrate --help)
  krypton cutover --source=URI --destination=URI --factory=LINK  freeze, final delta, verify, cut over (krypton cutover --help)
  krypton help

${hostUsage()}

${migrateUsage()}

${cutoverUsage()}
`;

const wantsHelp = (args: readonly string[]): boolean => args.includes('--help') || args.includes('-h');

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'host':
      if (wantsHelp(rest)) return print(`${hostUsage()}\n`);
      return runHost(rest);
    case 'migrate': {
      if (wantsHelp(rest)) return print(`${migrateUsage()}\n`);
      const { runMigrate } = await import('./migrate-command.js');
      return runMigrate(rest);
    }
    case 'cutover': {
      if (wantsHelp(rest)) return print(`${cutoverUsage()}\n`);
      const { runCutover } = await import('./cutover-command.js');
      return runCutover(rest);
    }
    case 'help':
    case '--help':
    case undefined:
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}

function print(text: string): number {
  process.stdout.write(text);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`krypton: ${err.message}\nRun 'krypton help' for the flags.\n`);
      process.exit(2);
    }
    // Errors a user can act on (a refused request, an unreachable host) print their message only.
    const known = err instanceof KryptonError;
    process.stderr.write(`krypton: ${known ? err.message : ((err as Error).stack ?? String(err))}\n`);
    process.exit(1);
  },
);
