export * from './broker/types.js';
export { MemoryBroker } from './broker/memory.js';
export { RedisBroker } from './broker/redis.js';
export { Gateway, createBroker, type GatewayOptions } from './node.js';
export { loadConfig, ConfigError, DEFAULT_NAMESPACES, SETTINGS, type GatewayConfig, type NamespaceConfig } from './config.js';
export { Authenticator, AuthError, mintToken, type Credentials, type MintOptions } from './auth/jwt.js';
export { Hub, recoveryOutcome } from './hub.js';
export { SERVER_VERSION } from './version.js';
