/**
 * The agent run model on `agent:{id}` channels (docs/agents.md): the event types the producer
 * publishes, their data, a JSON Schema for each, and the RPC methods and error codes of the
 * runtime. Every event type here is `agent.*`, which the default namespace table reserves for the
 * channel's producer (a `handle` grant): a viewer can never publish one, so a reader can trust
 * whatever it reads of these types came from the agent.
 *
 * A run, as the channel's stream shows it:
 *
 *   agent.input (runId allocated) → agent.run.started → agent.answer (the answer message, text '')
 *   → agent.delta × n (appends to agent.answer: `appendTo` its id) → agent.run.completed | failed | cancelled
 *
 * with agent.state (idle / thinking / streaming / waiting), agent.ask / agent.ask.answered
 * (human in the loop), agent.progress and agent.assigned (the PRP API document's) in between.
 */

import type { AgentAssignedData, AgentProgressData } from '../prp.js';

/** What the agent is doing: published as `agent.state` on every change. */
export type AgentState = 'idle' | 'thinking' | 'streaming' | 'waiting';
/** Where a run is. */
export type RunStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
/** How a run that is running handles another input: see docs/agents.md, "Turn policies". */
export type TurnPolicy = 'reject' | 'queue' | 'interrupt';

/** The user's input, accepted: the run exists from here on (its id allocated now). */
export interface AgentInputData {
  runId: string;
  /** The sender's key for this input: sending it again (after a lost connection) gets the same run. */
  inputId: string;
  text: string;
  /** Who sent it, as the gateway authenticated the call: the token subject. */
  from: string;
  /** True when the run waits behind another (turn policy `queue`). */
  queued: boolean;
}
/** The run starts: the agent's handler is called. */
export interface AgentRunStartedData { runId: string; inputId: string; answerId: string }
/**
 * The answer message: its id is `answerId`; every `agent.delta` appends to it. Folded (history
 * without `since`, docs/protocol.md "Appends"), `text` is the answer so far.
 */
export interface AgentAnswerData { runId: string; text: string }
/** An append to the answer message: only `text`, which concatenates onto the answer's `text`. */
export interface AgentDeltaData { text: string }
/** The run ended normally; `text` is the whole answer. */
export interface AgentRunCompletedData { runId: string; text: string }
/** The run ended with an error; `text` is what was streamed before it. */
export interface AgentRunFailedData { runId: string; text: string; error: { code: string; message: string } }
/** The run was cancelled (a user's cancel, or an interrupting input); `text` is what was streamed before. */
export interface AgentRunCancelledData {
  runId: string;
  text: string;
  /** `cancel`: a user's cancel (its subject in `by`); `interrupted`: a newer input replaced the run (turn policy `interrupt`). */
  reason: 'cancel' | 'interrupted';
  by?: string;
}
/** The agent's state changed. */
export interface AgentStateData { state: AgentState; runId?: string }
/** The agent asks the conversation for input or approval, and waits (state `waiting`). */
export interface AgentAskData {
  runId: string;
  askId: string;
  kind: 'input' | 'approval';
  prompt: string;
  /** For `approval`, or an input with choices. */
  options?: string[];
}
/** Someone answered an ask. */
export interface AgentAskAnsweredData { runId: string; askId: string; value: unknown; by: string }
/**
 * The PRP API document's `agent.assigned` and `agent.progress`, exactly its fields: the same types
 * as `@signalbox/client/prp` exports (one definition).
 */
export type { AgentAssignedData, AgentProgressData } from '../prp.js';

/** Every agent event type, and its data. */
export interface AgentEventData {
  'agent.input': AgentInputData;
  'agent.run.started': AgentRunStartedData;
  'agent.answer': AgentAnswerData;
  'agent.delta': AgentDeltaData;
  'agent.run.completed': AgentRunCompletedData;
  'agent.run.failed': AgentRunFailedData;
  'agent.run.cancelled': AgentRunCancelledData;
  'agent.state': AgentStateData;
  'agent.ask': AgentAskData;
  'agent.ask.answered': AgentAskAnsweredData;
  'agent.assigned': AgentAssignedData;
  'agent.progress': AgentProgressData;
}
export type AgentEventType = keyof AgentEventData;

/** The RPC methods the producer serves on its channel (callers need a `call` grant). */
export const AgentMethod = {
  /** `{text, inputId?}` → {@link InputResult}. */
  INPUT: 'agent.input',
  /** `{runId?}` (default: the running run) → {@link CancelResult}. */
  CANCEL: 'agent.cancel',
  /** `{askId, value}` → `{askId, accepted: true}`. */
  ANSWER: 'agent.answer',
} as const;

/** What `agent.input` answers. */
export interface InputResult {
  runId: string;
  inputId: string;
  status: 'running' | 'queued';
  /** True when this inputId had been accepted before (a resend): the same run. */
  duplicate: boolean;
}

/**
 * What `agent.cancel` answers. A running or queued run: `cancelled: true` and the text streamed so
 * far. A run that had already ended: `cancelled: false`, its final `status` and text, nothing changes.
 */
export interface CancelResult {
  runId: string;
  cancelled: boolean;
  status: RunStatus;
  text: string;
}

/**
 * The runtime's error codes. The producer throws them from its RPC methods, so a caller gets
 * `RPC_FAILED` with `details.handlerCode` set to one of these (docs/agents.md, "Errors").
 */
