/**
 * The drain on one thread, stepped by hand: merging shards into one dense order, whole batches,
 * and what happens when a publisher dies at each step of the publish protocol (I8, I9).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, FrameError, type WeftEvent } from '../../index.js';
import { GapNotice, isGapNotice } from '../../transports/sab/index.js';
import { FLAG_RESET, SH_DECODER_RESET, SH_OWNER } from '../../transports/sab/ring-layout.js';
import { FakeShard, type Rig, range, rig, seqs } from './helpers.js';

let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

async function setup(options: Record<string, unknown> = {}): Promise<Rig> {
  r = await rig(options);
  return r;
}

function events(r: Rig, name: string): WeftEvent[] {
  const log = r.transport.stream(name, {}).log;
  return log.slice(log.firstSeq);
}

describe('merging shards', () => {
  it('a record becomes events of its stream with their data and topics', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    expect(a.publish('s', [{ x: 1 }, 'two', [3]], 'orders.created')).toBe(1);
    r.drain();
    const got = events(r, 's');
    expect(got.map((e) => [e.seq, e.data, e.topic])).toEqual([
      [1, { x: 1 }, 'orders.created'],
      [2, 'two', 'orders.created'],
      [3, [3], 'orders.created'],
    ]);
    expect(got.every((e) => e.stream === 's')).toBe(true);
  });

  it('a later claim committed first waits for the earlier one: one dense order', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    const b = new FakeShard(r.transport);
    a.body('s', ['a1', 'a2', 'a3']).announce().claim().record(); // claims 1..3, not committed
    b.publish('s', ['b1', 'b2']); // claims 4..5, committed
    r.drain();
    expect(events(r, 's')).toEqual([]); // 4..5 wait for 1..3
    a.commit().done();
    r.drain();
    expect(events(r, 's').map((e) => [e.seq, e.data])).toEqual([
      [1, 'a1'],
      [2, 'a2'],
      [3, 'a3'],
      [4, 'b1'],
      [5, 'b2'],
    ]);
  });

  it('main-thread publishes claim from the same counter and resolve once visible', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    const s = r.fabric.stream('s');
    expect(await s.publish('m1')).toBe(1);
    a.body('s', ['w2']).announce().claim().record(); // claims 2
    let resolved = 0;
    const p = s.publish('m3').then((seq) => (resolved = seq));
    await new Promise((res) => setImmediate(res));
    expect(resolved).toBe(0); // 3 is held behind 2
    a.commit().done();
    r.drain();
    expect(await p).toBe(3);
    expect(events(r, 's').map((e) => e.data)).toEqual(['m1', 'w2', 'm3']);
  });

  it('a batch becomes visible whole: the log never ends inside a batch', async () => {
    const r = await setup();
    const shards = [new FakeShard(r.transport, 65536), new FakeShard(r.transport, 65536)];
    const batchEnds = new Set<number>([0]);
    // Interleave claims and commits so that batches arrive out of order.
    for (let i = 0; i < 40; i++) {
      const shard = shards[i % 2]!;
      const n = 1 + ((i * 7) % 5);
      shard.body('s', range(1, n)).announce().claim().record();
      batchEnds.add(shard.first + n - 1);
      shard.commit().done();
      if (i % 3 === 2) {
        r.drain();
        expect(batchEnds.has(r.transport.stream('s', {}).log.nextSeq - 1)).toBe(true);
      }
    }
    r.drain();
    expect(seqs(events(r, 's'))).toEqual(range(1, Math.max(...batchEnds)));
  });

  it('a batch larger than the ring goes as fragments and appears whole', async () => {
    const r = await setup({ ringBytes: 4096 });
    const t = r.transport;
    const { ShardProducer } = await import('../../transports/sab/producer.js');
    const shard = t.drainer.addShard(4096);
    const p = new ShardProducer(
      {
        version: 1,
        control: t.control.sab,
        shard: shard.sab,
        shardIndex: shard.index,
        shardNumber: 0,
        shards: 1,
        ringBytes: 4096,
        broadcast: null,
        followRingBytes: 0,
        maxFollowers: 0,
        slowReader: 'block',
      },
      4242,
    );
    const id = t.stream('big', {}).id;
    // 3 events of 5 KB each: one 15 KB body in a 4 KB ring, so 4+ fragments.
    const data = ['a', 'b', 'c'].map((c) => c.repeat(5000));
    let fragmentsSeen = 0;
    const first = await writeFragmented(t, p, id, data, () => {
      // Between fragments nothing of the batch is visible.
      if (t.stream('big', {}).log.nextSeq === 1) fragmentsSeen++;
    });
    r.drain();
    const got = events(r, 'big');
    expect(first).toBe(1);
    expect(fragmentsSeen).toBeGreaterThanOrEqual(3);
    expect(got.map((e) => e.data)).toEqual(data);
  });
});

/** Drives a fragmented write on one thread: drains whenever the producer would wait for room. */
async function writeFragmented(
  t: Rig['transport'],
  p: import('../../transports/sab/producer.js').ShardProducer,
  id: number,
  data: string[],
  onWait: () => void,
): Promise<number> {
  // The producer's waitForRoom uses Atomics.wait with a stop callback; on the main thread we make
  // room before each wait by patching the writer's wait to drain instead.
  const { RingWriter } = await import('../../transports/sab/ring.js');
  const proto = RingWriter.prototype as unknown as {
    waitForRoom: (span: number, stop: () => boolean) => boolean;
    hasRoom: (span: number) => boolean;
  };
  const original = proto.waitForRoom;
  proto.waitForRoom = function (this: typeof proto, span: number) {
    onWait();
    for (let i = 0; i < 100 && !this.hasRoom(span); i++) t.drainer.pass();
    return this.hasRoom(span);
  };
  try {
    return p.write(
      id,
      data.map((d) => ({ data: d })),
      true,
    );
  } finally {
    proto.waitForRoom = original;
  }
}

