/**
 * The whole sab path under stress: generator workers in a piscina pool publish random mixes of
 * single events and batches (events larger than half the ring, batches larger than the ring) into
 * one stream while workers are killed at random points (terminated through an aborted run, or
 * exiting their own thread); a verifier follows the stream on the main thread.
 *
 * Some workers die exactly inside the claim protocol (claimed, not committed: 'known' when the
 * claim was recorded, 'ambiguous' when it was not, I9), the case a random kill rarely hits.
 *
 * It checks: sequences 1, 2, 3 ... with no gap and no duplicate; every event is either intact (its
 * checksum and padding match) or a GapNotice; per task the events keep their order and appear once;
 * a batch is all there (contiguous) or not at all; a task that finished has every event; a task that
 * was killed has a prefix of its events; GapNotices appear only where a worker died.
 *
 * Bounded by default; WEFT_STRESS=1 runs 50x more rounds. WEFT_STRESS_SEED replays a run.
 */
import { describe, expect, it } from 'vitest';
import { createFabric, type Fabric, type WeftEvent } from '../../index.js';
import { GapNotice, isGapNotice, type SabTransport } from '../../transports/sab/index.js';
import { layout } from '../../transports/sab/internal.js';
import { collect } from '../helpers/async.js';
import type { GenEvent, GeneratorTask } from './fixtures/generator.js';
import { checksum, padOf, random, STRESS_SCALE, STRESS_SEED } from './helpers.js';

const GENERATOR = new URL('./fixtures/generator.ts', import.meta.url);

interface Outcome {
  task: GeneratorTask;
  shard: number;
  finished: boolean;
}

function verify(events: readonly WeftEvent[], outcomes: Outcome[]): { gaps: number; intact: number } {
  let gaps = 0;
  let intact = 0;
  const byTag = new Map<string, number[]>();
  const batches = new Map<string, { n: number; seqs: number[] }>();
  events.forEach((e, k) => {
    if (e.seq !== k + 1) expect.fail(`event ${k} has seq ${e.seq}`);
  });
  for (const e of events) {
    if (isGapNotice(e.data)) {
      gaps++;
      expect(e.data).toBeInstanceOf(GapNotice);
      expect(e.data.from).toBeLessThanOrEqual(e.seq);
      expect(e.data.to).toBeGreaterThanOrEqual(e.seq);
      continue;
    }
    const d = e.data as GenEvent;
    if (d.sum !== checksum(d.tag, d.i, d.pad.length) || d.pad !== padOf(d.i, d.pad.length)) {
      expect.fail(`event ${e.seq} is damaged: ${JSON.stringify(d).slice(0, 120)}`);
    }
    intact++;
    let list = byTag.get(d.tag);
    if (list === undefined) byTag.set(d.tag, (list = []));
    if (list.length > 0 && d.i <= list[list.length - 1]!)
      expect.fail(`task ${d.tag}: ${d.i} after ${list.at(-1)}`);
    list.push(d.i);
    if (d.b >= 0) {
      const key = `${d.tag}/${d.b}`;
      let b = batches.get(key);
      if (b === undefined) batches.set(key, (b = { n: d.n, seqs: [] }));
      b.seqs.push(e.seq);
    }
  }
  for (const [key, b] of batches) {
    if (b.seqs.length !== b.n) expect.fail(`batch ${key}: ${b.seqs.length} of ${b.n} events`);
    for (let k = 1; k < b.n; k++) if (b.seqs[k] !== b.seqs[0]! + k) expect.fail(`batch ${key} is split`);
  }
  for (const o of outcomes) {
    const got = byTag.get(o.task.tag) ?? [];
    // A prefix of the task's events: 0, 1, ..., m - 1.
    got.forEach((i, k) => {
      if (i !== k) expect.fail(`task ${o.task.tag}: event ${k} is ${i}`);
    });
    if (o.finished) expect(got.length).toBe(o.task.count);
  }
  if (outcomes.every((o) => o.finished)) expect(gaps).toBe(0);
  // A worker that died mid-claim left sequences that must have been reported lost.
  if (outcomes.some((o) => o.task.death === 'known' || o.task.death === 'ambiguous')) {
    expect(gaps).toBeGreaterThan(0);
  }
  return { gaps, intact };
}

/** Prints the transport's state when a round hangs (a protocol bug would show here). */
function dumpState(fabric: Fabric, stream: string): void {
  const t = fabric.transport as SabTransport;
  const s = t.stream(stream, {});
  console.error(
    `stress round stuck: stream next ${s.next}, claimed ${s.claimedCount}, ended ${s.isEnded}; shards:`,
    t.drainer.shards.map((sh) => ({
      index: sh.index,
      owner: sh.owner,
      dead: sh.dead,
      available: sh.reader.available(),
      blocked: sh.blocked === null ? null : { first: sh.blocked.first, count: sh.blocked.count },
      intent: [
        Atomics.load(sh.i32, layout.SH_INTENT_STREAM),
        Number(Atomics.load(sh.i64, layout.SH_INTENT_FIRST_I64)),
        Atomics.load(sh.i32, layout.SH_INTENT_COUNT),
      ],
    })),
  );
}

describe('sab fabric under stress', () => {
  it('random publishers killed at random points: one dense order, every event intact or reported lost', async () => {
    const rounds = 3 * STRESS_SCALE;
    const shards = 3;
    const rand = random(STRESS_SEED);
    console.log(`fabric stress: ${rounds} rounds, seed ${STRESS_SEED}`);
    const fabric = await createFabric({ transport: 'sab', ringBytes: 16_384 });
    const pool = await fabric.publishers({ filename: GENERATOR, shards });
    let totalGaps = 0;
    let totalIntact = 0;
    let kills = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        const name = `stress-${STRESS_SEED}-${round}`;
        const stream = fabric.stream(name);
        const follower = collect(stream.follow({ from: 'start' }));
        const outcomes: Outcome[] = [];
        const runs = Array.from({ length: shards }, async (_, shard) => {
          for (let t = 0; t < 2; t++) {
            const count = 500 + Math.floor(rand() * 2500);
            const mode = rand();
            const task: GeneratorTask = {
              stream: name,
              tag: `r${round}s${shard}t${t}`,
              seed: Math.floor(rand() * 2 ** 31),
              count,
              maxBatch: 1 + Math.floor(rand() * 60),
              maxPad: rand() < 0.5 ? 600 : 12_000,
              ...(mode < 0.3
                ? {
                    exitAt: Math.floor(rand() * count),
                    death: mode < 0.1 ? 'exit' : mode < 0.2 ? 'known' : 'ambiguous',
                  }
                : {}),
            };
            const ac = new AbortController();
            if (mode >= 0.3 && mode < 0.45) setTimeout(() => ac.abort(), rand() * 40);
            const outcome: Outcome = { task, shard, finished: false };
            outcomes.push(outcome);
            try {
              await pool.run({ shard, ...task }, { signal: ac.signal });
              outcome.finished = true;
            } catch {
              kills++;
            }
          }
        });
        const watchdog = setTimeout(() => dumpState(fabric, name), 20_000);
        await Promise.all(runs);
        await stream.close();
        expect(await follower.ended).toBeUndefined();
        clearTimeout(watchdog);
        const { gaps, intact } = verify(follower.received, outcomes);
        totalGaps += gaps;
        totalIntact += intact;
      }
    } finally {
      await pool.close();
      await fabric.close();
    }
    console.log(
      `fabric stress: ${totalIntact} events intact, ${totalGaps} reported lost, ${kills} workers killed`,
    );
    expect(totalIntact).toBeGreaterThan(0);
  });
});
