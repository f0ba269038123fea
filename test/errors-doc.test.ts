import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errors } from '../src/core/errors.js';
import { ROOT } from './support/hosts.js';

it('docs/errors.md lists exactly the error catalogue, with the same statuses', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `(KRY_ERR_\w+)` \| (\d+) \| (-?\d+) \|$/gm)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
  const code = Object.values(Errors).map((e) => [e.code, e.status, e.xenonCode]);
  assert.deepEqual(rows, code);
});
