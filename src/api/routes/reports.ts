/**
 * Report upload: the raw bytes of an aggregate report (XML, gzip, zip or a
 * whole email) go through the same ingest as the mailbox and the folder; a
 * rejected input is kept with its reason and the answer says why.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireRole } from '../auth.js';
import type { ApiContext } from '../context.js';
import { AppError } from '../../errors.js';
import { ApiError } from '../errors.js';
import { errorSchema, uploadResult } from '../schemas.js';

export function reportRoutes(app: FastifyInstance, ctx: ApiContext, maxBytes: number): void {
  // Its own encapsulated context: here every content type is raw bytes, elsewhere bodies are JSON or forms.
  app.register(async (child) => {
    child.removeAllContentTypeParsers();
    child.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxBytes }, (_request, body, done) => done(null, body));
    child.withTypeProvider<ZodTypeProvider>().post(
      '/api/v1/reports',
      {
        preHandler: requireRole(child, 'operator'),
        bodyLimit: maxBytes,
        schema: {
          summary: 'Upload one aggregate report (XML, gzip, zip or an email with one attached); 201 stored, 200 duplicate, 422 rejected (kept with its reason)',
          tags: ['reports'],
          querystring: z.object({ name: z.string().min(1).max(200).optional().describe('what to call the input in the store and in messages, e.g. its file name') }).strict(),
          response: { 200: uploadResult, 201: uploadResult, 400: errorSchema, 401: errorSchema, 403: errorSchema, 413: errorSchema, 422: uploadResult },
        },
      },
      async (request, reply) => {
        const bytes = request.body as Buffer | undefined;
        if (!Buffer.isBuffer(bytes) || bytes.length === 0) throw new ApiError('invalid', 'body: the report bytes are missing', [{ field: 'body', reason: 'empty' }]);
        const who = request.principal!.name;
        const source = `upload:${who}${request.query.name ? `/${request.query.name}` : ''}`;
        const result = await ctx.ingest(bytes, source);
        ctx.metrics?.recordIngest('upload', result);
        if (result.status === 'error') throw new AppError('unavailable', `ingest of ${source} failed: ${result.reason}`);
        reply.code(result.status === 'stored' ? 201 : result.status === 'duplicate' ? 200 : 422);
        return result;
      },
    );
  });
}
