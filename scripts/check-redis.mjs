// Checks that Redis answers PING at REDIS_URL (default redis://127.0.0.1:6379).
// Under CI=true an unreachable Redis is an error; elsewhere it is reported and the Redis suites skip.
import net from 'node:net';

const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const host = url.hostname || '127.0.0.1';
const port = Number(url.port || 6379);

const ok = await new Promise((resolve) => {
  const sock = net.connect({ host, port });
  const timer = setTimeout(() => { sock.destroy(); resolve(false); }, 3000);
  sock.on('connect', () => sock.write('PING\r\n'));
  sock.on('data', (d) => { clearTimeout(timer); sock.destroy(); resolve(d.toString().startsWith('+PONG')); });
  sock.on('error', () => { clearTimeout(timer); resolve(false); });
});

if (ok) {
  console.log(`redis: reachable at ${host}:${port}`);
} else if (process.env.CI === 'true') {
  console.error(`redis: NOT reachable at ${host}:${port} (REDIS_URL). Redis is required under CI.`);
  process.exit(1);
} else {
  console.warn(`redis: not reachable at ${host}:${port}; the Redis suites will be skipped outside CI.`);
}
