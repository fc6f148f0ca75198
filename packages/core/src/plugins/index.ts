export { kafkaPlugin } from './kafka.js';
export { postgresPlugin } from './postgres.js';
export { redisCachePlugin, redisStreamsPlugin } from './redis.js';
