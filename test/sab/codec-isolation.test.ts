/** The sab codec must not leave msgpackr's process-wide output buffer pointing at its scratch. */
import { pack, unpack } from 'msgpackr';
import { expect, it } from 'vitest';
import { StandaloneEncoder } from '../../transports/sab/codec.js';

it("other code's msgpackr pack() results are not overwritten by the sab encoder", () => {
  const encoder = new StandaloneEncoder();
  encoder.encode({ a: 1 });
  const mine = pack({ mine: 'x'.repeat(50) });
  const copy = Buffer.from(mine);
  for (let i = 0; i < 50; i++) encoder.encode({ other: i, pad: 'y'.repeat(100) });
  expect(Buffer.compare(Buffer.from(mine), copy)).toBe(0);
  expect(unpack(mine)).toEqual({ mine: 'x'.repeat(50) });
});
