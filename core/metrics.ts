/**
 * Metrics: counters a user can read from a fabric (`fabric.metrics()`) and their Prometheus text
 * form (`prometheusText()`, served by the WebSocket gateway on `/metrics`). Computed when asked:
 * nothing is counted in the publish path beyond what the log already knows.
 */
import type { SinkStats } from './sink.js';
import type { StreamMetrics } from './stream.js';

export interface FabricMetrics {
  transport: string;
  streams: StreamMetrics[];
  sinks: ({ sink: string } & SinkStats)[];
  /** Transport-specific gauges and counters (ring occupancy, reconnects, ...), by metric name. */
  transportMetrics: Record<string, number>;
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Renders metrics in the Prometheus text exposition format (version 0.0.4). */
export function prometheusText(m: FabricMetrics, extra: Record<string, number> = {}): string {
  const out: string[] = [];
  const family = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
  };
  const t = `transport="${esc(m.transport)}"`;
  const per = (fn: (s: StreamMetrics) => number): [string, number][] =>
    m.streams.map((s) => [`{${t},stream="${esc(s.stream)}"}`, fn(s)]);
  family(
    'weft_stream_last_seq',
    'gauge',
    'Newest sequence seen in this process.',
    per((s) => s.lastSeq),
  );
  family(
    'weft_stream_followers',
    'gauge',
    'Followers open now.',
    per((s) => s.followers),
  );
  family(
    'weft_stream_delivered_total',
    'counter',
    'Events delivered to followers.',
    per((s) => s.delivered),
  );
  family(
    'weft_stream_follower_max_lag',
    'gauge',
    'Events the slowest follower is behind.',
    per((s) => s.maxLag),
  );
  const sinks = (fn: (s: SinkStats) => number): [string, number][] =>
    m.sinks.map((s) => [`{${t},sink="${esc(s.sink)}"}`, fn(s)]);
  family(
    'weft_sink_delivered_total',
    'counter',
    'Deliveries handed to consume loops.',
    sinks((s) => s.delivered),
  );
  family(
    'weft_sink_acked_total',
    'counter',
    'Deliveries acked.',
    sinks((s) => s.acked),
  );
  family(
    'weft_sink_redelivered_total',
    'counter',
    'Redeliveries.',
    sinks((s) => s.redelivered),
  );
  family(
    'weft_sink_filtered_total',
    'counter',
    'Events skipped by the filter.',
    sinks((s) => s.filtered),
  );
  family(
    'weft_sink_dead_lettered_total',
    'counter',
    'Events moved to the dead-letter stream.',
    sinks((s) => s.deadLettered),
  );
  for (const [name, value] of Object.entries({ ...m.transportMetrics, ...extra })) {
    const metric = `weft_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
    family(metric, name.endsWith('_total') ? 'counter' : 'gauge', `${name} (transport)`, [[`{${t}}`, value]]);
  }
  return `${out.join('\n')}\n`;
}
