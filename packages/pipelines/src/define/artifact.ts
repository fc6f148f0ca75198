import { z } from 'zod';

/** Hex sha256, as the ArtifactStore records it. */
const SHA256 = /^[0-9a-f]{64}$/;

const artifactRefShape = z.object({
  /** Content-addressed key in the ArtifactStore (`pipelines/sha256/<hash>`), so equal bytes share one key. */
  key: z.string().min(1),
  /** `artifacts.uri(key)`: where the store keeps it. */
  uri: z.string().min(1),
  sha256: z.string().regex(SHA256, 'must be a hex sha256'),
  /** Bytes. */
  size: z.number().int().nonnegative(),
});

const artifactSchema = artifactRefShape.brand<'mlplane.Artifact'>();

/**
 * A file a step produced, stored in the ArtifactStore. The brand keeps artifacts and plain values apart at compile
 * time: wiring a number output to an artifact input (or the reverse) does not type-check.
 */
export type ArtifactRef = z.output<typeof artifactSchema>;

/** What a job step receives for an artifact input: the reference plus a local copy it can read. */
export type LocalArtifact = ArtifactRef & {
  /** A file on the workspace the orchestrator shares with the step's job (see PipelineOrchestratorOptions.workspace). */
  readonly path: string;
};

export type ArtifactSchema = typeof artifactSchema;

const artifactSchemas = new WeakSet<z.ZodType>([artifactSchema]);

/**
 * Declares an artifact input or output of a step. A job step writes an artifact output as the file
 * `$MLPLANE_OUTPUTS/<name>`; the orchestrator stores it and passes it on by reference.
 */
export function artifact(): ArtifactSchema {
  return artifactSchema;
}

/** Whether `schema` is the artifact schema (possibly under an array, for fan-in). */
export function isArtifactSchema(schema: z.ZodType): boolean {
  return artifactSchemas.has(schema);
}

/** Whether `value` has the shape of an artifact reference (used to find artifacts inside input values). */
export function isArtifactRef(value: unknown): value is ArtifactRef {
  return artifactRefShape.safeParse(value).success && Object.keys(value as object).length === 4;
}
