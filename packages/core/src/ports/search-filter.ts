import { limitedArray, limitedString } from './input-schemas.js';

/**
 * Limits on the search inputs of the tracker and the registry (filters in the language described at
 * `SearchFilter`, order-by terms), the same for every backend. They keep a search within what each database can
 * plan: SQLite refuses expressions nested deeper than 1,000 and joins of more than 64 tables, and PostgreSQL's
 * planning time grows steeply with each filter clause (about 1.3 s for 20 metric clauses on a 2-core test machine,
 * 22 s for 50). A breach raises ValidationError naming the limit.
 */
export const SEARCH_FILTER_LIMITS = Object.freeze({
  /** Characters in one filter string. */
  filterLength: 65_536,
  /** Clauses joined by AND in one filter. */
  filterClauses: 20,
  /** Values in one `IN (...)` or `NOT IN (...)` list. */
  filterInValues: 1000,
  /** Terms in one orderBy list. */
  orderByTerms: 10,
  /** Characters in one order-by term. */
  orderByTermLength: 1000,
});

/** A filter string within `filterLength`; its clauses and IN lists are counted when it is parsed. */
export const searchFilter = limitedString('filterLength', SEARCH_FILTER_LIMITS.filterLength);

/** An orderBy list within `orderByTerms`, each term within `orderByTermLength`. */
export const searchOrderBy = limitedArray(
  limitedString('orderByTermLength', SEARCH_FILTER_LIMITS.orderByTermLength),
  'orderByTerms',
  SEARCH_FILTER_LIMITS.orderByTerms,
  'terms',
  '',
);

export type SearchFilterLimits = typeof SEARCH_FILTER_LIMITS;
