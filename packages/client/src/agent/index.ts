/**
 * Agent runs over channels (docs/agents.md): the event model, the producer runtime
 * (`serveAgent`), the stream writer, and the user side (`Conversation`).
 */
export * from './events.js';
export { serveAgent } from './serve.js';
export type { AgentHandler, AgentInput, AgentRun, AgentServer, AskOptions, ServeAgentOptions } from './serve.js';
export { AnswerWriter } from './writer.js';
export type { AnswerWriterOptions } from './writer.js';
export { Conversation } from './conversation.js';
export type { ConversationEvents, ConversationOptions, DeltaEvent, RunView } from './conversation.js';
