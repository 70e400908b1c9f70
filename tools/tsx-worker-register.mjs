// Preload for TypeScript worker threads on Node 20 (toolchain.md section 3): tsx registers its
// ESM hooks on the main thread only, so a worker started with `--import <this file>` registers
// them itself and can then load `.ts` modules (as real ESM, top-level await included).
// Kept as JavaScript: tsc does not compile it, and it resolves tsx from its own location.
import { register } from 'tsx/esm/api';

register();
