import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectDnForms } from '../../src/host/cert-subject.js';

const exec = promisify(execFile);

describe('certificate subjects as QEMU compares them', () => {
  let dir: string;
  const cert = async (subject: string): Promise<string> => {
    const name = `c${Math.random().toString(36).slice(2)}`;
    await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', subject, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { timeout: 30_000 });
    return readFile(join(dir, `${name}.crt`), 'utf8');
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-subject-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('one RDN: one form', async () => {
    expect(subjectDnForms(await cert('/CN=node-a'))).toEqual(['CN=node-a']);
  });

  it('several RDNs: certificate order and RFC 4514 order, and nothing else', async () => {
    expect(subjectDnForms(await cert('/C=DE/O=vmlet/CN=node-a'))).toEqual(['C=DE,O=vmlet,CN=node-a', 'CN=node-a,O=vmlet,C=DE']);
  });

  it('escapes what RFC 4514 escapes, so a value cannot pose as another RDN', async () => {
    expect(subjectDnForms(await cert('/O=a\\,CN=admin/CN=x'))).toEqual(['O=a\\,CN=admin,CN=x', 'CN=x,O=a\\,CN=admin']);
  });
});
