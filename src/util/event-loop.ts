/**
 * Let pending I/O callbacks and signal handlers run. A long synchronous loop (training batches, greedy
 * decoding of the dev split) awaits this between iterations; without it a SIGINT handler never runs until
 * the loop ends. setImmediate fires right after the poll phase, with no timer delay: microseconds per call.
 */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
