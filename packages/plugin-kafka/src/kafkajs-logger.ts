import type { Logger } from '@mlplane/core';
import { type LogEntry, type logCreator, logLevel } from 'kafkajs';

/**
 * Routes kafkajs log lines into our Logger. kafkajs reports every broker hiccup it then retries at
 * error level, so its errors become warnings and its info lines debug: a restarting broker must not
 * read like a failing platform. Without a logger kafkajs stays silent.
 */
export function kafkajsLogging(logger: Logger | undefined): { logLevel: logLevel; logCreator?: logCreator } {
  if (!logger) return { logLevel: logLevel.NOTHING };
  const log = logger.child({ component: 'kafkajs' });
  return {
    logLevel: logLevel.INFO,
    logCreator:
      () =>
      ({ namespace, level, log: { message, timestamp: _timestamp, logger: _name, ...extra } }: LogEntry) => {
        const line = { namespace, ...extra };
        if (level === logLevel.ERROR || level === logLevel.WARN) log.warn(line, message);
        else log.debug(line, message);
      },
  };
}