export const AgentErrorCode = {
  /** Turn policy `reject`: a run is in progress (`details` of the error: none; retry when the run ends). */
  AGENT_BUSY: 'AGENT_BUSY',
  /** `agent.cancel` named a run this agent does not know (never accepted, or long forgotten). */
  RUN_NOT_FOUND: 'RUN_NOT_FOUND',
  /** `agent.cancel` without `runId` while nothing runs. */
  NO_ACTIVE_RUN: 'NO_ACTIVE_RUN',
  /** `agent.answer` named no open ask (answered already, cancelled, or never asked). */
  ASK_NOT_FOUND: 'ASK_NOT_FOUND',
  /** The params of a method are not what it takes (e.g. `text` not a string). */
  INVALID_INPUT: 'INVALID_INPUT',
  /** The handler threw: the run ends `agent.run.failed` with this code unless the thrown error has its own `code`. */
  HANDLER_ERROR: 'HANDLER_ERROR',
  /** Part of the answer could not be published (see the client's `undelivered`): the run ends failed, never with a silent hole. */
  ANSWER_INCOMPLETE: 'ANSWER_INCOMPLETE',
} as const;
export type AgentErrorCode = (typeof AgentErrorCode)[keyof typeof AgentErrorCode];

// ---- Schemas ----------------------------------------------------------------------------------

/** A JSON Schema (draft 2020-12 subset) of one event's data. */
export interface JsonSchema {
  type: 'object' | 'string' | 'number' | 'boolean' | 'array';
  required?: string[];
  properties?: Record<string, JsonSchema | { enum: readonly string[] } | Record<string, never>>;
  items?: JsonSchema;
  additionalProperties?: boolean;
  minimum?: number;
  maximum?: number;
}

const str: JsonSchema = { type: 'string' };
const obj = (required: string[], properties: JsonSchema['properties'], additionalProperties = false): JsonSchema => ({ type: 'object', required, properties, additionalProperties });

/** The data of every agent event, as JSON Schema. docs/agents.md shows the same. */
export const AGENT_EVENT_SCHEMAS: Readonly<Record<AgentEventType, JsonSchema>> = Object.freeze({
  'agent.input': obj(['runId', 'inputId', 'text', 'from', 'queued'], { runId: str, inputId: str, text: str, from: str, queued: { type: 'boolean' } }),
  'agent.run.started': obj(['runId', 'inputId', 'answerId'], { runId: str, inputId: str, answerId: str }),
  'agent.answer': obj(['runId', 'text'], { runId: str, text: str }),
  'agent.delta': obj(['text'], { text: str }),
  'agent.run.completed': obj(['runId', 'text'], { runId: str, text: str }),
  'agent.run.failed': obj(['runId', 'text', 'error'], { runId: str, text: str, error: obj(['code', 'message'], { code: str, message: str }) }),
  'agent.run.cancelled': obj(['runId', 'text', 'reason'], { runId: str, text: str, reason: { enum: ['cancel', 'interrupted'] }, by: str }),
  'agent.state': obj(['state'], { state: { enum: ['idle', 'thinking', 'streaming', 'waiting'] }, runId: str }),
  'agent.ask': obj(['runId', 'askId', 'kind', 'prompt'], { runId: str, askId: str, kind: { enum: ['input', 'approval'] }, prompt: str, options: { type: 'array', items: str } }),
  'agent.ask.answered': obj(['runId', 'askId', 'value', 'by'], { runId: str, askId: str, value: {}, by: str }),
  'agent.assigned': obj(['agentId', 'prpId', 'priority'], { agentId: str, prpId: str, priority: str, estimatedStartTime: str }),
  'agent.progress': obj(['agentId', 'prpId', 'progress'], {
    agentId: str, prpId: str, progress: { type: 'number', minimum: 0, maximum: 100 }, currentTask: str,
    completedTasks: { type: 'array', items: str }, remainingTasks: { type: 'array', items: str },
  }),
});

/** True when `type` is an agent event type. */
export function isAgentEventType(type: string): type is AgentEventType {
  return Object.prototype.hasOwnProperty.call(AGENT_EVENT_SCHEMAS, type);
}

/**
 * Checks `data` against the schema of `type`; returns the first problem found, or undefined when
 * it conforms. Readers use it to ignore a malformed event rather than crash on it.
 */
export function agentEventProblem(type: AgentEventType, data: unknown): string | undefined {
  return problem(AGENT_EVENT_SCHEMAS[type], data, 'data');
}

function problem(schema: JsonSchema | { enum: readonly string[] } | Record<string, never>, value: unknown, path: string): string | undefined {
  if ('enum' in schema) return typeof value === 'string' && schema.enum.includes(value) ? undefined : `${path} must be one of ${schema.enum.join(', ')}`;
  if (!('type' in schema)) return undefined;
  switch (schema.type) {
    case 'string':
      return typeof value === 'string' ? undefined : `${path} must be a string`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${path} must be a boolean`;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${path} must be a number`;
      if (schema.minimum !== undefined && value < schema.minimum) return `${path} must be at least ${schema.minimum}`;
      if (schema.maximum !== undefined && value > schema.maximum) return `${path} must be at most ${schema.maximum}`;
      return undefined;
    case 'array':
      if (!Array.isArray(value)) return `${path} must be an array`;
      if (schema.items) for (const [i, v] of value.entries()) { const p = problem(schema.items, v, `${path}[${i}]`); if (p) return p; }
      return undefined;
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${path} must be an object`;
      const rec = value as Record<string, unknown>;
      for (const k of schema.required ?? []) if (!(k in rec)) return `${path}.${k} is required`;
      for (const [k, v] of Object.entries(rec)) {
        const sub = schema.properties?.[k];
        if (!sub) {
          if (schema.additionalProperties === false) return `${path}.${k} is not a field of this event`;
          continue;
        }
        const p = problem(sub, v, `${path}.${k}`);
        if (p) return p;
      }
      return undefined;
    }
  }
}

/** The id of a run's answer message (deltas append to it). */
export function answerIdOf(runId: string): string {
  return `${runId}.answer`;
}
