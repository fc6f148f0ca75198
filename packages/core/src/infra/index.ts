/** Production implementations of the ports on PostgreSQL, Redis and Kafka. */

export type { EventBusStats } from './event-bus/bus-stats.js';
export { KafkaEventBus, type KafkaEventBusOptions } from './kafka/kafka-event-bus.js';
export { RedisStreamsEventBus, type RedisStreamsEventBusOptions } from './redis/redis-streams-event-bus.js';
