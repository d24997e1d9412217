/** @gatehouse/client: devices and gateways for Gatehouse (Losant-compatible MQTT), with store-and-forward. */
export { type BackoffOptions, backoffDelay, backoffOptions, DEFAULT_BACKOFF } from './backoff.js';
export {
  ConnectionRefusedError,
  Device,
  type DeviceEvents,
  type DeviceOptions,
  type DroppedState,
  type SendResult,
} from './device.js';
export { Gateway, type GatewayOptions, Peripheral, type PeripheralEvents } from './gateway.js';
export { FileQueue, type FileQueueOptions, QueueLockedError } from './queue/file-queue.js';
export { MemoryQueue } from './queue/memory-queue.js';
export { DEFAULT_MAX_MESSAGES, type QueuedState, type QueueOptions, type StateQueue } from './queue/types.js';
export { TokenBucket } from './rate.js';
export { TypedEmitter } from './typed-emitter.js';
export { type Command, DEFAULT_TOPIC_PREFIX, type Rejection, type StateData } from './wire.js';
