import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import type {
  ArtifactStore,
  AuditLog,
  Authorizer,
  artifactStoreInputs,
  auditLogInputs,
  authorizerInputs,
  ExperimentTracker,
  experimentTrackerInputs,
  ModelRegistry,
  modelRegistryInputs,
  OperationOf,
  PortInputsArityMismatch,
  SecretStore,
  secretStoreInputs,
} from '../../src/index.js';

type Unchecked<T, I> = Exclude<OperationOf<T>, keyof I>;

describe('port input schemas', () => {
  it('give every operation with arguments a schema of the same arity', () => {
    expectTypeOf<PortInputsArityMismatch<ExperimentTracker, typeof experimentTrackerInputs>>().toEqualTypeOf<never>();
    expectTypeOf<Unchecked<ExperimentTracker, typeof experimentTrackerInputs>>().toEqualTypeOf<never>();
    expectTypeOf<PortInputsArityMismatch<ModelRegistry, typeof modelRegistryInputs>>().toEqualTypeOf<never>();
    expectTypeOf<Unchecked<ModelRegistry, typeof modelRegistryInputs>>().toEqualTypeOf<never>();
    expectTypeOf<PortInputsArityMismatch<Authorizer, typeof authorizerInputs>>().toEqualTypeOf<never>();
    expectTypeOf<Unchecked<Authorizer, typeof authorizerInputs>>().toEqualTypeOf<'listRoles'>();
    expectTypeOf<PortInputsArityMismatch<AuditLog, typeof auditLogInputs>>().toEqualTypeOf<never>();
    expectTypeOf<Unchecked<AuditLog, typeof auditLogInputs>>().toEqualTypeOf<'head'>();
    expectTypeOf<PortInputsArityMismatch<ArtifactStore, typeof artifactStoreInputs>>().toEqualTypeOf<never>();
    expectTypeOf<Unchecked<ArtifactStore, typeof artifactStoreInputs>>().toEqualTypeOf<never>();
    expectTypeOf<PortInputsArityMismatch<SecretStore, typeof secretStoreInputs>>().toEqualTypeOf<never>();
    expectTypeOf<Unchecked<SecretStore, typeof secretStoreInputs>>().toEqualTypeOf<'list'>();
  });

  it('notice a schema that leaves out an optional argument', () => {
    interface Port {
      find(name: string, options?: { readonly limit?: number }): Promise<void>;
    }
    const short = { find: z.tuple([z.string()]) };
    expectTypeOf<PortInputsArityMismatch<Port, typeof short>>().toEqualTypeOf<'find'>();
    const full = { find: z.tuple([z.string(), z.object({ limit: z.number().optional() }).optional()]) };
    expectTypeOf<PortInputsArityMismatch<Port, typeof full>>().toEqualTypeOf<never>();
  });
});
