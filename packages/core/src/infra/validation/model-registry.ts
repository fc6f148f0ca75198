import { quoteValue, ValidationError } from '../../ports/errors.js';
import { RUN_ID_PATTERN, validateTrackingKey } from '../../ports/experiment-tracker.js';
import { type ModelSignature, REGISTRY_LIMITS } from '../../ports/model-registry.js';
import { normalizeName, validateNoControlCharacters, validateText } from './text.js';

/** MLflow's registered_models.name column is VARCHAR(256); the same as REGISTRY_LIMITS.modelNameLength. */
export const MODEL_NAME_LENGTH = REGISTRY_LIMITS.modelNameLength;
const RUNS_URI = /^runs:\/([^/]+)(\/.*)?$/;

/**
 * The stored form of a model name: NFC-normalised (see normalizeName), so names that differ only in their Unicode
 * encoding are one model. ValidationError naming `field` for a non-string or empty name, control and bidi
 * characters, '/', or more than MODEL_NAME_LENGTH chars. Registries store and look up this form.
 */
export function normalizeModelName(name: unknown, field = 'name'): string {
  const normalized = normalizeName(name, { field, what: 'model name', maxLength: MODEL_NAME_LENGTH });
  if (normalized.includes('/')) {
    throw new ValidationError(`model name '${normalized}' may not contain '/': models:/ URIs could not name it`, {
      field,
    });
  }
  return normalized;
}

/** ValidationError unless `name` is acceptable to normalizeModelName (which registries use to store and look up). */
export function validateModelName(name: unknown, field = 'name'): asserts name is string {
  normalizeModelName(name, field);
}

export function validateVersionNumber(version: unknown, field = 'version'): asserts version is number {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new ValidationError(`version must be a positive integer, got ${String(version)}`, { field });
  }
}

export function validateTag(key: unknown, value: unknown, field = 'key'): void {
  if (typeof key !== 'string') throw new ValidationError('tag key must be a string', { field });
  // The registry's own limit first, so the message names it rather than the tracker's equal keyLength.
  if (key.length > REGISTRY_LIMITS.tagKeyLength) {
    throw new ValidationError(
      `tag key '${key.slice(0, 50)}...' exceeds the tagKeyLength limit of ${REGISTRY_LIMITS.tagKeyLength}`,
      { field },
    );
  }
  validateTrackingKey(key, field);
  if (typeof value !== 'string') throw new ValidationError(`tag '${key}' value must be a string`, { field });
  validateText(value, field, `tag '${key}' value`);
  if (value.length > REGISTRY_LIMITS.tagValueLength) {
    throw new ValidationError(
      `tag '${key}' value has ${value.length} chars; the tagValueLength limit is ${REGISTRY_LIMITS.tagValueLength}`,
      { field },
    );
  }
}

export function validateTags(tags: unknown): [string, string][] {
  if (tags === undefined) return [];
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) {
    throw new ValidationError('tags must be an object of string values', { field: 'tags' });
  }
  const entries = Object.entries(tags as Record<string, unknown>);
  if (entries.length > REGISTRY_LIMITS.tagsPerCreate) {
    throw new ValidationError(
      `tags holds ${entries.length} entries; the tagsPerCreate limit is ${REGISTRY_LIMITS.tagsPerCreate}: set the rest one by one`,
      { field: 'tags' },
    );
  }
  for (const [key, value] of entries) validateTag(key, value, `tags.${key}`);
  return entries as [string, string][];
}

/**
 * ValidationError unless `value` is absent or a string of free text (no control characters but tab, LF, CR); with
 * `limit` (a REGISTRY_LIMITS entry), also when it is longer than that limit.
 */
export function validateOptionalString(
  value: unknown,
  field: string,
  limit?: keyof typeof REGISTRY_LIMITS,
): asserts value is string | undefined {
  if (value !== undefined && typeof value !== 'string') {
    throw new ValidationError(`${field} must be a string`, { field });
  }
  if (limit !== undefined && value !== undefined && value.length > REGISTRY_LIMITS[limit]) {
    throw new ValidationError(`${field} has ${value.length} chars; the ${limit} limit is ${REGISTRY_LIMITS[limit]}`, {
      field,
    });
  }
  if (value !== undefined) validateText(value, field, field);
}

