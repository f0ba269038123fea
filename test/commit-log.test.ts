import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommitLog, decodeRecord, encodeRecord, encodeRecordParts, readRecords } from '../src/store/commit-log.js';
import type { WriteOp } from '../src/store/write-ops.js';

const doc = (link: string, extra: Record<string, unknown> = {}) => JSON.stringify({ name: 'n\n"x"\\', ...extra, documentSelfLink: link });

function write(link: string, over: Partial<Extract<WriteOp, { t: 'write' }>['v']> = {}, knownNew = true): WriteOp {
  return {
    t: 'write',
    v: { link, factory: '/core/examples', version: 2, kind: 'k', updateTime: 1795307195519597, action: 'PATCH', expiration: 0, owner: 'host-a', authPrincipal: null, json: doc(link), ...over },
    retention: { limit: 1000, floor: 500 },
    knownNew,
  };
}

describe('commit log records', () => {
  it('decode(encode(ops)) gives the ops back, whatever characters links, owners and documents hold', () => {
    const ops: WriteOp[] = [
      { t: 'purge', link: '/core/examples/a' },
      write('/core/examples/q"uo\\te\u0001é', { owner: 'o"wner', authPrincipal: '/core/authz/users/a\\b', kind: null, fixedItemNameFields: ['keyValues'] }, false),
      write('/core/examples/b', { expiration: 1795307195519597 }),
      { t: 'meta', key: 'k', value: 'v"' },
    ];
    const text = encodeRecord(42, ops);
    assert.equal(text.split('\n').length, 4, 'a header line, then one line per document, each ended by a newline');
    const back = decodeRecord(text);
    assert.deepEqual(back, ops);
    for (const op of back) if (op.t === 'write') assert.deepEqual(JSON.parse(op.v.json), JSON.parse(doc(op.v.link)));
    // The parts a writer thread is sent for an unlogged write: the header, then each document's text.
    const parts = encodeRecordParts(42, ops);
    assert.deepEqual(parts, text.slice(0, -1).split('\n'));
    assert.deepEqual(decodeRecord(parts), ops);
    assert.throws(() => decodeRecord(parts.slice(0, -1)), /cut short/);
  });

  it('stops at a record cut short, keeping the records before it', () => {
    const one = encodeRecord(1, [write('/core/examples/one')]);
    const two = encodeRecord(2, [write('/core/examples/two'), write('/core/examples/three')]);
    for (const cut of [5, two.indexOf('\n') + 1, two.length - 1]) {
      const seqs = [...readRecords(one + two.slice(0, cut))].map((r) => r.s);
      assert.deepEqual(seqs, [1], `cut at ${cut}`);
    }
    assert.deepEqual(
      [...readRecords(one + two)].map((r) => r.s),
      [1, 2],
    );
    assert.throws(() => decodeRecord(two.slice(0, -1)), /cut short/);
  });

  it('leaves out of a record the built-ins its document holds, and reads them back from the document', () => {
    const built = { documentVersion: 3, documentKind: 'k', documentSelfLink: '/core/examples/d"q', documentUpdateTimeMicros: 1795307195519597, documentUpdateAction: 'PUT' };
    const full = { ...built, documentExpirationTimeMicros: 1795307195519999, documentOwner: 'host-b', documentAuthPrincipalLink: '/core/authz/users/a' };
    const v = (json: string, d: Record<string, unknown>) => ({
      link: d['documentSelfLink'] as string,
      factory: '/core/examples',
      version: d['documentVersion'] as number,
      kind: (d['documentKind'] as string | undefined) ?? null,
      updateTime: d['documentUpdateTimeMicros'] as number,
      action: d['documentUpdateAction'] as string,
      expiration: (d['documentExpirationTimeMicros'] as number | undefined) ?? 0,
      owner: (d['documentOwner'] as string | undefined) ?? null,
      authPrincipal: (d['documentAuthPrincipalLink'] as string | undefined) ?? null,
      json,
      inJson: true,
    });
    const docs = [{ name: 'a\nb', ...full }, { ...built }];
    const ops: WriteOp[] = docs.map((d, i) => ({ t: 'write', v: v(JSON.stringify(d), d), knownNew: i === 0, ...(i === 0 ? { retention: { limit: 10, floor: 5 } } : {}) }));
    const text = encodeRecord(7, ops);
    assert.ok(!text.split('\n')[0]!.includes('host-b'), 'the header does not repeat the owner the document holds');
    const back = decodeRecord(text);
    assert.deepEqual(decodeRecord(encodeRecordParts(7, ops)), back);
    assert.deepEqual(
      back,
      ops.map((op, i) => (op.t === 'write' ? { ...op, v: { ...op.v, parsed: docs[i] } } : op)),
    );
    // A document line that is not a document (cut short, or damaged) ends the records there.
    const broken = `${text.split('\n')[0]}\n{"name":"cut\n${JSON.stringify(docs[1])}\n`;
    assert.deepEqual([...readRecords(broken)], []);
  });

  it("writes an import's run of alike writes once in the parts a writer thread is sent, and reads every write back", () => {
    const alike = (i: number): WriteOp => {
      const d = {
        name: `n${i}`,
        documentVersion: 0,
        documentKind: 'k',
        documentSelfLink: `/core/examples/r${i}`,
        documentUpdateTimeMicros: 1795307195519597 + i,
        documentUpdateAction: 'POST',
        documentOwner: 'h',
      };
      const v = {
        link: d.documentSelfLink,
        factory: '/core/examples',
        version: 0,
        kind: 'k',
        updateTime: d.documentUpdateTimeMicros,
        action: 'POST',
        expiration: 0,
        owner: 'h',
        authPrincipal: null,
        json: JSON.stringify(d),
        inJson: true,
      };
      return { t: 'write', v, knownNew: true, retention: { limit: 1000, floor: 500 } };
    };
    // Three alike, a purge, two alike, one that differs (not known new), one alike again.
    const ops: WriteOp[] = [alike(0), alike(1), alike(2), { t: 'purge', link: '/core/examples/r9' }, alike(3), alike(4), { ...alike(5), knownNew: false }, alike(6)];
    const parts = encodeRecordParts(0, ops);
    const header = JSON.parse(parts[0]!) as { o: Array<{ t: string; m?: number }> };
    assert.deepEqual(
      header.o.map((e) => `${e.t}${e.m ?? 1}`),
      ['d3', 'purge1', 'd2', 'd1', 'd1'],
    );
    assert.equal(parts.length, 1 + 7, 'one line for each written document');
    const fromParts = decodeRecord(parts);
    assert.equal(fromParts.length, ops.length);
    // The log's own text keeps one entry a write; both read back as the same ops.
    assert.deepEqual(fromParts, decodeRecord(encodeRecord(0, ops)));
    assert.deepEqual(
      fromParts.map((op) => (op.t === 'write' ? `${op.v.link}:${op.knownNew}` : op.t)),
      ['/core/examples/r0:true', '/core/examples/r1:true', '/core/examples/r2:true', 'purge', '/core/examples/r3:true', '/core/examples/r4:true', '/core/examples/r5:false', '/core/examples/r6:true'],
    );
    assert.ok(!JSON.parse(encodeRecord(0, ops).split('\n')[0]!).o.some((e: { m?: number }) => e.m !== undefined), 'the log text has no runs');
    assert.throws(() => decodeRecord(parts.slice(0, -1)), /cut short/);
  });

  it('reads the one-line records release 0.1.0 wrote', () => {
    const v = { link: '/core/examples/old', factory: '/core/examples', version: 0, kind: 'k', updateTime: 5, action: 'POST', expiration: 0, owner: 'h', authPrincipal: null };
    const line = `{"s":9,"o":[{"t":"write","k":true,"r":{"limit":1000,"floor":500},"v":${JSON.stringify(v)},"d":{"name":"old","documentSelfLink":"/core/examples/old"}}]}\n`;
    const [rec] = [...readRecords(line)];
    assert.equal(rec!.s, 9);
    assert.deepEqual(rec!.o, [{ t: 'write', v: { ...v, json: '{"name":"old","documentSelfLink":"/core/examples/old"}' }, knownNew: true, retention: { limit: 1000, floor: 500 } }]);
  });

  it('after a failed append, starts a new segment: a torn tail hides no record appended later', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'krypton-log-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const log = CommitLog.open(dir, 0);
    log.append(1, encodeRecord(1, [write('/core/examples/one')]));
    // The file breaks under the log (as an I/O error would): the append fails and is not acknowledged…
    closeSync((log as unknown as { fd: number }).fd);
    assert.throws(() => log.append(2, encodeRecord(2, [write('/core/examples/lost')])), /EBADF/);
    // …and may have left part of its record behind.
    const [first] = readdirSync(dir);
    appendFileSync(join(dir, first!), encodeRecord(2, [write('/core/examples/lost')]).slice(0, 40));
    // The next appends work, in a segment of their own.
    log.append(2, encodeRecord(2, [write('/core/examples/two')]));
    log.append(3, encodeRecord(3, [write('/core/examples/three')]));
    assert.equal(readdirSync(dir).length, 2);
    const links = [...CommitLog.records(dir, 0)].map((r) => [r.s, r.o[0]!.t === 'write' ? r.o[0]!.v.link : '']);
    assert.deepEqual(links, [
      [1, '/core/examples/one'],
      [2, '/core/examples/two'],
      [3, '/core/examples/three'],
    ]);
    // Released once applied: the closed segment goes when everything in it is in the index.
    log.release(1);
    assert.equal(readdirSync(dir).length, 1);
    log.close(true);
    assert.equal(readdirSync(dir).length, 0);
  });
});
