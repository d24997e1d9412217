/** @gatehouse/client: devices and gateways for Gatehouse (Losant-compatible MQTT), with store-and-forward. */

export { DEFAULT_TOPIC_PREFIX, type StateData } from '@gatehouse/wire';
export { type BackoffOptions, backoffDelay, backoffOptions, DEFAULT_BACKOFF } from './backoff.js';
export {
  type Command,
  ConnectionRefusedError,
  Device,
  type DeviceEvents,
  type DeviceOptions,
  type DroppedState,
  type Rejection,
  type SendResult,
} from './device.js';
export { Gateway, type GatewayOptions, Peripheral, type PeripheralEvents } from './gateway.js';
export { FileQueue, type FileQueueOptions, QueueLockedError } from './queue/file-queue.js';
export { MemoryQueue } from './queue/memory-queue.js';
export { DEFAULT_MAX_MESSAGES, type QueuedState, type QueueOptions, type StateQueue } from './queue/types.js';
export { TokenBucket } from './rate.js';
export { TypedEmitter } from './typed-emitter.js';
