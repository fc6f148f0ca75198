import type { AuditLog, Authorizer, ExperimentTracker, ModelRegistry, Permission } from '@mlplane/core';
import { ValidationError } from '@mlplane/core';

type MethodNames<T> = { [K in keyof T]-?: T[K] extends (...args: any[]) => unknown ? K & string : never }[keyof T];
type OperationsOf<
  Port extends string,
  T,
  Excluded extends string = never,
> = `${Port}.${Exclude<MethodNames<T>, Excluded>}`;

/**
 * Every operation of the ports a gateway exposes, as `<port>.<method>`. The authorizer's own `authorize`, `require`
 * and `verifyToken` are the checks themselves and need no permission.
 */
export type PortOperation =
  | OperationsOf<'experimentTracker', ExperimentTracker>
  | OperationsOf<'modelRegistry', ModelRegistry>
  | OperationsOf<'auditLog', AuditLog>
  | OperationsOf<'authorizer', Authorizer, 'authorize' | 'require' | 'verifyToken'>;

/**
 * The permission each port operation needs; the type makes the map complete, so a method added to a port does not
 * compile until it declares one. Run artifacts belong to their experiment (as in MLflow's permissions); restoring
 * needs the right to delete; moving or removing an alias is a promotion.
 */
export const PORT_PERMISSIONS: Readonly<Record<PortOperation, Permission>> = Object.freeze({
  'experimentTracker.createExperiment': 'experiment.write',
  'experimentTracker.getExperiment': 'experiment.read',
  'experimentTracker.getExperimentByName': 'experiment.read',
  'experimentTracker.searchExperiments': 'experiment.read',
  'experimentTracker.updateExperiment': 'experiment.write',
  'experimentTracker.setExperimentTag': 'experiment.write',
  'experimentTracker.deleteExperiment': 'experiment.delete',
  'experimentTracker.restoreExperiment': 'experiment.delete',
  'experimentTracker.createRun': 'experiment.write',
  'experimentTracker.getRun': 'experiment.read',
  'experimentTracker.updateRun': 'experiment.write',
  'experimentTracker.deleteRun': 'experiment.delete',
  'experimentTracker.restoreRun': 'experiment.delete',
  'experimentTracker.logMetric': 'experiment.write',
  'experimentTracker.logParam': 'experiment.write',
  'experimentTracker.setTag': 'experiment.write',
  'experimentTracker.deleteTag': 'experiment.write',
  'experimentTracker.logBatch': 'experiment.write',
  'experimentTracker.getMetricHistory': 'experiment.read',
  'experimentTracker.logInputs': 'experiment.write',
  'experimentTracker.searchRuns': 'experiment.read',
  'experimentTracker.logArtifact': 'experiment.write',
  'experimentTracker.listRunArtifacts': 'experiment.read',
  'experimentTracker.openArtifact': 'experiment.read',

  'modelRegistry.createModel': 'model.write',
  'modelRegistry.getModel': 'model.read',
  'modelRegistry.updateModel': 'model.write',
  'modelRegistry.renameModel': 'model.write',
  'modelRegistry.deleteModel': 'model.delete',
  'modelRegistry.searchModels': 'model.read',
  'modelRegistry.createVersion': 'model.write',
  'modelRegistry.getVersion': 'model.read',
  'modelRegistry.updateVersion': 'model.write',
  'modelRegistry.deleteVersion': 'model.delete',
  'modelRegistry.searchVersions': 'model.read',
  'modelRegistry.getLatestVersions': 'model.read',
  'modelRegistry.transitionStage': 'model.promote',
  'modelRegistry.getTransitionHistory': 'model.read',
  'modelRegistry.setAlias': 'model.promote',
  'modelRegistry.deleteAlias': 'model.promote',
  'modelRegistry.getVersionByAlias': 'model.read',
  'modelRegistry.setModelTag': 'model.write',
  'modelRegistry.deleteModelTag': 'model.write',
  'modelRegistry.setVersionTag': 'model.write',
  'modelRegistry.deleteVersionTag': 'model.write',
  'modelRegistry.getLineage': 'model.read',
  'modelRegistry.resolve': 'model.read',

  // Entries are written by the platform itself; only an administrator may append by hand.
  'auditLog.append': 'admin',
  'auditLog.list': 'audit.read',
  'auditLog.head': 'audit.read',
  'auditLog.verify': 'audit.read',

  'authorizer.getPrincipal': 'role.read',
  'authorizer.createToken': 'token.write',
  'authorizer.revokeToken': 'token.write',
  'authorizer.listTokens': 'token.read',
  'authorizer.defineRole': 'role.write',
  'authorizer.deleteRole': 'role.write',
  'authorizer.listRoles': 'role.read',
  'authorizer.grant': 'role.write',
  'authorizer.revoke': 'role.write',
});

/** The permission `operation` needs; ValidationError for an operation no port declares. */
export function permissionFor(operation: string): Permission {
  if (!Object.hasOwn(PORT_PERMISSIONS, operation)) {
    throw new ValidationError(`'${operation}' is not a port operation with a declared permission`, {
      field: 'operation',
    });
  }
  return PORT_PERMISSIONS[operation as PortOperation];
}
