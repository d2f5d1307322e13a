/**
 * The one error mapping of the Redis engine: what a failed Redis call means to the gateway.
 *
 * Connection loss, timeouts, a closed or not-yet-connected client and transient server states are
 * an outage: {@link BrokerUnavailableError} (the gateway answers `UNAVAILABLE` / HTTP 503). A reply
 * error Redis sends because it understood the request and refused it (WRONGTYPE, a script error)
 * is a bug and passes through unchanged (`INTERNAL_ERROR` / 500, logged).
 */
import { BrokerUnavailableError } from '../broker/types.js';

/**
 * Replies of these kinds mean "Redis cannot serve right now" (loading, failing over, out of
 * memory, busy script), not "the request is wrong": they map to BrokerUnavailableError.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS|MISCONF)\b/;

export function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `err`, thrown by a Redis call for `op`, as the gateway must see it (see the file comment). */
export function mapRedisError(op: string, err: unknown): unknown {
  if (err instanceof BrokerUnavailableError) return err;
  if (isReplyError(err) && !TRANSIENT_REPLY.test(err.message)) return err;
  return new BrokerUnavailableError(`Redis unavailable (${op}): ${errMessage(err)}`, { cause: err });
}

/** Runs one Redis call for `op`, mapping its failure with {@link mapRedisError}. */
export async function redisCall<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapRedisError(op, err);
  }
}
