import { fail } from '../core/errors.js';
import { requestLong, type Doc } from '../core/document.js';
import { isHttpUri } from '../core/http-client.js';
import type { QuerySpecification } from '../query/query-types.js';
import { normalizeQuerySpec } from '../query/query-validator.js';
import type { ServiceErrorResponse } from '../core/errors.js';

export const MIGRATION_TASK_KIND = 'com:vmware:xenon:services:common:MigrationTaskService:State';
export const MIGRATION_TASKS_LINK = '/management/migration-tasks';
export const MIGRATION_OPTIONS = ['CONTINUOUS', 'DELETE_AFTER', 'USE_TRANSFORM_REQUEST', 'ALL_VERSIONS', 'ESTIMATE_COUNT'] as const;
export type MigrationOption = (typeof MIGRATION_OPTIONS)[number];
export type TaskStage = 'CREATED' | 'STARTED' | 'FINISHED' | 'FAILED' | 'CANCELLED';
export const TERMINAL_STAGES: ReadonlySet<TaskStage> = new Set(['FINISHED', 'FAILED', 'CANCELLED']);

/** Position of a run on one source node: the last acknowledged (update time, link). */
export interface Checkpoint {
  updateTimeMicros: number;
  link: string;
}

/** Progress counters (Xenon's stat names; krypton also shows them in the task GET). */
export interface MigrationProgress {
  processedServiceCount: number;
  skippedServiceCount: number;
  deletedDocumentCount: number;
  fetchedDocumentCount: number;
  estimatedTotalServiceCount: number;
  beforeTransformDocumentCount: number;
  afterTransformDocumentCount: number;
  runCount: number;
  lastRunDurationMicros: number;
  documentsPerSecond: number;
  /** The ESTIMATE_COUNT query's time (its `queryTimeMicros`); -1 without ESTIMATE_COUNT. */
  countQueryTimeDurationMicros: number;
  /** Wall time of the latest page GET. */
  retrievalOperationsDurationMicros: number;
  /** Per source node (`host:port`), the `queryTimeMicros` of the latest page it served. */
  retrievalQueryTimeDurationMicros: Record<string, number>;
}

/** MigrationTaskService.State, plus krypton's progress and checkpoints. */
export interface MigrationTaskState extends Doc {
  sourceNodeGroupReference?: string;
  sourceReferences: string[];
  sourceFactoryLink: string;
  destinationNodeGroupReference?: string;
  destinationReferences: string[];
  destinationFactoryLink: string;
  transformationServiceLink?: string;
  querySpec: QuerySpecification;
  taskInfo: { stage: TaskStage; isDirect: boolean; failure?: ServiceErrorResponse; durationMicros?: number };
  maintenanceIntervalMicros: number;
  maximumConvergenceChecks: number;
  continuousMigration: boolean;
  migrationOptions: MigrationOption[];
  operationTimeoutMicros?: number;
  latestSourceUpdateTimeMicros: number;
  progress: MigrationProgress;
  checkpoints: Record<string, Checkpoint>;
}

/** A new task's progress. */
export function emptyProgress(): MigrationProgress {
  return {
    processedServiceCount: 0,
    skippedServiceCount: 0,
    deletedDocumentCount: 0,
    fetchedDocumentCount: 0,
    estimatedTotalServiceCount: -1,
    beforeTransformDocumentCount: 0,
    afterTransformDocumentCount: 0,
    runCount: 0,
    lastRunDurationMicros: 0,
    documentsPerSecond: 0,
    countQueryTimeDurationMicros: -1,
    retrievalOperationsDurationMicros: 0,
    retrievalQueryTimeDurationMicros: {},
  };
}

/** A Boolean as Gson reads one: true/false, or the strings "true"/"false" (the seeds send "false"). */
function bool(v: unknown, name: string): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (v === true) return true;
  if (typeof v === 'string' && ['true', 'false'].includes(v.toLowerCase())) return v.toLowerCase() === 'true';
  return fail('VALIDATION', `${name} must be a boolean: ${JSON.stringify(v)}`);
}

function stringList(v: unknown, name: string, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail('VALIDATION', `${name} must be an array of ${what}`);
  return v as string[];
}

/** A non-negative integer field (400 for anything else); `fallback` when absent. */
function count(body: Doc, name: string, fallback: number): number {
  const n = requestLong(body, name) ?? fallback;
  if (n < 0) fail('VALIDATION', `${name} must not be negative: ${n}`);
  return n;
}

function optString(body: Doc, name: string): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail('VALIDATION', `${name} must be a string`);
  return v;
}

function checkUri(v: string | undefined, name: string): void {
  if (v !== undefined && !isHttpUri(v)) fail('VALIDATION', `${name} is not an http(s) URI: ${v}`);
}

/**
 * Builds the initial task state from a POST body: Xenon's defaults (§1.5) and validation messages,
 * joined with spaces in Xenon's order. `continuousMigration` accepts the seeds' string "false".
 */
