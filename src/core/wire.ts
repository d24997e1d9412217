/**
 * The wire shapes of stored facts (spec: REST; timestamps as ISO 8601). One definition serves
 * the REST routes and the live streams, which promise exactly the REST shapes.
 */
import type { CommandRecord, StateRecord } from '../domain/model.js';

export const iso = (ms: number): string => new Date(ms).toISOString();

export function presentState(state: StateRecord) {
  return { time: iso(state.time), data: state.data, reportedBy: state.reportedBy };
}

export function presentCommand(command: CommandRecord) {
  return {
    id: command.id,
    name: command.name,
    payload: command.payload,
    time: iso(command.time),
    routedTo: command.routedTo,
    sentBy: command.sentBy,
  };
}
