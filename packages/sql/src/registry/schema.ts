import type { Migration } from '@mlplane/core';
import type { Generated, Insertable, Selectable } from 'kysely';
import * as createRegistry from './migrations/20261127T090000_create_registry.js';

/** Owner of the registry's tables and migrations. */
export const REGISTRY_OWNER = 'registry';

export const REGISTRY_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261127T090000_create_registry': createRegistry,
});

/** Times are epoch milliseconds. */
export interface RegisteredModelTable {
  model_id: Generated<number>;
  name: string;
  description: string;
  user_id: string | null;
  last_version: Generated<number>;
  creation_time: number;
  last_update_time: number;
}

export interface RegisteredModelTagTable {
  model_id: number;
  key: string;
  value: string;
}

export interface ModelVersionTable {
  model_id: number;
  version: number;
  source: string;
  run_id: string | null;
  run_link: string | null;
  /** ModelSignature as JSON text. */
  signature: string | null;
  status: string;
  status_message: string | null;
  stage: string;
  description: string;
  user_id: string | null;
  creation_time: number;
  last_update_time: number;
}

export interface ModelVersionTagTable {
  model_id: number;
  version: number;
  key: string;
  value: string;
}

export interface RegisteredModelAliasTable {
  model_id: number;
  alias: string;
  version: number;
}

export interface ModelStageTransitionTable {
  transition_id: Generated<number>;
  model_id: number;
  version: number;
  from_stage: string;
  to_stage: string;
  actor: string | null;
  reason: string | null;
  caused_by_version: number | null;
  transition_time: number;
}

export interface ModelAliasMoveTable {
  move_id: Generated<number>;
  model_id: number;
  alias: string;
  from_version: number | null;
  to_version: number | null;
  actor: string | null;
  reason: string | null;
  move_time: number;
}

export interface RegistryDatabase {
  registered_models: RegisteredModelTable;
  registered_model_tags: RegisteredModelTagTable;
  model_versions: ModelVersionTable;
  model_version_tags: ModelVersionTagTable;
  registered_model_aliases: RegisteredModelAliasTable;
  model_stage_transitions: ModelStageTransitionTable;
  model_alias_moves: ModelAliasMoveTable;
}

export type RegisteredModelRow = Selectable<RegisteredModelTable>;
export type ModelVersionRow = Selectable<ModelVersionTable>;
export type NewModelVersion = Insertable<ModelVersionTable>;
export type ModelStageTransitionRow = Selectable<ModelStageTransitionTable>;
export type NewModelStageTransition = Insertable<ModelStageTransitionTable>;
export type ModelAliasMoveRow = Selectable<ModelAliasMoveTable>;
