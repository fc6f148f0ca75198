import { telemetryConformance } from '@mlplane/core/testing';
import { createEmbeddedTelemetry } from '@mlplane/defaults';
import { pino } from 'pino';

telemetryConformance('embedded (pino + prom-client)', async () => ({
  telemetry: createEmbeddedTelemetry({ logger: pino({ level: 'silent' }) }),
}));
