/**
 *   GET /healthz   the process is up
 *   GET /readyz    the model is loaded and an instance can take batches (503 while loading, closing, failed, or
 *                  while no instance is alive)
 *   GET /metrics   Prometheus text
 */
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../service.js';

export function healthRoutes(app: FastifyInstance, { service, metrics }: ServeContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (service.state !== 'ready') {
      return reply
        .status(503)
        .send({ status: service.state, ...(service.loadError ? { error: service.loadError.message } : {}) });
    }
    const alive = service.liveInstances;
    if (alive === 0) {
      if (service.batcher?.recovering)
        return reply
          .status(503)
          .send({ status: 'recovering', error: 'no model instance can work now: their threads are being replaced' });
      return reply
        .status(503)
        .send({ status: 'no_model', error: 'no model instance is running (their threads stopped): restart sat serve' });
    }
    return { status: 'ready', model: service.engine!.info.modelId, instances: alive };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
