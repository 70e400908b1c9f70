/**
 * Test helpers for the sab transport on one thread: a stand-in producer that performs the steps of
 * the publish protocol one at a time (encode, reserve, claim, write the header, commit, clear the
 * intent), so a test can stop it at any point as if the worker had died there.
 */
import { createFabric, type Fabric, type WeftEvent } from '../../index.js';
import { BatchEncoder, HeaderWriter } from '../../transports/sab/codec.js';
import type { SabTransport } from '../../transports/sab/index.js';
import { RingWriter } from '../../transports/sab/ring.js';
import {
  FLAG_MORE,
  HEADER_BYTES,
  KIND_BATCH,
  KIND_VOID,
  recordSpan,
  SH_INTENT_COUNT,
  SH_INTENT_FIRST_I64,
  SH_INTENT_STREAM,
  SH_OWNER,
} from '../../transports/sab/ring-layout.js';
import type { Shard } from '../../transports/sab/shard.js';

export interface Rig {
  fabric: Fabric;
  transport: SabTransport;
  /** Runs drain passes until nothing moves (the loop is stopped: tests step it). */
  drain(): void;
  close(): Promise<void>;
}

/** A sab fabric whose drain loop is stopped, so that a test decides when records are taken. */
export async function rig(options: Record<string, unknown> = {}): Promise<Rig> {
  const fabric = await createFabric({ transport: 'sab', ...options });
  const transport = fabric.transport as SabTransport;
  await transport.drainer.stop();
  return {
    fabric,
    transport,
    drain() {
      for (let i = 0; i < 10_000 && transport.drainer.pass(); i++);
    },
    close: () => fabric.close(),
  };
}

let nextOwner = 1000;

/** A producer on this thread, owning a fresh shard ring under a stand-in thread id. */
export class FakeShard {
  readonly shard: Shard;
  readonly owner: number;
  readonly writer: RingWriter;
  readonly encoder = new BatchEncoder();
  readonly #header = new HeaderWriter();
  readonly #t: SabTransport;
  /** The record being written: its span and first sequence. */
  #span = 0;
  #first = 0;
  #count = 0;
  #streamId = 0;
  #flags = 0;

  constructor(t: SabTransport, ringBytes = 4096) {
    this.#t = t;
    this.shard = t.drainer.addShard(ringBytes);
    this.owner = nextOwner++;
    Atomics.store(this.shard.i32, SH_OWNER, this.owner);
    this.writer = new RingWriter(this.shard.sab, ringBytes, t.control);
  }

  idOf(name: string): number {
    return this.#t.stream(name, {}).id;
  }

  /** Steps 1: encode and write the body (not visible: WRITE_POS does not move). */
  body(stream: string, data: unknown[], topic?: string): this {
    this.#streamId = this.idOf(stream);
    const body = this.encoder.encode(data.map((d) => ({ data: d, topic })));
    this.#span = recordSpan(body.length);
    if (!this.writer.hasRoom(this.#span)) throw new Error('test ring full');
    this.writer.put(HEADER_BYTES, body);
    this.#count = data.length;
    this.#flags = KIND_BATCH | this.encoder.takeResetFlag();
    this.#bodyBytes = body.length;
    return this;
  }
  #bodyBytes = 0;

  /** Step 2: announce the claim (I9), without claiming. */
  announce(): this {
    const i32 = this.shard.i32;
    Atomics.store(this.shard.i64, SH_INTENT_FIRST_I64, 0n);
    Atomics.store(i32, SH_INTENT_COUNT, this.#count);
    Atomics.store(i32, SH_INTENT_STREAM, this.#streamId + 1);
    return this;
  }

  /** Step 3: claim from the stream's counter (I8). */
  claim(): this {
    this.#first = this.#t.control.claim(this.#streamId, this.#count);
    if (this.#first < 0) this.#flags = (this.#flags & ~0xff) | KIND_VOID;
    return this;
  }

  /** Step 4: record the claim's first sequence (I9). */
  record(): this {
    if (this.#first > 0) Atomics.store(this.shard.i64, SH_INTENT_FIRST_I64, BigInt(this.#first));
    return this;
  }

  /** Steps 5-6: write the header and commit (I3). */
  commit(more = false): this {
    this.writer.put(
      0,
      this.#header.set(
        HEADER_BYTES + this.#bodyBytes,
        this.#flags | (more ? FLAG_MORE : 0),
        this.#streamId,
        this.#count,
        Math.max(this.#first, 0),
        Date.now(),
      ),
    );
    this.writer.commit(this.#span);
    return this;
  }

  /** Step 7: clear the intent. */
  done(): this {
    Atomics.store(this.shard.i32, SH_INTENT_STREAM, 0);
    return this;
  }

  /** All steps: a normal publish. Returns the first sequence. */
  publish(stream: string, data: unknown[], topic?: string): number {
    this.body(stream, data, topic).announce().claim().record().commit().done();
    return this.#first;
  }

  get first(): number {
    return this.#first;
  }

  /** The worker "exits": the main thread learns it (as from the Worker's 'exit' event). */
  die(): void {
    this.#t.drainer.onThreadExit(this.shard, this.owner);
  }
}

export function seqs(events: readonly WeftEvent[]): number[] {
  return events.map((e) => e.seq);
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
