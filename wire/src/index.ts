/**
 * @gatehouse/wire: the device-facing MQTT contract (Losant's), one definition imported by the
 * Gatehouse server and by @gatehouse/client alike. Topics and their builders and parser; the
 * state, command and error-notice payloads with their encoders and parsers; TIME.
 *
 * Parsers never throw: they answer `{ok: false, reason}`. Encoders throw a TypeError or
 * RangeError for input the other side would refuse or misread.
 */
export {
  type CommandBody,
  type CommandInput,
  type CommandMessage,
  encodeCommand,
  parseCommand,
  readCommand,
} from './command.js';
export {
  type ErrorNotice,
  type ErrorNoticeBody,
  type ErrorNoticeInput,
  encodeErrorNotice,
  parseErrorNotice,
  readErrorNotice,
} from './error-notice.js';
export { type Payload, parseJson, type WireResult } from './json.js';
export {
  encodeState,
  parseStatePayload,
  readStatePayload,
  type StateData,
  type StatePayload,
  type StateReport,
  type StateReportInput,
} from './state.js';
export {
  type DateField,
  dateField,
  isTimeMs,
  MAX_TIME_MS,
  parseTime,
  readDate,
  readTime,
  SECONDS_THRESHOLD,
  type TimeReading,
  type TimeValue,
  timeMs,
} from './time.js';
export {
  ANY_TOPIC_LEVEL,
  commandTopic,
  DEFAULT_TOPIC_PREFIX,
  DEVICE_IDS,
  type DeviceIdRule,
  deviceTopic,
  errorTopic,
  ID_PATTERN,
  isDeviceId,
  isTopicLevel,
  type ParsedTopic,
  parseTopic,
  stateTopic,
  TOPIC_KINDS,
  type TopicKind,
} from './topics.js';
