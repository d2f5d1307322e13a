/**
 * The view registry. A view is a file in `views/` that calls {@link registerView}: the build
 * imports every file there (the `virtual:views` module, apps/console/build.mjs), so a later
 * feature (session debugger, document editor) adds a view by adding a file. Routes are hash
 * paths (`#/channels/room%3Ar1`): the server serves one page, and a reload keeps the view.
 */
import type { Live } from './live.js';

/** What a mounted view gets. */
export interface ViewContext {
  live: Live;
  /** The route's parameters: `#/channel/room%3Ar1` -> `['room:r1']` for the route `channel`. */
  params: string[];
  /** Navigates to another route (`navigate('channel', name)`). */
  navigate(route: string, ...params: string[]): void;
}

export interface View {
  /** The first segment of the hash path: `overview` for `#/overview`. */
  route: string;
  /** Shown in the navigation and the document title. */
  title: string;
  /** Position in the navigation; views without one (detail pages) are not listed. */
  nav?: number;
  /** Builds the view into `el`; returns what tears it down (listeners, subscriptions, timers). */
  mount(el: HTMLElement, ctx: ViewContext): () => void;
}

const views = new Map<string, View>();

export function registerView(view: View): void {
  if (views.has(view.route)) throw new Error(`Two views for the route '${view.route}'`);
  views.set(view.route, view);
}

export function listedViews(): View[] {
  return [...views.values()].filter((v) => v.nav !== undefined).sort((a, b) => a.nav! - b.nav!);
}

export function viewFor(route: string): View | undefined {
  return views.get(route);
}

/** The route and parameters of a hash (`#/channel/room%3Ar1`). */
export function parseHash(hash: string): { route: string; params: string[] } {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p.length > 0);
  const decode = (p: string) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  };
  return { route: decode(parts[0] ?? ''), params: parts.slice(1).map(decode) };
}

export function hashFor(route: string, ...params: string[]): string {
  return `#/${[route, ...params].map(encodeURIComponent).join('/')}`;
}
