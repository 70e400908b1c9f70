import { createFabric } from '../../index.js';
import { transportSuite } from '../conformance/transport-suite.js';

transportSuite('memory', () => createFabric({ transport: 'memory' }));