describe('dead publishers', () => {
  it('died after claiming, before committing: the claimed sequences become GapNotice events', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    const b = new FakeShard(r.transport);
    a.publish('s', ['a1']); // 1
    a.body('s', ['x', 'y', 'z']).announce().claim().record(); // claims 2..4, dies here
    b.publish('s', ['b5']); // 5
    r.drain();
    expect(seqs(events(r, 's'))).toEqual([1]);
    a.die();
    r.drain();
    const got = events(r, 's');
    expect(seqs(got)).toEqual([1, 2, 3, 4, 5]);
    const notices = got.slice(1, 4).map((e) => e.data);
    expect(notices.every(isGapNotice)).toBe(true);
    const n = notices[0] as GapNotice;
    expect(n).toBeInstanceOf(GapNotice);
    expect(n).toMatchObject({ stream: 's', from: 2, to: 4, reason: 'publisher-exit', shard: a.shard.index });
    expect(n.code).toBe('WEFT_ERR_GAP');
    expect(got[4]!.data).toBe('b5');
    // The ring is free for the next owner.
    expect(Atomics.load(a.shard.i32, SH_OWNER)).toBe(0);
  });

  it('died after committing but before clearing its claim: the events are kept, no gap', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    a.body('s', ['x', 'y']).announce().claim().record().commit(); // no done()
    a.die();
    r.drain();
    expect(events(r, 's').map((e) => e.data)).toEqual(['x', 'y']);
  });

  it('died between announcing and recording its claim, having claimed: found by elimination and reported', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    const b = new FakeShard(r.transport);
    a.body('s', ['x', 'y']).announce().claim(); // claims 1..2; INTENT_FIRST still 0
    b.publish('s', ['b3']); // 3, held behind 1..2
    a.die();
    r.drain();
    await new Promise((res) => setTimeout(res, 10)); // the search runs at most every few ms
    r.drain();
    const got = events(r, 's');
    expect(seqs(got)).toEqual([1, 2, 3]);
    expect(isGapNotice(got[0]!.data)).toBe(true);
    expect(got[0]!.data).toMatchObject({ from: 1, to: 2, reason: 'publisher-exit' });
    expect(got[2]!.data).toBe('b3');
  });

  it('died between announcing and claiming: nothing was claimed, so nothing is reported', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    const b = new FakeShard(r.transport);
    a.body('s', ['x']).announce(); // no claim
    a.die();
    b.publish('s', ['b1']);
    r.drain();
    await new Promise((res) => setTimeout(res, 10));
    r.drain();
    expect(events(r, 's').map((e) => e.data)).toEqual(['b1']);
  });

  it('the search never fills a sequence a live publisher is about to commit', async () => {
    const r = await setup();
    const dead = new FakeShard(r.transport);
    const live = new FakeShard(r.transport);
    dead.body('s', ['d']).announce().claim(); // claims 1, ambiguous
    live.body('s', ['l2', 'l3']).announce().claim().record(); // claims 2..3, in flight
    const other = new FakeShard(r.transport);
    other.publish('s', ['o4']);
    dead.die();
    r.drain();
    await new Promise((res) => setTimeout(res, 10));
    r.drain();
    // 1 is the dead one's: reported. 2..3 are in flight: not filled.
    const got = events(r, 's');
    expect(seqs(got)).toEqual([1]);
    expect(isGapNotice(got[0]!.data)).toBe(true);
    live.commit().done();
    r.drain();
    expect(events(r, 's').map((e) => (isGapNotice(e.data) ? 'gap' : e.data))).toEqual([
      'gap',
      'l2',
      'l3',
      'o4',
    ]);
  });

  it('a torn record (bytes written, not committed) is never seen; the next owner writes over it', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    a.publish('s', ['ok']);
    a.body('s', ['torn']); // written past WRITE_POS, no claim
    a.die();
    r.drain();
    expect(Atomics.load(a.shard.i32, SH_OWNER)).toBe(0);
    // A new producer on the same ring (as piscina's replacement thread would be).
    const { ShardProducer } = await import('../../transports/sab/producer.js');
    const t = r.transport;
    const p = new ShardProducer(
      {
        version: 1,
        control: t.control.sab,
        shard: a.shard.sab,
        shardIndex: a.shard.index,
        shardNumber: 0,
        shards: 1,
        ringBytes: 4096,
        broadcast: null,
        followRingBytes: 0,
        maxFollowers: 0,
        slowReader: 'block',
      },
      777,
    );
    expect(p.write(t.stream('s', {}).id, [{ data: { after: 1 } }, { data: { after: 2 } }], true)).toBe(2);
    r.drain();
    expect(events(r, 's').map((e) => e.data)).toEqual(['ok', { after: 1 }, { after: 2 }]);
  });

  it('closing a stream waits for claims in flight, then ends it; a dead claim does not hold it forever', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    const b = new FakeShard(r.transport);
    const s = r.fabric.stream('s');
    a.body('s', ['a1']).announce().claim().record(); // 1, in flight
    b.body('s', ['b2']).announce().claim().record(); // 2, in flight; b will die
    let closed = false;
    const closing = s.close().then(() => (closed = true));
    r.drain();
    expect(closed).toBe(false);
    a.commit().done();
    r.drain();
    await new Promise((res) => setImmediate(res));
    expect(closed).toBe(false); // 2 is still claimed
    b.die();
    r.drain();
    await closing;
    const got = events(r, 's');
    expect(got.map((e) => (isGapNotice(e.data) ? 'gap' : e.data))).toEqual(['a1', 'gap']);
    // Claims after the close fail: the producer commits a VOID record, nothing appears.
    const c = new FakeShard(r.transport);
    expect(c.body('s', ['late']).announce().claim().first).toBe(-1);
    await expect(s.publish('m')).rejects.toBeInstanceOf(ClosedError);
  });

  it('a VOID record (claim failed) keeps the decoder in step for the records after it', async () => {
    const r = await setup();
    const a = new FakeShard(r.transport);
    r.fabric.stream('closed');
    await r.fabric.stream('closed').close();
    // The first record introduces a shape; it is VOID (stream closed) but must still be decoded.
    a.body('closed', [{ shape: 1, k: 'v' }])
      .announce()
      .claim()
      .record()
      .commit()
      .done();
    a.publish('open', [{ shape: 2, k: 'w' }]); // reuses the shape by reference
    r.drain();
    expect(events(r, 'open').map((e) => e.data)).toEqual([{ shape: 2, k: 'w' }]);
    expect(events(r, 'closed')).toEqual([]);
  });
});

