import { pino } from 'pino';
import { createEmbeddedTelemetry } from '../../src/index.js';
import { telemetryConformance } from '../../src/testing/index.js';

telemetryConformance('embedded (pino + prom-client)', async () => ({
  telemetry: createEmbeddedTelemetry({ logger: pino({ level: 'silent' }) }),
}));
