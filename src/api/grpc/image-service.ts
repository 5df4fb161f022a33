import type { ServerWritableStream } from '@grpc/grpc-js';
import type { ImageImports, ImageView } from '../../vm/images.js';
import type { ImageServiceHandlers } from './generated/vmlet/v1/ImageService.js';
import type { Image } from './generated/vmlet/v1/Image.js';
import type { ImportImageRequest__Output } from './generated/vmlet/v1/ImportImageRequest.js';
import type { ImportProgress } from './generated/vmlet/v1/ImportProgress.js';
import { specToProto, timestamp } from './convert.js';
import { type CallContext, streamHandler, unaryHandler } from './observe.js';

export function imageToProto(i: ImageView): Image {
  return {
    name: i.name,
    path: i.path,
    format: i.format,
    virtualSizeBytes: i.virtualSizeBytes,
    actualSizeBytes: i.actualSizeBytes,
    source: i.source,
    createdAt: timestamp(i.createdAt),
    usedBy: i.usedBy,
  };
}

/** At most this many progress messages a second: a fast conversion reports every 1%. */
const PROGRESS_INTERVAL_MS = 200;

export function imageServiceHandlers(images: ImageImports, ctx: CallContext): ImageServiceHandlers {
  return {
    ImportImage: streamHandler(ctx, 'ImportImage', (call) => importImage(images, call)),
    CancelImport: unaryHandler(ctx, 'CancelImport', async (req) => {
      const { name, source } = await images.cancel(req.name);
      return { name, source };
    }),
    ListImages: unaryHandler(ctx, 'ListImages', async () => ({ images: (await images.list()).map(imageToProto) })),
    GetImage: unaryHandler(ctx, 'GetImage', async (req) => imageToProto(await images.get(req.name))),
    DeleteImage: unaryHandler(ctx, 'DeleteImage', async (req) => {
      await images.delete(req.name);
      return {};
    }),
  };
}

/** Streams progress (at most every PROGRESS_INTERVAL_MS) and the result; the client leaving cancels the import. */
async function importImage(images: ImageImports, call: ServerWritableStream<ImportImageRequest__Output, ImportProgress>): Promise<void> {
  const req = call.request;
  const gone = new AbortController();
  call.on('cancelled', () => gone.abort());
  if (call.cancelled) gone.abort();
  let lastSent = 0;
  const result = await images.import(
    { sourcePath: req.sourcePath, name: req.name, format: req.format, outputFormat: req.outputFormat, bridge: req.bridge },
    gone.signal,
    (u) => {
      const now = Date.now();
      if (now - lastSent < PROGRESS_INTERVAL_MS && u.percent < 100 && u.percent > 0) return;
      lastSent = now;
      call.write({ percent: u.percent, bytesDone: u.bytesDone, bytesTotal: u.bytesTotal, current: u.current });
    },
  );
  const all = result.images.map(imageToProto);
  call.write({
    percent: 100,
    bytesDone: result.bytesRead,
    bytesTotal: result.bytesRead,
    image: all[0] ?? null,
    images: all,
    proposedSpec: result.proposedSpec ? specToProto(result.proposedSpec) : null,
    warnings: result.warnings,
  });
}
