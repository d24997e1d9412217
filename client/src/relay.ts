/** The input format of gatehouse-gateway: one `{"deviceId"?, "data", "time"?}` object per line. */
import type { StateData } from '@gatehouse/wire';

export interface InputState {
  /** Left out: the gateway itself. */
  deviceId?: string;
  data: StateData;
  /** Milliseconds since the epoch (a number) or an ISO 8601 string. */
  time?: number;
}

/** Parses one input line, or says what is wrong with it. */
export function parseInputLine(text: string): InputState | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'not a JSON object' };
  const { deviceId, data, time } = value as Record<string, unknown>;
  if (deviceId !== undefined && (typeof deviceId !== 'string' || deviceId === '')) {
    return { error: 'deviceId must be a non-empty string' };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { error: 'data must be an object' };
  let ms: number | undefined;
  if (typeof time === 'number' && Number.isFinite(time)) ms = time;
  else if (typeof time === 'string' && !Number.isNaN(Date.parse(time))) ms = Date.parse(time);
  else if (time !== undefined) return { error: 'time must be milliseconds since the epoch or an ISO 8601 string' };
  return {
    ...(typeof deviceId === 'string' ? { deviceId } : {}),
    data: data as StateData,
    ...(ms === undefined ? {} : { time: ms }),
  };
}