describe('bad records', () => {
  it('an undecodable record becomes GapNotice events, is reported, and the producer is asked to reset', async () => {
    const errors: Error[] = [];
    const r = await setup({ onError: (e: Error) => errors.push(e) });
    const a = new FakeShard(r.transport);
    a.publish('s', ['ok']);
    // Corrupt the next body after it was written: garbage in place of msgpack.
    a.body('s', ['will be garbage']);
    const { copyIn, advance, HEADER_BYTES, SHARD_HEADER_BYTES } = await import(
      '../../transports/sab/ring-layout.js'
    );
    const data = new Uint8Array(a.shard.sab, SHARD_HEADER_BYTES, 4096);
    copyIn(data, 4096, advance(a.writer.writePos, HEADER_BYTES), new Uint8Array([0xc1, 0xc1, 0xc1, 0xc1]));
    a.announce().claim().record().commit().done();
    r.drain();
    const got = events(r, 's');
    expect(seqs(got)).toEqual([1, 2]);
    expect(got[1]!.data).toMatchObject({ reason: 'undecodable', from: 2, to: 2 });
    expect(errors[0]).toBeInstanceOf(FrameError);
    expect(Atomics.load(a.shard.i32, SH_DECODER_RESET)).toBe(1);
    // Until the producer resets, its records cannot be trusted: they are reported lost too.
    a.publish('s', ['still poisoned']);
    r.drain();
    expect(events(r, 's')[2]!.data).toMatchObject({ reason: 'undecodable' });
    // After a reset (FLAG_RESET on its next record) decoding resumes.
    a.encoder.reset();
    a.publish('s', ['fresh']);
    expect(FLAG_RESET).toBeGreaterThan(0);
    r.drain();
    expect(events(r, 's')[3]!.data).toBe('fresh');
  });

  it('a malformed frame is reported as FrameError and does not crash the drain', async () => {
    const errors: Error[] = [];
    const r = await setup({ onError: (e: Error) => errors.push(e) });
    const a = new FakeShard(r.transport);
    // A header claiming 8 bytes (less than a header).
    const { HeaderWriter } = await import('../../transports/sab/codec.js');
    a.writer.put(0, new HeaderWriter().set(8, 1, 0, 1, 1, 0));
    a.writer.commit(32);
    r.drain();
    expect(errors.some((e) => e instanceof FrameError)).toBe(true);
    const b = new FakeShard(r.transport);
    b.publish('s', ['fine']);
    r.drain();
    expect(events(r, 's').map((e) => e.data)).toEqual(['fine']);
  });
});

describe('a claim announced without owning the ring (breaks I11)', () => {
  it('is still recovered when the thread exits, so the stream does not stall', async () => {
    const r = await setup();
    const live = new FakeShard(r.transport);
    const rogue = new FakeShard(r.transport);
    // The rogue thread never owned its ring: OWNER is 0, yet it announced a claim and claimed.
    Atomics.store(rogue.shard.i32, SH_OWNER, 0);
    rogue.body('s', ['x', 'y']).announce().claim(); // claims 1..2, INTENT_FIRST unknown
    live.publish('s', ['l3']); // 3
    r.transport.drainer.onThreadExit(rogue.shard, 4_242_424);
    r.drain();
    await new Promise((res) => setTimeout(res, 10));
    r.drain();
    const got = events(r, 's');
    expect(seqs(got)).toEqual([1, 2, 3]);
    expect(isGapNotice(got[0]!.data)).toBe(true);
    expect(got[2]!.data).toBe('l3');
    expect(Atomics.load(rogue.shard.i32, SH_OWNER)).toBe(0); // free again
  });
});
