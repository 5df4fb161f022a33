import { describe, expect, it } from 'vitest';
import { ImageImports, defaultName } from '../../src/vm/images.js';
import type { ImageStorePort } from '../../src/vm/image-ports.js';
import type { ImportControl, ImportRequest, ImportResult, StoredImage } from '../../src/model/image.js';
import type { Vm } from '../../src/model/vm.js';
import { VmletError } from '../../src/model/errors.js';
import { silentLogger } from '../support/fake-ports.js';

const stored = (name: string): StoredImage => ({ name, path: `/store/${name}.qcow2`, format: 'qcow2', virtualSizeBytes: 1, actualSizeBytes: 1, source: 's', createdAt: '2026-01-01T00:00:00.000Z' });

/** A store whose imports wait until released (or aborted), and whose chains are given. */
class FakeStore implements ImageStorePort {
  images = new Map<string, StoredImage>();
  chains = new Map<string, string[]>();
  pending: { request: ImportRequest; control: ImportControl; release: () => void }[] = [];
  sweep = async () => ['half.qcow2'];
  list = async () => [...this.images.values()];
  get = async (name: string) => this.images.get(name);
  remove = async (name: string) => void this.images.delete(name);
  chainOf = async (path: string) => this.chains.get(path) ?? [path];
  sizeBytes = () => this.images.size;
  importImage(request: ImportRequest, control: ImportControl): Promise<ImportResult> {
    return new Promise((resolve, reject) => {
      control.signal.addEventListener('abort', () => reject(new VmletError('CANCELLED', 'cancelled')));
      this.pending.push({
        request,
        control,
        release: () => {
          this.images.set(request.name, stored(request.name));
          resolve({ images: [stored(request.name)], warnings: [], bytesRead: 42 });
        },
      });
    });
  }
}

const vm = (id: string, imagePath: string, overlayPath?: string): Vm =>
  ({ spec: { id, labels: {}, vcpus: 1, memoryMib: 64, disks: [{ name: 'root', imagePath, overlay: !!overlayPath, readonly: false }], nics: [] }, status: { disks: overlayPath ? [{ name: 'root', path: overlayPath, format: 'qcow2' }] : [] } }) as unknown as Vm;

function setup(vms: Vm[] = []) {
  const store = new FakeStore();
  const observed: [string, number][] = [];
  const images = new ImageImports(store, () => vms, silentLogger, (r, b) => observed.push([r, b]));
  return { store, images, observed };
}

const code = (p: Promise<unknown>): Promise<string> => p.then(() => 'OK', (e: VmletError) => e.code);
const call = (over: Partial<Parameters<ImageImports['import']>[0]> = {}) => ({ sourcePath: '/src/web.ova', name: 'web', format: '', outputFormat: '', bridge: '', ...over });
const tick = () => new Promise((r) => setImmediate(r));

describe('ImageImports: the store domain', () => {
  it('one import per name: a second is ALREADY_EXISTS while the first runs; an existing image too', async () => {
    const { store, images, observed } = setup();
    const first = images.import(call(), new AbortController().signal, () => undefined);
    await tick();
    expect(await code(images.import(call(), new AbortController().signal, () => undefined))).toBe('ALREADY_EXISTS');
    store.pending[0]!.release();
    expect((await first).images.map((i) => i.name)).toEqual(['web']);
    expect(await code(images.import(call(), new AbortController().signal, () => undefined))).toBe('ALREADY_EXISTS');
    expect(observed).toEqual([['ok', 42], ['error', 0]]);
  });

  it('names further disks claimed by the import are held too', async () => {
    const { store, images } = setup();
    const first = images.import(call(), new AbortController().signal, () => undefined);
    await tick();
    store.pending[0]!.control.claim('web-disk2');
    expect(await code(images.import(call({ name: 'web-disk2' }), new AbortController().signal, () => undefined))).toBe('ALREADY_EXISTS');
    store.pending[0]!.release();
    await first;
  });

  it('CancelImport aborts the running import (CANCELLED, counted); no import of that name is NOT_FOUND', async () => {
    const { store, images, observed } = setup();
    const running = code(images.import(call(), new AbortController().signal, () => undefined));
    await tick();
    expect(store.pending[0]!.control.signal.aborted).toBe(false);
    expect(await images.cancel('web')).toEqual({ name: 'web', source: '/src/web.ova' });
    expect(await running).toBe('CANCELLED');
    expect(observed).toEqual([['cancelled', 0]]);
    expect(await code(images.cancel('web'))).toBe('NOT_FOUND');
  });

  it('the caller going away (its signal) aborts the import', async () => {
    const { store, images } = setup();
    const gone = new AbortController();
    const running = code(images.import(call(), gone.signal, () => undefined));
    await tick();
    gone.abort();
    expect(store.pending[0]!.control.signal.aborted).toBe(true);
    expect(await running).toBe('CANCELLED');
  });

  it('bad names and formats are INVALID_ARGUMENT; the name defaults to the file name', async () => {
    const { store, images } = setup();
    expect(await code(images.import(call({ name: 'Bad_Name' }), new AbortController().signal, () => undefined))).toBe('INVALID_ARGUMENT');
    expect(await code(images.import(call({ outputFormat: 'vmdk' }), new AbortController().signal, () => undefined))).toBe('INVALID_ARGUMENT');
    expect(await code(images.import(call({ sourcePath: '' }), new AbortController().signal, () => undefined))).toBe('INVALID_ARGUMENT');
    const p = images.import(call({ name: '', sourcePath: '/src/My Disk.vmdk' }), new AbortController().signal, () => undefined);
    await tick();
    expect(store.pending[0]!.request.name).toBe('my-disk');
    store.pending[0]!.release();
    await p;
  });

  it('used_by: a VM naming the image, or one whose overlay is backed by it; DeleteImage is then FAILED_PRECONDITION naming them', async () => {
    const vms = [vm('direct', '/store/web.qcow2'), vm('overlay', '/elsewhere/base.qcow2', '/state/overlay/root.qcow2'), vm('other', '/store/db.qcow2')];
    const { store, images } = setup(vms);
    store.images.set('web', stored('web'));
    store.images.set('db', stored('db'));
    store.images.set('free', stored('free'));
    store.chains.set('/state/overlay/root.qcow2', ['/state/overlay/root.qcow2', '/store/web.qcow2']);
    expect((await images.list()).map((i) => [i.name, i.usedBy])).toEqual([['web', ['direct', 'overlay']], ['db', ['other']], ['free', []]]);
    const err = (await images.delete('web').catch((e: unknown) => e)) as VmletError;
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toMatch(/used by VMs direct, overlay/);
    await images.delete('free');
    expect(store.images.has('free')).toBe(false);
    expect(await code(images.get('free'))).toBe('NOT_FOUND');
  });

  it.each([
    ['/x/Web Server.ova', 'web-server'],
    ['/x/disk.vmdk', 'disk'],
    ['/x/a.b.qcow2', 'a-b'],
    ['/x/___.raw', 'image'],
  ])('defaultName(%s) = %s', (path, name) => {
    expect(defaultName(path)).toBe(name);
  });
});
