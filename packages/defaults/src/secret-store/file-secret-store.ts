import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  NotFoundError,
  SECRET_NAME_PATTERN,
  type SecretStore,
  type SecretStoreCapabilities,
  UnavailableError,
  ValidationError,
  validateSecretValue,
} from '@mlplane/core';
import { FileLock } from '../file-lock.js';

export interface EnvFileSecretStoreOptions {
  /** The encrypted secrets file; created on the first `set`. */
  readonly path: string;
  /**
   * 32 random bytes as 64 hex characters or as base64 (`openssl rand -base64 32`). The key is
   * used directly for AES-256-GCM; passphrases are not accepted, so there is no weak-KDF path.
   */
  readonly masterKey: string;
  /** Where `MLPLANE_SECRET_<NAME>` overrides are read; defaults to `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

/** On-disk envelope: the whole name -> value map encrypted as one JSON document. */
interface SecretsFile {
  readonly format: typeof FORMAT;
  readonly version: 1;
  readonly cipher: 'aes-256-gcm';
  readonly iv: string;
  readonly tag: string;
  readonly data: string;
}

const FORMAT = 'mlplane-secrets';
const TAG_BYTES = 16;
const ENV_PREFIX = 'MLPLANE_SECRET_';
// The header is bound into the tag, so a file cannot be relabelled as another format or version.
const AAD = Buffer.from(`${FORMAT}/1`, 'utf8');

/** `db/password` -> `MLPLANE_SECRET_DB_PASSWORD`. */
export function secretEnvName(name: string): string {
  return ENV_PREFIX + name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * SecretStore for one machine: environment variables first, then an encrypted file.
 *
 * `get(name)` returns `MLPLANE_SECRET_<NAME>` when that variable is set (name upper-cased,
 * every non-alphanumeric character replaced by `_`), otherwise the value from the file. The
 * environment is read-only: `set` and `delete` change the file, and a variable of the same name
 * still wins on read, so deployments can override a stored value without touching the file.
 * `list` returns the file's names plus, for variables that match no stored name, the part after
 * the prefix (so every listed name can be read with `get`).
 *
 * The file holds the whole map encrypted with AES-256-GCM under the master key, with a fresh
 * random 12-byte IV per write and a full 16-byte tag (a shorter tag in the file is refused, so a forger cannot
 * shrink the tag until a guess passes). Writes replace the file atomically (temp file, mode 0600, rename) under an
 * OS lock on `<path>.lock` held from read to rename, so concurrent `set`s never lose an update, whether they come
 * from one instance, several instances or several processes on the same file.
 */
export class EnvFileSecretStore implements SecretStore {
  readonly capabilities: SecretStoreCapabilities = Object.freeze({ writable: true });

  readonly #path: string;
  readonly #key: Buffer;
  readonly #env: NodeJS.ProcessEnv;
  #writes: Promise<unknown> = Promise.resolve();

  constructor(options: EnvFileSecretStoreOptions) {
    if (typeof options?.path !== 'string' || options.path === '') {
      throw new ValidationError('EnvFileSecretStore needs the path of its secrets file', { field: 'path' });
    }
    this.#path = options.path;
    this.#key = parseMasterKey(options.masterKey);
    this.#env = options.env ?? process.env;
  }

  async get(name: string): Promise<string> {
    validateName(name);
    const fromEnv = this.#env[secretEnvName(name)];
    if (fromEnv !== undefined) return fromEnv;
    const value = (await this.#read()).get(name);
    if (value === undefined) {
      throw new NotFoundError(
        `secret '${name}' does not exist; set it with the secret store or the environment variable ${secretEnvName(name)}`,
      );
    }
    return value;
  }

  async list(): Promise<readonly string[]> {
    const names = new Set((await this.#read()).keys());
    const storedEnvNames = new Set([...names].map(secretEnvName));
    for (const [variable, value] of Object.entries(this.#env)) {
      if (value === undefined || !variable.startsWith(ENV_PREFIX) || storedEnvNames.has(variable)) continue;
      const name = variable.slice(ENV_PREFIX.length);
      // Only names that map back to the same variable are listed, so `get` finds each one.
      if (SECRET_NAME_PATTERN.test(name) && secretEnvName(name) === variable) names.add(name);
    }
    return [...names].sort();
  }

  async set(name: string, value: string): Promise<void> {
    validateName(name);
    validateSecretValue(name, value);
    await this.#update((secrets) => {
      secrets.set(name, value);
      return true;
    });
  }

  async delete(name: string): Promise<void> {
    validateName(name);
    await this.#update((secrets) => secrets.delete(name));
  }

  /**
   * Runs read-modify-write after every earlier write of this instance, holding the file lock that excludes other
   * instances and processes; `change` returns whether to write.
   */
  #update(change: (secrets: Map<string, string>) => boolean): Promise<void> {
    const run = this.#writes.then(async () => {
      await this.#ensureDir();
      await FileLock.with(`${this.#path}.lock`, async () => {
        const secrets = await this.#read();
        if (change(secrets)) await this.#write(secrets);
      });
    });
    // The chain continues past a failed write; the failure still reaches this caller.
    this.#writes = run.catch(() => undefined);
    return run;
  }

  async #ensureDir(): Promise<void> {
    try {
      await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new UnavailableError(
        `cannot create the directory of secrets file ${this.#path}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  async #read(): Promise<Map<string, string>> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return new Map();
      throw new UnavailableError(`cannot read secrets file ${this.#path}: ${(err as Error).message}`, { cause: err });
    }
    let envelope: SecretsFile;
    try {
      envelope = JSON.parse(text) as SecretsFile;
      if (envelope.format !== FORMAT || envelope.version !== 1 || envelope.cipher !== 'aes-256-gcm') {
        throw new Error(`unexpected header ${JSON.stringify([envelope.format, envelope.version, envelope.cipher])}`);
      }
    } catch (err) {
      throw new UnavailableError(
        `secrets file ${this.#path} is not an mlplane secrets file; move it aside or point the store at another path`,
        { cause: err },
      );
    }
    let plaintext: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(envelope.iv, 'base64'), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(AAD);
      decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
      plaintext = Buffer.concat([decipher.update(Buffer.from(envelope.data, 'base64')), decipher.final()]).toString(
        'utf8',
      );
    } catch (err) {
      // The cause is node's "unable to authenticate data": it names no secret and no key material.
      throw new UnavailableError(`cannot decrypt secrets file ${this.#path}: wrong master key or corrupted file`, {
        cause: err,
      });
    }
    const parsed = JSON.parse(plaintext) as Record<string, string>;
    return new Map(Object.entries(parsed));
  }

  async #write(secrets: Map<string, string>): Promise<void> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(AAD);
    const plaintext = Buffer.from(
      JSON.stringify(Object.fromEntries([...secrets].sort(([a], [b]) => (a < b ? -1 : 1)))),
    );
    const data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const envelope: SecretsFile = {
      format: FORMAT,
      version: 1,
      cipher: 'aes-256-gcm',
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
    const temp = `${this.#path}.${randomBytes(8).toString('hex')}.tmp`;
    try {
      await writeFile(temp, `${JSON.stringify(envelope)}\n`, { mode: 0o600, flag: 'wx', flush: true });
      await rename(temp, this.#path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw new UnavailableError(`cannot write secrets file ${this.#path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function validateName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !SECRET_NAME_PATTERN.test(name)) {
    const shown =
      typeof name === 'string' ? JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name) : typeof name;
    throw new ValidationError(
      `secret name ${shown} is invalid: use 1 to 256 letters, digits, '.', '_', '-' or '/', starting with a letter or digit`,
      { field: 'name' },
    );
  }
}

function parseMasterKey(masterKey: unknown): Buffer {
  const problem =
    'masterKey must be 32 random bytes given as 64 hex characters or as base64 (for example the output of `openssl rand -base64 32`)';
  if (typeof masterKey !== 'string') throw new ValidationError(problem, { field: 'masterKey' });
  const text = masterKey.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const unpadded = text.replace(/=+$/, '');
  const decoded = Buffer.from(unpadded, /[-_]/.test(unpadded) ? 'base64url' : 'base64');
  const canonical = decoded.toString(/[-_]/.test(unpadded) ? 'base64url' : 'base64').replace(/=+$/, '');
  if (decoded.length !== 32 || canonical !== unpadded) throw new ValidationError(problem, { field: 'masterKey' });
  return decoded;
}
