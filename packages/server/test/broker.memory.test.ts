import { MemoryBroker } from '../src/broker/memory.js';
import { brokerContract, type BrokerFactory } from './contract/broker.contract.js';

// One process, one engine: no second node to share it with, and every publication reaches the handler.
const factory: BrokerFactory = Object.assign(
  async () => {
    const broker = new MemoryBroker();
    return { broker, cleanup: () => broker.close() };
  },
  { capabilities: { sharedEngine: false, selectiveDelivery: false } },
);

brokerContract('memory', factory);
