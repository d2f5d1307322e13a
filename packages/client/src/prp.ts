/**
 * `@signalbox/client/prp`: the PRP API document's domain events (PRPs and the agents working on
 * them), as an event map for `SignalboxClient<PrpEventData>`. One product's events, so they are
 * not the general SDK's default; types only, nothing here reaches the bundle.
 *
 * @example
 * import { SignalboxClient } from '@signalbox/client';
 * import type { PrpEventData } from '@signalbox/client/prp';
 * const client = new SignalboxClient<PrpEventData>({ url });
 * client.on('agent.progress', (m) => console.log(m.data.progress));
 */

/** A PRP's status; the document's values, open to others. */
export type PrpStatus = 'pending' | 'active' | 'completed' | (string & {});
/** A PRP's or an assignment's priority. */
export type PrpPriority = 'low' | 'medium' | 'high' | (string & {});

/** `prp.created`: a new PRP. */
export interface PrpCreatedData {
  id: string;
  projectId: string;
  name: string;
  description?: string;
  status: PrpStatus;
  priority: PrpPriority;
  createdBy: string;
  createdAt: string;
}

/** `prp.updated`: fields changed, each with its old and new value. */
export interface PrpUpdatedData {
  id: string;
  changes: Record<string, { old: unknown; new: unknown }>;
  updatedBy: string;
  updatedAt: string;
}

/** `prp.status_changed`: the status moved. */
export interface PrpStatusChangedData {
  id: string;
  previousStatus: PrpStatus;
  newStatus: PrpStatus;
  reason?: string;
  changedBy: string;
  metrics?: { estimatedHours?: number; actualHours?: number; completionRate?: number };
}

/** `prp.deleted`. */
export interface PrpDeletedData {
  id: string;
  projectId: string;
  deletedBy: string;
  reason?: string;
}

/** `agent.assigned`: an agent took a PRP. */
export interface AgentAssignedData {
  agentId: string;
  prpId: string;
  priority: PrpPriority;
  estimatedStartTime?: string;
}

/** `agent.progress`: an agent reports progress on a PRP. */
export interface AgentProgressData {
  agentId: string;
  prpId: string;
  /** Percent, 0-100. */
  progress: number;
  currentTask?: string;
  completedTasks?: string[];
  remainingTasks?: string[];
}

/**
 * Publication data of the PRP API document's events, by event type: pass it as `SignalboxClient`'s
 * type parameter (`new SignalboxClient<PrpEventData>(...)`) for typed handlers.
 */
export interface PrpEventData {
  'prp.created': PrpCreatedData;
  'prp.updated': PrpUpdatedData;
  'prp.status_changed': PrpStatusChangedData;
  'prp.deleted': PrpDeletedData;
  'agent.assigned': AgentAssignedData;
  'agent.progress': AgentProgressData;
}
