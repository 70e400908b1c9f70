/**
 * A publishing process for the multi-process test: publishes `count` events `{ p: id, i }` to one
 * stream (every fifth as a batch of three), then prints the sequences it was given as JSON.
 *   node --import tsx test/redis/publisher-process.ts <url> <prefix> <stream> <id> <count>
 */
import { createFabric } from '../../index.js';

const [url, prefix, name, idText, countText] = process.argv.slice(2);
const id = Number(idText);
const count = Number(countText);
const fabric = await createFabric({ transport: 'redis', url, prefix });
const stream = fabric.stream<{ p: number; i: number }>(name!);
const seqs: number[] = [];
const pending: Promise<void>[] = [];
for (let i = 0; i < count; ) {
  if (i % 5 === 4 && i + 3 <= count) {
    const items = [0, 1, 2].map((k) => ({ data: { p: id, i: i + k } }));
    pending.push(stream.publishBatch(items).then((s) => void seqs.push(...s)));
    i += 3;
  } else {
    pending.push(stream.publish({ p: id, i }).then((s) => void seqs.push(s)));
    i += 1;
  }
  if (pending.length >= 16) await Promise.all(pending.splice(0));
}
await Promise.all(pending);
await fabric.close();
process.stdout.write(`${JSON.stringify(seqs)}\n`);
