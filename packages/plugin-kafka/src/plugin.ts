import { coreServices, definePlugin, eventBusRef } from '@mlplane/core';
import { z } from 'zod';
import { KafkaEventBus } from './kafka-event-bus.js';

/** The EventBus on Kafka: durable, ordered per subject (keyed partitions), replayable, dead letters in `<topic>.dlq`. */
export const kafkaPlugin = definePlugin({
  id: 'kafka',
  configSchema: z.object({
    brokers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'must be host:port')).min(1),
    topic: z.string().min(1).default('mlplane.events'),
    partitions: z.number().int().positive().default(6),
    replicationFactor: z.number().int().positive().default(1),
    clientId: z.string().min(1).default('mlplane'),
    groupIdPrefix: z.string().default('mlplane.'),
    sessionTimeoutMs: z.number().int().positive().default(30_000),
  }),
  register(env) {
    env.provide(eventBusRef, {
      deps: { logger: coreServices.logger },
      factory: ({ config, logger }) => new KafkaEventBus({ ...config, logger }),
      dispose: (bus) => bus.close(),
    });
  },
});
