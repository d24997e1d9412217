/**
 * The one operator log: structured JSON lines (pino) on stderr, made once at start-up and passed
 * down, so stdout keeps only what the `gatehouse` command prints for people and scripts.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, destination: DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      level,
      base: { name: 'gatehouse' },
      // A secret must never reach the log, even inside an error's request or a packet.
      redact: {
        paths: ['password', 'secret', 'token', '*.password', '*.secret', '*.token', 'req.headers.authorization'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** A logger that writes nothing (library use and unit tests). */
export const silentLogger: Logger = pino({ level: 'silent' });
