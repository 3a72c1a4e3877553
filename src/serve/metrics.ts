/**
 * The service's Prometheus metrics (GET /metrics), in a registry of its own so that several servers in
 * one process (tests) never share counters. Names follow Prometheus conventions: seconds, _total.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly latency: Histogram<'route'>;
  readonly stage: Histogram<'stage'>;
  readonly refusals: Counter<'reason'>;
  readonly queueDepth: Gauge;
  readonly uploads: Gauge;
  readonly batchSize: Histogram;
  readonly lingering: Gauge;
  readonly threadHeap: Gauge;
  readonly lingerEnds: Counter<'why'>;
  private imageCache: () => number = () => 0;

  constructor(maxBatch: number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sat_' });
    this.requests = new Counter({
      name: 'sat_http_requests_total',
      help: 'HTTP requests answered, by route, method and status code',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'sat_http_request_duration_seconds',
      help: 'Time from request to response, by route',
      labelNames: ['route'],
      registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    this.stage = new Histogram({
      name: 'sat_caption_stage_seconds',
      help: 'Time per stage: image (decode + resize of one image), queue (one caption waiting for its batch), model (one batch in encoder + decoder)',
      labelNames: ['stage'],
      registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.refusals = new Counter({
      name: 'sat_refusals_total',
      help: 'Caption requests refused, by reason (the error code in the JSON answer)',
      labelNames: ['reason'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'sat_queue_depth',
      help: 'Caption requests admitted and not yet running',
      registers,
    });
    this.uploads = new Gauge({
      name: 'sat_uploads_in_flight',
      help: 'Caption requests whose bodies are still arriving (--max-uploads)',
      registers,
    });
    this.lingering = new Gauge({
      name: 'sat_lingering_connections',
      help: 'Connections refused before their body was read, still read on so the client gets the answer (--linger)',
      registers,
    });
    this.lingerEnds = new Counter({
      name: 'sat_linger_ends_total',
      help: 'Lingering connections closed, by why: body-read, client-closed, bytes (--linger-bytes), time (--linger), error',
      labelNames: ['why'],
      registers,
    });
    this.threadHeap = new Gauge({
      name: 'sat_model_thread_heap_used_bytes',
      help: "V8 heap used on the model thread that ran the latest batch (the server thread's is sat_nodejs_heap_size_used_bytes)",
      registers,
    });
    const metrics = this;
    new Gauge({
      name: 'sat_image_cache_bytes',
      help: "Bytes held by libvips' operation cache (--image-cache-mb)",
      registers,
      collect() {
        this.set(metrics.imageCache());
      },
    });
    const sizes = [1, 2, 4, 8, 16, 32, 64].filter((b) => b < maxBatch).concat(maxBatch);
    this.batchSize = new Histogram({
      name: 'sat_batch_size',
      help: 'Images per model batch',
      buckets: sizes,
      registers,
    });
  }

  /** Report what `bytes()` says libvips' cache holds, on every scrape. */
  watchImageCache(bytes: () => number): void {
    this.imageCache = bytes;
  }
}
