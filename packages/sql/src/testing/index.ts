/** @mlplane/sql/testing: suites for what the SQL layer adds on top of a MetadataStore. */

export { outboxConformance } from './outbox.js';
