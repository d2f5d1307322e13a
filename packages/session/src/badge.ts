/**
 * The optional "this session is being watched" badge: a small fixed element the page's user can
 * see while at least one viewer is on the session. Plain DOM, inline styles, no framework.
 */

export interface BadgeOptions {
  /** The text; `{n}` is replaced by the number of viewers. Default "Support is viewing this session ({n})". */
  text?: string;
  /** Corner. Default bottom-right. */
  position?: 'bottom-right' | 'bottom-left' | 'top-right' | 'top-left';
}

/** Shows the badge; `update(n)` sets the count (-1: unknown), `remove()` takes it away. */
export function showBadge(options: BadgeOptions): { update(n: number): void; remove(): void } {
  const el = document.createElement('div');
  el.setAttribute('data-signalbox-session-badge', '');
  el.setAttribute('role', 'status');
  const [v, h] = (options.position ?? 'bottom-right').split('-') as ['bottom' | 'top', 'left' | 'right'];
  el.style.cssText = `position:fixed;${v}:12px;${h}:12px;z-index:2147483647;padding:6px 10px;border-radius:14px;`
    + 'background:#b91c1c;color:#fff;font:600 12px/1.2 system-ui,sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3);pointer-events:none';
  const template = options.text ?? 'Support is viewing this session ({n})';
  const update = (n: number): void => {
    el.textContent = `\u25CF ${template.replace('{n}', n < 0 ? '?' : String(n))}`;
  };
  update(0);
  (document.body ?? document.documentElement).appendChild(el);
  return { update, remove: () => el.remove() };
}
