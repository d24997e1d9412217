/** @gatehouse/wire: the device-facing MQTT contract, imported by the server and the SDK alike. */
export const DEFAULT_TOPIC_PREFIX = 'losant';
