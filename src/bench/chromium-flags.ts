/**
 * How `sat bench browser` and the browser tests start Debian's Chromium: headless, no sandbox (root in CI), no GPU,
 * and none of the background connections a closed network refuses (component updates, sync, first-run pages).
 */
export const CHROMIUM_FLAGS: readonly string[] = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]);
