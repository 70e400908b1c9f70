/**
 * Entry encoding: one Redis stream entry per event, ID `<seq>-<epoch>`, fields `t` (append time,
 * ms, the server's clock), `k` (topic, absent when none) and `d` (data, msgpack). An end marker
 * (close or fail) is the entry `<last seq + 1>-0` with fields `x` (state), `m`, `n` (message, name).
 *
 * Decoding trusts nothing: an entry Weft did not write gives a `FrameError` naming the key and ID.
 */
import { Packr } from 'msgpackr';
import { FrameError } from '../../core/errors.js';
import type { WeftEvent } from '../../core/types.js';

/** Plain maps (no records): entries stay decodable by any msgpack reader. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeData(data: unknown): Buffer {
  return packr.pack(data);
}

/** A raw entry as ioredis returns it with the Buffer variants: [id, [field, value, ...]]. */
export type RawEntry = [Buffer, Buffer[] | null];

/** The parts of an entry ID `<seq>-<part>`. */
export interface EntryId {
  readonly seq: number;
  /** The epoch for events; '0' for an end marker. */
  readonly part: string;
}

export function parseId(id: string): EntryId {
  const dash = id.indexOf('-');
  return { seq: Number(id.slice(0, dash)), part: id.slice(dash + 1) };
}

const T = 0x74; // t
const K = 0x6b; // k
const D = 0x64; // d
const X = 0x78; // x
const M = 0x6d; // m
const N = 0x6e; // n

/** Decodes an event entry. `key` and `id` only name the culprit in errors. */
export function decodeEvent(
  stream: string,
  seq: number,
  fields: Buffer[] | null,
  key: string,
  id: string,
): WeftEvent {
  let time: number | undefined;
  let topic: string | undefined;
  let data: Buffer | undefined;
  if (fields !== null) {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!;
      if (name.length !== 1) continue;
      const c = name[0];
      if (c === T) time = Number(fields[i + 1]!.toString('latin1'));
      else if (c === K) topic = fields[i + 1]!.toString('utf8');
      else if (c === D) data = fields[i + 1];
    }
  }
  if (data === undefined || time === undefined || !Number.isFinite(time)) {
    throw new FrameError(`redis key '${key}' holds entry ${id} that Weft did not write (no t/d fields)`);
  }
  let value: unknown;
  try {
    value = packr.unpack(data);
  } catch (e) {
    throw new FrameError(`redis key '${key}' entry ${id}: data is not valid msgpack`, { cause: e });
  }
  return { stream, seq, time, topic, data: value };
}

/** What an end marker says. */
export interface EndMarker {
  readonly state: 'closed' | 'failed';
  readonly message: string;
  readonly name: string;
}

/** Reads an end marker, or returns undefined when the entry is not one. */
export function decodeMarker(fields: Buffer[] | null): EndMarker | undefined {
  if (fields === null) return undefined;
  let state: string | undefined;
  let message = '';
  let name = 'Error';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const f = fields[i]!;
    if (f.length !== 1) continue;
    if (f[0] === X) state = fields[i + 1]!.toString('utf8');
    else if (f[0] === M) message = fields[i + 1]!.toString('utf8');
    else if (f[0] === N) name = fields[i + 1]!.toString('utf8');
  }
  if (state !== 'closed' && state !== 'failed') return undefined;
  return { state, message, name };
}

/** The error a failed stream's followers throw in every process: an `Error` with the failure's message and name. */
export function failureError(message: string, name: string): Error {
  const e = new Error(message);
  if (name !== '' && name !== 'Error') e.name = name;
  return e;
}
