/**
 * What the broker counts (docs/operations.md, "Metrics"), as bounded categories: every label
 * value is one of the names below, never a topic, an id or a reason's text.
 */
import { type Count, NO_COUNT, NO_OBSERVER, noCounts, type Observer } from '../ops/instruments.js';

/**
 * Why the broker refused something, with the HTTP status the same refusal gets over REST (the
 * `code` of an error notice). A refused CONNECT maps its CONNACK code the same way: 4 to 401,
 * 5 to 403, 3 (throttled) to 429, 2 to 400; 3 for a fault of ours to 500.
 */
export const MQTT_REFUSALS = {
  // CONNECT
  BadCredentials: 401,
  NotAuthorized: 403,
  Throttled: 429,
  IdentifierRejected: 400,
  InternalError: 500,
  // PUBLISH, decided by the broker
  InvalidTopic: 400,
  ReservedTopic: 403,
  RetainedBudget: 413,
  // PUBLISH, decided by the shared ingest path (state) or the custom-topic rules; the REST error types
  Validation: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  PayloadTooLarge: 413,
  RateLimited: 429,
  // SUBSCRIBE
  SubscribeRefused: 403,
} as const;
export type MqttRefusal = keyof typeof MQTT_REFUSALS;

/** Publishes received, by the topic they were sent to. */
export const MQTT_IN_KINDS = ['state', 'custom', 'command', 'error', 'invalid'] as const;
export type MqttInKind = (typeof MQTT_IN_KINDS)[number];

/** Messages delivered to clients. */
export const MQTT_OUT_KINDS = ['command', 'errorNotice', 'custom'] as const;
export type MqttOutKind = (typeof MQTT_OUT_KINDS)[number];

/** Why a connection ended. */
export const DISCONNECT_CATEGORIES = [
  'clientDisconnected',
  'connectionLost',
  'keepaliveTimeout',
  'duplicateClientId',
  'rateLimited',
  'slowConsumer',
  'packetTooLarge',
  'protocolError',
  'revoked',
  'shuttingDown',
  'error',
] as const;
export type DisconnectCategory = (typeof DISCONNECT_CATEGORIES)[number];

/** Ends worth an operator's attention: their log line is a warning. */
export const NOTABLE_DISCONNECTS: ReadonlySet<DisconnectCategory> = new Set([
  'rateLimited',
  'slowConsumer',
  'packetTooLarge',
  'protocolError',
]);

const DISCONNECT_PREFIXES: ReadonlyArray<[string, DisconnectCategory]> = [
  ['Client disconnected', 'clientDisconnected'],
  ['Connection lost', 'connectionLost'],
  ['Keep-alive timeout', 'keepaliveTimeout'],
  ['Duplicate client id', 'duplicateClientId'],
  ['Rate limit exceeded', 'rateLimited'],
  ['Slow consumer', 'slowConsumer'],
  ['Packet too large', 'packetTooLarge'],
  ['Protocol error', 'protocolError'],
  ['Device deleted', 'revoked'],
  ['Access key deleted', 'revoked'],
  ['Not authorized', 'revoked'],
  ['Server shutting down', 'shuttingDown'],
];

/** The category of a disconnect reason (the texts of docs/errors.md); anything else is `error`. */
export function disconnectCategory(reason: string): DisconnectCategory {
  for (const [prefix, category] of DISCONNECT_PREFIXES) if (reason.startsWith(prefix)) return category;
  return 'error';
}

export interface BrokerInstruments {
  connects: Count;
  disconnects: Record<DisconnectCategory, Count>;
  messagesIn: Record<MqttInKind, Count>;
  messagesOut: Record<MqttOutKind, Count>;
  refusals: Record<MqttRefusal, Count>;
  /** Seconds from a QoS 1 publish reaching the broker's hook to its PUBACK being written. */
  pubackSeconds: Observer;
}

export const NO_BROKER_INSTRUMENTS: BrokerInstruments = {
  connects: NO_COUNT,
  disconnects: noCounts(DISCONNECT_CATEGORIES),
  messagesIn: noCounts(MQTT_IN_KINDS),
  messagesOut: noCounts(MQTT_OUT_KINDS),
  refusals: noCounts(Object.keys(MQTT_REFUSALS) as MqttRefusal[]),
  pubackSeconds: NO_OBSERVER,
};
