import type fc from 'fast-check';

/**
 * fast-check parameters shared by the property tests: FC_SEED (and FC_PATH) replay a failure,
 * FC_RUNS_SCALE scales the number of runs (CI keeps 1; a soak can set 20).
 */
export function fcParams<T>(params: fc.Parameters<T> = {}): fc.Parameters<T> {
  const out: fc.Parameters<T> = { ...params };
  const scale = Number(process.env.FC_RUNS_SCALE ?? '1');
  if (params.numRuns !== undefined && Number.isFinite(scale) && scale > 0) {
    out.numRuns = Math.max(1, Math.round(params.numRuns * scale));
  }
  if (process.env.FC_SEED !== undefined) out.seed = Number(process.env.FC_SEED);
  if (process.env.FC_PATH !== undefined) out.path = process.env.FC_PATH;
  return out;
}
