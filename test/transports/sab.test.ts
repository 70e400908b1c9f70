import { describe, expect, it } from 'vitest';
import { ConfigError, createFabric } from '../../index.js';
import { SabTransport } from '../../transports/sab/index.js';
import { transportSuite } from '../conformance/transport-suite.js';
import { collect, eventually } from '../helpers/async.js';

transportSuite('sab', () => createFabric({ transport: 'sab' }));

describe('sab: publishers in workers, a follower on the main thread', () => {
  it('four shards publish at once; a main-thread follower sees 1, 2, 3 ... each once, each shard in order', async () => {
    const fabric = await createFabric({ transport: 'sab' });
    const pool = await fabric.publishers({
      filename: new URL('../sab/fixtures/worker.ts', import.meta.url),
      shards: 4,
    });
    try {
      const follower = collect(
        fabric.stream<{ shard: number; i: number }>('ticks').follow({ from: 'start' }),
      );
      await Promise.all(
        [0, 1, 2, 3].map((shard) =>
          pool.run({ op: 'produce', stream: 'ticks', count: 5000, batch: shard * 10 || undefined, shard }),
        ),
      );
      await eventually(() => follower.received.length >= 20_000, 10_000, '20000 events');
      const last = new Map<number, number>();
      follower.received.forEach((e, k) => {
        expect(e.seq).toBe(k + 1);
        expect(e.data.i).toBe((last.get(e.data.shard) ?? -1) + 1);
        last.set(e.data.shard, e.data.i);
      });
      expect([...last.values()]).toEqual([4999, 4999, 4999, 4999]);
      // Ring gauges: four shards, and everything committed was drained.
      const ring = fabric.metrics().transportMetrics;
      expect(ring.ring_shards).toBe(4);
      expect(ring.ring_capacity_bytes).toBeGreaterThan(0);
      expect(ring.ring_occupancy_bytes).toBe(0);
    } finally {
      await pool.close();
      await fabric.close();
    }
  });

  it('is selected by the sab: scheme and validates its options', async () => {
    const fabric = await createFabric('sab:');
    expect(fabric.transport).toBeInstanceOf(SabTransport);
    expect(fabric.supports.crossThread).toBe(true);
    await fabric.close();
    const custom = await createFabric({
      transport: 'sab',
      ringBytes: 65536,
      followRingBytes: 0,
      slowReader: 'error',
    });
    expect((custom.transport as SabTransport).options).toMatchObject({
      ringBytes: 65536,
      followRingBytes: 0,
    });
    await custom.close();
    for (const [options, message] of [
      [{ ringBytes: 1000 }, /ringBytes must be a power of two.*got 1000/],
      [{ ringBytes: 1024 }, /ringBytes/],
      [{ followRingBytes: -1 }, /followRingBytes/],
      [{ slowReader: 'drop' }, /slowReader must be 'block' or 'error', got "drop"/],
      [{ maxStreams: 0 }, /maxStreams/],
      [{ reorderWindow: 1.5 }, /reorderWindow/],
      [{ onError: 'no' }, /onError must be a function/],
      [{ ringbytes: 4096 }, /unknown option 'ringbytes'/],
    ] as const) {
      const err = await createFabric({ transport: 'sab', ...options }).catch((e: unknown) => e);
      expect(err, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    }
  });
});
