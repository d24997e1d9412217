/**
 * A gateway reports state and receives commands for its peripherals over its own connection
 * (docs/decisions.md, "Devices and authorization"): it publishes to `losant/PERIPHERAL_ID/state`,
 * subscribes to `losant/PERIPHERAL_ID/command`, and learns on its own error topic what the
 * server refused for any of them. Each peripheral's commands, rejections and drops are also
 * emitted on that peripheral.
 */
import type { StateData } from '@gatehouse/wire';
import {
  type Command,
  checkDeviceId,
  Device,
  type DeviceOptions,
  type DroppedState,
  type Rejection,
  type SendResult,
} from './device.js';
import { TypedEmitter } from './typed-emitter.js';

export interface PeripheralEvents {
  /** A command for this peripheral. */
  command: [command: Command];
  /** The server refused a state for this peripheral, or its command subscription. */
  rejected: [rejection: Rejection];
  /** The gateway's bounded queue dropped a state of this peripheral. */
  dropped: [state: DroppedState];
}

export class Peripheral extends TypedEmitter<PeripheralEvents> {
  constructor(
    readonly id: string,
    readonly gateway: Gateway,
    private readonly send: (data: StateData, time: Date | number | undefined) => Promise<SendResult>,
  ) {
    super();
  }

  /** Reports state for this peripheral through the gateway's queue; see Device.sendState. */
  sendState(data: StateData, time?: Date | number): Promise<SendResult> {
    return this.send(data, time);
  }

  /** @internal The gateway hands this peripheral its events. */
  dispatch<K extends keyof PeripheralEvents>(event: K, ...args: PeripheralEvents[K]): void {
    this.emit(event, ...args);
  }
}

export type GatewayOptions = DeviceOptions;

export class Gateway extends Device {
  private readonly peripheralsById = new Map<string, Peripheral>();

  /**
   * The peripheral with this id, added if new: its command topic is subscribed now (when
   * connected) and after every reconnect. Adding the same id again returns the same Peripheral.
   */
  addPeripheral(id: string): Peripheral {
    const existing = this.peripheralsById.get(id);
    if (existing) return existing;
    checkDeviceId(id);
    if (id === this.id) throw new TypeError(`a gateway is not its own peripheral (${id})`);
    const peripheral = new Peripheral(id, this, (data, time) => this.enqueue(id, data, time));
    this.peripheralsById.set(id, peripheral);
    void this.subscribeCommands(id);
    return peripheral;
  }

  /** Stops receiving the peripheral's commands. Its states already queued are still sent. */
  async removePeripheral(id: string): Promise<void> {
    if (!this.peripheralsById.delete(id)) return;
    await this.unsubscribeCommands(id);
  }

  peripheral(id: string): Peripheral | undefined {
    return this.peripheralsById.get(id);
  }

  get peripherals(): Peripheral[] {
    return [...this.peripheralsById.values()];
  }

  protected override commandTargets(): string[] {
    return [...this.peripheralsById.keys()];
  }

  protected override routeCommand(command: Command): void {
    super.routeCommand(command);
    this.peripheralsById.get(command.deviceId)?.dispatch('command', command);
  }

  protected override routeRejection(rejection: Rejection): void {
    super.routeRejection(rejection);
    this.peripheralsById.get(rejection.deviceId)?.dispatch('rejected', rejection);
  }

  protected override routeDropped(state: DroppedState): void {
    super.routeDropped(state);
    this.peripheralsById.get(state.deviceId)?.dispatch('dropped', state);
  }
}
