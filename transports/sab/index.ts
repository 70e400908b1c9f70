/** The 'sab' transport: not built yet (see the open issue). Selecting it fails with a clear error. */
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { TransportFactory } from '../../core/transport.js';

export const factory: TransportFactory = {
  options: [],
  create: () => {
    throw new WeftError(ErrorCode.UNSUPPORTED, "the 'sab' transport is not available yet");
  },
};
