import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dropDepartedCheckpoints, startTime } from '../src/migration/migration-runner.js';

describe('migration checkpoints (DECISIONS: resume from the minimum over nodes)', () => {
  const cp = (updateTimeMicros: number) => ({ updateTimeMicros, link: `/core/examples/at-${updateTimeMicros}` });

  it('starts a run from the lowest checkpoint, of a node that left the source group too', () => {
    // http://b left after its checkpoint at 50; its documents now belong to a or c, which are further on.
    const state = { latestSourceUpdateTimeMicros: 500, checkpoints: { 'http://a': cp(100), 'http://b': cp(50), 'http://c': cp(300) } };
    assert.equal(startTime(state), 50);
  });

  it('starts a first run from the task lower bound (latestSourceUpdateTimeMicros)', () => {
    assert.equal(startTime({ latestSourceUpdateTimeMicros: 7, checkpoints: {} }), 7);
  });

  it('drops the checkpoints of departed nodes once a run covered their range', () => {
    const state = { checkpoints: { 'http://a': cp(100), 'http://b': cp(50), 'http://c': cp(300) } };
    dropDepartedCheckpoints(state, ['http://a', 'http://c', 'http://d']);
    assert.deepEqual(Object.keys(state.checkpoints).sort(), ['http://a', 'http://c']);
    assert.equal(startTime({ ...state, latestSourceUpdateTimeMicros: 0 }), 100);
  });
});
