/**
 * Xenon's query model (`QueryTask.QuerySpecification` and friends) as plain data. Field names
 * follow the wire format exactly, including Xenon's misspelled `occurance`. Values of this shape
 * that came from a client are only trusted after `normalizeQuerySpec` (query-validator.ts).
 */

/** How a clause takes part in its group (Lucene's MUST / MUST_NOT / SHOULD). */
export type Occurance = 'MUST_OCCUR' | 'MUST_NOT_OCCUR' | 'SHOULD_OCCUR';
export const OCCURANCES: readonly Occurance[] = ['MUST_OCCUR', 'MUST_NOT_OCCUR', 'SHOULD_OCCUR'];

/** How `matchValue` is compared with indexed terms (spec §8.3). */
export type MatchType = 'WILDCARD' | 'TERM' | 'PHRASE' | 'PREFIX';
export const MATCH_TYPES: readonly MatchType[] = ['WILDCARD', 'TERM', 'PHRASE', 'PREFIX'];

export type SortOrder = 'ASC' | 'DESC';
export const SORT_ORDERS: readonly SortOrder[] = ['ASC', 'DESC'];

/** Xenon's `ServiceDocumentDescription.TypeName`. */
export type TypeName = 'LONG' | 'STRING' | 'BYTES' | 'PODO' | 'COLLECTION' | 'MAP' | 'BOOLEAN' | 'DOUBLE' | 'InternetAddressV4' | 'InternetAddressV6' | 'DATE' | 'URI' | 'ENUM';
export const TYPE_NAMES: readonly TypeName[] = ['LONG', 'STRING', 'BYTES', 'PODO', 'COLLECTION', 'MAP', 'BOOLEAN', 'DOUBLE', 'InternetAddressV4', 'InternetAddressV6', 'DATE', 'URI', 'ENUM'];

/** The range types a `NumericRange` may use. DATE is a long in microseconds. */
export type RangeType = 'LONG' | 'DOUBLE' | 'DATE';
export const RANGE_TYPES: readonly RangeType[] = ['LONG', 'DOUBLE', 'DATE'];

/**
 * Every `QueryOption` name of spec §8.4, in the order they are echoed (Xenon serializes its
 * EnumSet in declaration order).
 */
export const QUERY_OPTIONS = [
  'CONTINUOUS',
  'CONTINUOUS_STOP_MATCH',
  'COUNT',
  'DO_NOT_REFRESH',
  'TOP_RESULTS',
  'EXPAND_CONTENT',
  'EXPAND_BINARY_CONTENT',
  'EXPAND_BUILTIN_CONTENT_ONLY',
  'EXPAND_SELECTED_FIELDS',
  'EXPAND_LINKS',
  'INCLUDE_ALL_VERSIONS',
  'INCLUDE_DELETED',
  'SORT',
  'TASK',
  'BROADCAST',
  'OWNER_SELECTION',
  'READ_AFTER_WRITE_CONSISTENCY',
  'SELECT_LINKS',
  'GROUP_BY',
  'TIME_SNAPSHOT',
  'SINGLE_USE',
  'FORWARD_ONLY',
  'INDEXED_METADATA',
] as const;
export type QueryOption = (typeof QUERY_OPTIONS)[number];

/** A numeric (or DATE) range. Absent `min`/`max` = unbounded; bounds are exclusive unless flagged. */
export interface NumericRange {
  type: RangeType;
  min?: number;
  max?: number;
  isMinInclusive: boolean;
  isMaxInclusive: boolean;
  /** Accepted and echoed (default 16); has no effect. */
  precisionStep: number;
}

/** One property condition, or a sort / select / link term (then only name, type and order matter). */
export interface QueryTerm {
  propertyName: string;
  propertyType?: TypeName;
  matchValue?: string;
  matchType?: MatchType;
  range?: NumericRange;
  sortOrder?: SortOrder;
}

/** A query node: exactly one of `term` and `booleanClauses` (validated queries only). */
export interface Query {
  occurance: Occurance;
  term?: QueryTerm;
  booleanClauses?: Query[];
}

/** `QueryTask.querySpec`. Fields that the query engine fills in later are mutable. */
export interface QuerySpecification {
  query?: Query;
  linkTerms?: QueryTerm[];
  selectTerms?: QueryTerm[];
  sortTerm?: QueryTerm;
  groupSortTerm?: QueryTerm;
  additionalSortTerms?: QueryTerm[];
  additionalGroupSortTerms?: QueryTerm[];
  groupByTerm?: QueryTerm;
  sortOrder?: SortOrder;
  groupSortOrder?: SortOrder;
  resultLimit?: number;
  groupResultLimit?: number;
  offset?: number;
  expectedResultCount?: number;
  options?: QueryOption[];
  timeSnapshotBoundaryMicros?: number;
}