export function initialState(body: Doc, defaultIntervalMicros: number): MigrationTaskState {
  const options = stringList(body['migrationOptions'], 'migrationOptions', `option names (${MIGRATION_OPTIONS.join(', ')})`);
  for (const o of options) if (!MIGRATION_OPTIONS.includes(o as MigrationOption)) fail('VALIDATION', `unknown migrationOption: ${o}`);
  const continuous = bool(body['continuousMigration'], 'continuousMigration');
  if (continuous && !options.includes('CONTINUOUS')) options.push('CONTINUOUS');
  const taskInfo = (body['taskInfo'] ?? {}) as Doc;
  const stage = (taskInfo['stage'] as TaskStage | undefined) ?? 'CREATED';
  if (!['CREATED', 'STARTED', 'FINISHED', 'FAILED', 'CANCELLED'].includes(stage)) fail('VALIDATION', `unknown taskInfo.stage: ${String(stage)}`);
  const state: MigrationTaskState = {
    sourceReferences: stringList(body['sourceReferences'], 'sourceReferences', 'URI strings'),
    sourceFactoryLink: optString(body, 'sourceFactoryLink') as string,
    destinationReferences: stringList(body['destinationReferences'], 'destinationReferences', 'URI strings'),
    destinationFactoryLink: optString(body, 'destinationFactoryLink') as string,
    querySpec: (body['querySpec'] ?? {}) as QuerySpecification,
    taskInfo: { stage: stage === 'STARTED' ? 'CREATED' : stage, isDirect: false },
    maintenanceIntervalMicros: count(body, 'maintenanceIntervalMicros', defaultIntervalMicros),
    maximumConvergenceChecks: count(body, 'maximumConvergenceChecks', 10),
    continuousMigration: continuous,
    migrationOptions: options as MigrationOption[],
    latestSourceUpdateTimeMicros: count(body, 'latestSourceUpdateTimeMicros', 0),
    progress: emptyProgress(),
    checkpoints: {},
  };
  const src = optString(body, 'sourceNodeGroupReference');
  const dst = optString(body, 'destinationNodeGroupReference');
  const transform = optString(body, 'transformationServiceLink');
  const timeout = requestLong(body, 'operationTimeoutMicros');
  if (timeout !== undefined && timeout <= 0) fail('VALIDATION', `operationTimeoutMicros must be positive: ${timeout}`);
  if (src !== undefined) state.sourceNodeGroupReference = src;
  if (dst !== undefined) state.destinationNodeGroupReference = dst;
  if (transform !== undefined) state.transformationServiceLink = transform;
  if (timeout !== undefined) state.operationTimeoutMicros = timeout;
  if (typeof state.querySpec !== 'object' || state.querySpec === null || Array.isArray(state.querySpec)) fail('VALIDATION', 'querySpec must be a JSON object');
  // The query's own rules (options, match types, ranges…): a 400 now rather than a failed run later.
  // Without a query the task selects the whole factory, so a stand-in query is checked with the rest.
  normalizeQuerySpec({ ...state.querySpec, query: state.querySpec.query ?? { term: { propertyName: 'documentSelfLink', matchValue: '/', matchType: 'PREFIX' } } });
  if (stage !== 'FINISHED') validateState(state);
  // The page size, filled in as Xenon does (its default: 10,000). Every page is held in memory on
  // both hosts (see migration-runner.ts), so a larger value is lowered to the ceiling.
  state.querySpec = { ...state.querySpec, resultLimit: pageSize(state.querySpec) };
  return state;
}

/** Documents per page of a migration: 10,000 by default (DECISIONS.md), and at most. */
export const DEFAULT_PAGE_SIZE = 10_000;
export const MAX_PAGE_SIZE = 10_000;

export function pageSize(spec: QuerySpecification): number {
  const n = spec.resultLimit;
  return Number.isInteger(n) && n! > 0 ? Math.min(n!, MAX_PAGE_SIZE) : DEFAULT_PAGE_SIZE;
}

/** Xenon's verifyState messages, in Xenon's order, plus krypton's checks of the values. */
export function validateState(s: MigrationTaskState): void {
  const errors: string[] = [];
  if (!s.sourceFactoryLink) errors.push('sourceFactory cannot be null.');
  if (!s.sourceNodeGroupReference && s.sourceReferences.length === 0) errors.push('sourceNode or sourceUri need to be specified.');
  if (s.sourceNodeGroupReference && s.sourceReferences.length > 0) errors.push('cannot specify both sourceNode and sourceReferences.');
  if (!s.destinationFactoryLink) errors.push('destinationFactory cannot be null.');
  if (!s.destinationNodeGroupReference && s.destinationReferences.length === 0) errors.push('destinationNode or destinationReferences need to be specified.');
  if (s.destinationNodeGroupReference && s.destinationReferences.length > 0) errors.push('cannot specify both destinationNode and destinationReferences.');
  if (errors.length) fail('VALIDATION', errors.join(' '));
  for (const l of [s.sourceFactoryLink, s.destinationFactoryLink]) if (!l.startsWith('/')) fail('VALIDATION', `factory links must start with '/': ${l}`);
  checkUri(s.sourceNodeGroupReference, 'sourceNodeGroupReference');
  checkUri(s.destinationNodeGroupReference, 'destinationNodeGroupReference');
  for (const r of s.sourceReferences) checkUri(r, 'sourceReferences');
  for (const r of s.destinationReferences) checkUri(r, 'destinationReferences');
  if (s.maintenanceIntervalMicros < 1000) fail('VALIDATION', 'maintenanceIntervalMicros must be at least 1000');
  const limit = s.querySpec.resultLimit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) fail('VALIDATION', 'querySpec.resultLimit must be a positive integer');
}

/** Keeps scheme, host and port of a node reference (Xenon discards the path). */
export function nodeBase(uri: string): string {
  const u = new URL(uri);
  return `${u.protocol}//${u.host}`;
}
