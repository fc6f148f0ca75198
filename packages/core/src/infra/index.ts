/** Helpers shared by the adapters of the ports, so every implementation applies the same rules. */

export * from './event-bus/bus-stats.js';
export * from './event-bus/event-codec.js';
export * from './event-bus/group-members.js';
export * from './event-bus/subscriber-set.js';
export type {
  Comparator,
  Comparison,
  Entity as FilterEntity,
  FilterAst,
  OrderTerm,
} from './filter/parser.js';
export { parseFilter, parseOrderBy, parseOrderTerm } from './filter/parser.js';
export type { Token, TokenKind } from './filter/tokenizer.js';
export { excerpt, syntaxError, tokenize } from './filter/tokenizer.js';
export * from './locks/lease.js';
export * from './validation/media-type.js';
export * from './validation/model-registry.js';
export * from './validation/secret-value.js';
export * from './validation/text.js';
export * from './webhooks/signature.js';
