/** Who published, in words (the gateway's word, never the payload's): `ws usr_1 (conn_…)`, `http key backend as usr_1`, `gateway metrics`. */
import type { Publisher } from '@signalbox/client';

export function publisherText(p: Publisher | undefined): string {
  if (!p) return '';
  switch (p.via) {
    case 'ws': return `ws ${p.sub} (${p.client})`;
    case 'http': return `http key ${p.key}${p.sub ? ` as ${p.sub}` : ''}`;
    case 'gateway': return `gateway ${p.service}`;
    default: return JSON.stringify(p);
  }
}
