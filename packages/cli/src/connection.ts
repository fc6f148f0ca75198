import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, type MlplaneClient } from '@mlplane/client';
import { PROJECT_PATTERN } from '@mlplane/core';
import { ADMIN_TOKEN_FILE } from './files.js';
import { CliError, EXIT } from './output.js';

/** The options every client command takes (or reads from MLPLANE_URL, MLPLANE_TOKEN, MLPLANE_PROJECT). */
export interface ConnectionOptions {
  readonly url?: string;
  readonly token?: string;
  readonly project?: string;
  readonly json?: boolean;
}

export interface Connection {
  readonly client: MlplaneClient;
  readonly url: string;
  readonly project: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const DEFAULT_PROJECT = 'default';

/**
 * The client for a command: `--url`, else MLPLANE_URL, else http://127.0.0.1:8080; `--token`, else MLPLANE_TOKEN,
 * else the admin token a local `mlplane up` wrote to ./.mlplane/admin-token (when readable).
 */
export function connect(options: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): Connection {
  const url = options.url ?? env.MLPLANE_URL ?? DEFAULT_URL;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new CliError(`--url must be an http(s) URL, got '${url}'`, EXIT.usage);
  }
  const project = options.project ?? env.MLPLANE_PROJECT ?? DEFAULT_PROJECT;
  if (!PROJECT_PATTERN.test(project)) {
    throw new CliError(`--project must be a project name (letters, digits, . _ -), got '${project}'`, EXIT.usage);
  }
  const token = options.token ?? env.MLPLANE_TOKEN ?? localAdminToken();
  return { client: createClient({ url, ...(token ? { token } : {}) }), url, project };
}

function localAdminToken(): string | undefined {
  try {
    return readFileSync(join('.mlplane', ADMIN_TOKEN_FILE), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