/** As validateOptionalString, but without any control character (URIs, user ids). */
export function validateOptionalLine(
  value: unknown,
  field: string,
  limit?: keyof typeof REGISTRY_LIMITS,
): asserts value is string | undefined {
  validateOptionalString(value, field, limit);
  if (value !== undefined) validateNoControlCharacters(value, field, field);
}

export function validateRunId(runId: unknown, field = 'runId'): asserts runId is string {
  if (typeof runId !== 'string' || !RUN_ID_PATTERN.test(runId)) {
    throw new ValidationError(`${field} ${quoteValue(runId)} is not a run id`, { field });
  }
}

/** The run a `runs:/<id>/<path>` source names, as MLflow reads it. */
export function runIdOfSource(source: string): string | undefined {
  return RUNS_URI.exec(source)?.[1];
}

/** Checks a signature's shape: arrays of column or tensor specs, one kind per side, as MLflow requires. */
export function validateSignature(signature: unknown): asserts signature is ModelSignature | undefined {
  if (signature === undefined) return;
  const fail = (message: string): never => {
    throw new ValidationError(`signature ${message}`, { field: 'signature' });
  };
  if (typeof signature !== 'object' || signature === null) fail('must be an object with inputs and outputs');
  const s = signature as Record<string, unknown>;
  for (const side of ['inputs', 'outputs'] as const) {
    const specs = s[side];
    if (!Array.isArray(specs)) fail(`${side} must be an array`);
    const kinds = new Set<unknown>();
    (specs as unknown[]).forEach((spec, i) => {
      const at = `${side}[${i}]`;
      if (typeof spec !== 'object' || spec === null) fail(`${at} must be a column or tensor spec`);
      const o = spec as Record<string, unknown>;
      if (o.name !== undefined && typeof o.name !== 'string') fail(`${at}.name must be a string`);
      if (o.kind === 'column') {
        if (typeof o.type !== 'string' || o.type === '') fail(`${at}.type must be a non-empty string`);
        if (o.required !== undefined && typeof o.required !== 'boolean') fail(`${at}.required must be a boolean`);
      } else if (o.kind === 'tensor') {
        if (typeof o.dtype !== 'string' || o.dtype === '') fail(`${at}.dtype must be a non-empty string`);
        const shape = o.shape;
        if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < -1)) {
          fail(`${at}.shape must be an array of integers (-1 for a variable dimension)`);
        }
      } else {
        fail(`${at}.kind must be 'column' or 'tensor'`);
      }
      kinds.add(o.kind);
    });
    if (kinds.size > 1) fail(`${side} mixes columns and tensors; use one kind per side`);
  }
  const length = JSON.stringify(signature).length;
  if (length > REGISTRY_LIMITS.signatureLength) {
    fail(`takes ${length} chars as JSON; the signatureLength limit is ${REGISTRY_LIMITS.signatureLength}`);
  }
  if (s.params !== undefined) {
    if (!Array.isArray(s.params)) fail('params must be an array');
    (s.params as unknown[]).forEach((p, i) => {
      const o = p as Record<string, unknown> | null;
      if (typeof o !== 'object' || o === null || typeof o.name !== 'string' || typeof o.type !== 'string') {
        fail(`params[${i}] must have a string name and type`);
      }
    });
  }
}

/** ValidationError unless `description` is a string within `descriptionLength`, free of control characters but tabs and line breaks. */
export function validateDescription(description: unknown, field = 'description'): asserts description is string {
  if (typeof description !== 'string') {
    throw new ValidationError(`${field} must be a string`, { field });
  }
  if (description.length > REGISTRY_LIMITS.descriptionLength) {
    throw new ValidationError(
      `${field} has ${description.length} chars; the descriptionLength limit is ${REGISTRY_LIMITS.descriptionLength}`,
      { field },
    );
  }
  validateText(description, field, field);
}
