/** A `--name=value` flag spec (Xenon's argument syntax). */
export interface FlagSpec {
  type: 'string' | 'int' | 'bool' | 'list';
  /** Repeatable flags collect every occurrence (e.g. --services). */
  repeatable?: boolean;
  help: string;
  /** Accepted for Xenon compatibility; has no effect in krypton. */
  ignored?: boolean;
}

export class UsageError extends Error {}

export type FlagValues = Record<string, string | number | boolean | string[]>;

/**
 * Parses `--name=value` arguments. Unlike Xenon, unknown flags are refused (a typo must not go
 * unnoticed); a bare `--flag` is accepted for booleans only.
 */
export function parseFlags(args: readonly string[], specs: Readonly<Record<string, FlagSpec>>): FlagValues {
  const out: FlagValues = {};
  for (const arg of args) {
    if (!arg.startsWith('--')) throw new UsageError(`Arguments must start with --: ${arg}`);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown flag --${name}`);
    if (eq < 0 && spec.type !== 'bool') throw new UsageError(`--${name} must be followed by an equals sign and a value`);
    const raw = eq < 0 ? 'true' : arg.slice(eq + 1);
    out[name] = convert(name, raw, spec, out[name]);
  }
  return out;
}

function convert(name: string, raw: string, spec: FlagSpec, previous: FlagValues[string] | undefined): string | number | boolean | string[] {
  switch (spec.type) {
    case 'int': {
      const n = /^0x[0-9a-f]+$/i.test(raw) ? parseInt(raw, 16) : raw.trim() === '' ? Number.NaN : Number(raw);
      if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer: ${raw}`);
      if (n < 0) throw new UsageError(`--${name} must not be negative: ${raw}`);
      return n;
    }
    case 'bool':
      if (!/^(true|false)$/i.test(raw)) throw new UsageError(`--${name} must be true or false: ${raw}`);
      return raw.toLowerCase() === 'true';
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (items.length === 0) throw new UsageError(`--${name} must not be empty`);
      return spec.repeatable && Array.isArray(previous) ? [...previous, ...items] : items;
    }
    default:
      if (raw === '') throw new UsageError(`--${name} must not be empty`);
      return raw;
  }
}

export function usage(specs: Readonly<Record<string, FlagSpec>>): string {
  return Object.entries(specs)
    .map(([n, s]) => `  --${n}=<${s.type}>${' '.repeat(Math.max(1, 34 - n.length - s.type.length))}${s.help}${s.ignored ? ' (accepted for Xenon compatibility; no effect)' : ''}`)
    .join('\n');
}
