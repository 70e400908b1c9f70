/**
 * Core's remote-follow path (one local mirror per stream fed by `watch`, history pages linked onto
 * it, refill after the mirror trims) checked with the conformance suite over a simulated remote
 * transport: the memory transport behind asynchronous calls, with no in-process log exposed.
 */
import { type EventLog, Fabric, type Transport, type TransportStream, type WeftEvent } from '../../index.js';
import { MemoryTransport } from '../../transports/memory/index.js';
import { sinkSuite } from '../conformance/sink-suite.js';
import { transportSuite } from '../conformance/transport-suite.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

class SimulatedRemote implements Transport {
  readonly name = 'remote-sim';
  readonly inner = new MemoryTransport();
  readonly supports = { ...this.inner.supports, crossProcess: true };
  readonly closed = this.inner.closed;
  readonly groups = this.inner.groups;
  stream(name: string, retention: object): TransportStream {
    const s = this.inner.stream(name, retention);
    return {
      name,
      log: undefined,
      epoch: undefined,
      append: async (batch) => {
        await turn();
        return s.append(batch);
      },
      read: async (from, limit) => {
        await turn();
        return s.read(from, Math.min(limit, 7)); // small pages: exercise the history links
      },
      bounds: async () => {
        await turn();
        return s.bounds();
      },
      watch(log: EventLog<WeftEvent>, after: number) {
        let stopped = false;
        const source = s.log;
        (async () => {
          await turn();
          // Follow the "server" log from after+1 and copy batches into the local mirror.
          const { Follower } = await import('../../core/follower.js');
          const { startIn } = await import('../../core/stream.js');
          const f = new Follower('watch', source, startIn(name, source, after + 1, undefined));
          try {
            for await (const batch of f.batches()) {
              if (stopped) break;
              await turn();
              if (!stopped && !log.ended) log.append(batch);
            }
            if (!stopped) log.end();
          } catch (e) {
            if (!stopped) log.end(e as Error);
          }
        })();
        return {
          stop() {
            stopped = true;
          },
        };
      },
      close: async () => {
        await turn();
        await s.close();
      },
      fail: async (e) => {
        await turn();
        await s.fail(e);
      },
    };
  }
  close() {
    return this.inner.close();
  }
}

transportSuite('remote-sim', async () => new Fabric(new SimulatedRemote()), { modelRuns: 40 });
sinkSuite('remote-sim', async () => new Fabric(new SimulatedRemote()), { modelRuns: 5 });
