import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { factsKey, readCachedFacts, worthKeeping, writeCachedFacts, type QemuFacts } from '../../src/qemu/probe-cache.js';

const FACTS: QemuFacts = { version: '7.2.22', choice: { accelerator: 'tcg', reason: 'KVM unavailable' } };

describe('the QEMU facts cache', () => {
  let dir: string;
  let binary: string;
  let kvm: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-facts-'));
    binary = join(dir, 'qemu-system-x86_64');
    kvm = join(dir, 'kvm');
    await writeFile(binary, '#!/bin/sh\n');
    await chmod(binary, 0o755);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const key = (over: Partial<Parameters<typeof factsKey>[0]> = {}) => factsKey({ qemuBinary: binary, mode: 'auto', kvmDevice: kvm, ...over });

  it('gives back what was kept while nothing changed', async () => {
    const k = (await key())!;
    expect(await readCachedFacts(dir, k)).toBeUndefined();
    await writeCachedFacts(dir, k, FACTS);
    expect(await readCachedFacts(dir, (await key())!)).toEqual(FACTS);
  });

  it('probes again when the binary, /dev/kvm, the mode or the namespace changed', async () => {
    const k = (await key())!;
    await writeCachedFacts(dir, k, FACTS);
    await writeFile(kvm, '');
    expect(await key()).not.toBe(k);
    await rm(kvm);
    expect(await key()).toBe(k);
    await utimes(binary, new Date(0), new Date(0));
    const touched = (await key())!;
    expect(touched).not.toBe(k);
    expect(await readCachedFacts(dir, touched)).toBeUndefined();
    expect(await key({ mode: 'kvm' })).not.toBe(touched);
    expect(await key({ netns: 'other' })).not.toBe(touched);
  });

  it('reads a torn or foreign file as nothing kept', async () => {
    const k = (await key())!;
    await writeFile(join(dir, 'qemu-facts.json'), '{"key":');
    expect(await readCachedFacts(dir, k)).toBeUndefined();
    await writeFile(join(dir, 'qemu-facts.json'), JSON.stringify({ key: k, facts: { version: 7, choice: {} } }));
    expect(await readCachedFacts(dir, k)).toBeUndefined();
  });

  it('keys nothing for a binary it cannot find', async () => {
    expect(await factsKey({ qemuBinary: 'no-such-qemu-anywhere', mode: 'auto' })).toBeUndefined();
    expect(await factsKey({ qemuBinary: join(dir, 'no-such-qemu'), mode: 'auto' })).toBeUndefined();
  });

  it('keeps KVM, and TCG only where there is no /dev/kvm or TCG was asked for', async () => {
    const kvmFacts: QemuFacts = { version: '8.2.0', choice: { accelerator: 'kvm', reason: 'KVM works' } };
    expect(await worthKeeping(kvmFacts, 'auto', kvm)).toBe(true);
    expect(await worthKeeping(FACTS, 'auto', kvm)).toBe(true);
    await writeFile(kvm, '');
    expect(await worthKeeping(FACTS, 'auto', kvm)).toBe(false);
    expect(await worthKeeping(FACTS, 'tcg', kvm)).toBe(true);
  });
});
