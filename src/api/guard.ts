import type { FastifyRequest } from 'fastify';
import { errorForStatus, GatehouseError } from '../core/errors.js';
import { type Action, authorize, type Principal } from '../domain/authorization.js';

/** The request's principal, allowed to do `action`; throws the matching 401/403/404 otherwise. */
export function allow(request: FastifyRequest, action: Action): Principal {
  const principal = request.principal;
  if (!principal) throw new GatehouseError('Unauthorized', 'authentication required');
  const decision = authorize(principal, action);
  if (!decision.allow) throw errorForStatus(decision.status, decision.reason);
  return principal;
}
