import { describe, expect, it } from 'vitest';
import { createFabric, prometheusText } from '../../index.js';
import { tick } from '../helpers/async.js';

describe('metrics', () => {
  it('counts published, delivered, followers and the slowest follower lag, and renders Prometheus text', async () => {
    const fabric = await createFabric();
    const s = fabric.stream<number>('m.orders');
    const fast = s.follow({ from: 'start' });
    const slow = s.follow({ from: 'start' });
    await s.publishBatch(Array.from({ length: 10 }, (_, i) => ({ data: i })));
    for (let i = 0; i < 10; i++) await fast.next();
    for (let i = 0; i < 3; i++) await slow.next();
    let m = fabric.metrics().streams.find((x) => x.stream === 'm.orders')!;
    expect(m).toMatchObject({ lastSeq: 10, followers: 2, delivered: 13, maxLag: 7, slowestPosition: 3 });
    await slow.return();
    await tick();
    m = fabric.metrics().streams.find((x) => x.stream === 'm.orders')!;
    expect(m).toMatchObject({ followers: 1, delivered: 13, maxLag: 0 });
    const sink = fabric.sink('m.sink', { streams: ['m.orders'] });
    const it = sink.consume();
    const d = await it.next();
    await d.value!.ack();
    await it.return!();
    const text = prometheusText(fabric.metrics());
    expect(text).toContain('# TYPE weft_stream_delivered_total counter');
    expect(text).toContain('weft_stream_delivered_total{transport="memory",stream="m.orders"} 13');
    expect(text).toContain('weft_stream_follower_max_lag{transport="memory",stream="m.orders"} 0');
    expect(text).toContain('weft_sink_acked_total{transport="memory",sink="m.sink"} 1');
    await fabric.close();
  });
});
