import { createFabric } from '../../index.js';
import { sinkSuite } from '../conformance/sink-suite.js';
import { transportSuite } from '../conformance/transport-suite.js';

transportSuite('memory', () => createFabric({ transport: 'memory' }));

sinkSuite('memory', () => createFabric({ transport: 'memory' }));
