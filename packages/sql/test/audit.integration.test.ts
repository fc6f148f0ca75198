import { auditLogConformance } from '@mlplane/core/testing';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { SqlAuditLog } from '../src/audit/sql-audit-log.js';

// The log is one chain per schema, so every test gets a schema of its own.
auditLogConformance('SqlAuditLog on PostgreSQL (peer)', async () => {
  const schema = freshSchema('mlplane_audit');
  const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  const stores = [store];
  const log = await SqlAuditLog.open({ store });
  return {
    log,
    openAnother: async () => {
      const other = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
      stores.push(other);
      return SqlAuditLog.open({ store: other });
    },
    tamper: {
      edit: async (seq, change) => {
        await store
          .db()
          .updateTable('audit_log')
          .set({
            ...(change.details !== undefined ? { details: JSON.stringify(change.details) } : {}),
            ...(change.actor !== undefined ? { actor: change.actor } : {}),
          })
          .where('seq', '=', seq)
          .execute();
      },
      remove: async (seq) => {
        await store.db().deleteFrom('audit_log').where('seq', '=', seq).execute();
      },
    },
    appendEvent: (event) => log.appendEvent(event),
    cleanup: async () => {
      for (const s of stores) await s.close();
      await dropSchema(schema);
    },
  };
});
