export * from './broker/types.js';
export { MemoryBroker } from './broker/memory.js';
