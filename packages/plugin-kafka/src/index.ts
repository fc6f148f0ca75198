/** @mlplane/plugin-kafka: the EventBus on Kafka (kafkajs): durable, consumer groups, dead letters. */

export { KafkaEventBus, type KafkaEventBusOptions } from './kafka-event-bus.js';
export { kafkaPlugin } from './plugin.js';
