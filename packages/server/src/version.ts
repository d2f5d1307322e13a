/** Gateway version, reported as `serverVersion` in `connection.established`. */
export const SERVER_VERSION = '0.1.0';
