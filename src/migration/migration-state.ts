import { fail } from '../core/errors.js';
import { longField, type Doc } from '../core/document.js';
import type { QuerySpecification } from '../query/query-types.js';
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

export const EMPTY_PROGRESS: MigrationProgress = Object.freeze({
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
});

function bool(v: unknown): boolean {
  return v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
}

function stringList(v: unknown, name: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail('VALIDATION', `${name} must be an array of URI strings`);
  return v as string[];
}

function optString(body: Doc, name: string): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail('VALIDATION', `${name} must be a string`);
  return v;
}

function checkUri(v: string | undefined, name: string): void {
  if (v === undefined) return;
  try {
    const u = new URL(v);
    if (!/^https?:$/.test(u.protocol)) throw new Error();
  } catch {
    fail('VALIDATION', `${name} is not an http(s) URI: ${v}`);
  }
}

/**
 * Builds the initial task state from a POST body: Xenon's defaults (§1.5) and validation messages,
 * joined with spaces in Xenon's order. `continuousMigration` accepts the seeds' string "false".
 */
export function initialState(body: Doc, defaultIntervalMicros: number): MigrationTaskState {
  const options = stringList(body['migrationOptions'], 'migrationOptions');
  for (const o of options) if (!MIGRATION_OPTIONS.includes(o as MigrationOption)) fail('VALIDATION', `unknown migrationOption: ${o}`);
  const continuous = bool(body['continuousMigration']);
  if (continuous && !options.includes('CONTINUOUS')) options.push('CONTINUOUS');
  const taskInfo = (body['taskInfo'] ?? {}) as Doc;
  const stage = (taskInfo['stage'] as TaskStage | undefined) ?? 'CREATED';
  if (!['CREATED', 'STARTED', 'FINISHED', 'FAILED', 'CANCELLED'].includes(stage)) fail('VALIDATION', `unknown taskInfo.stage: ${String(stage)}`);
  const state: MigrationTaskState = {
    sourceReferences: stringList(body['sourceReferences'], 'sourceReferences'),
    sourceFactoryLink: optString(body, 'sourceFactoryLink') as string,
    destinationReferences: stringList(body['destinationReferences'], 'destinationReferences'),
    destinationFactoryLink: optString(body, 'destinationFactoryLink') as string,
    querySpec: (body['querySpec'] ?? {}) as QuerySpecification,
    taskInfo: { stage: stage === 'STARTED' ? 'CREATED' : stage, isDirect: false },
    maintenanceIntervalMicros: longField(body, 'maintenanceIntervalMicros') ?? defaultIntervalMicros,
    maximumConvergenceChecks: longField(body, 'maximumConvergenceChecks') ?? 10,
    continuousMigration: continuous,
    migrationOptions: options as MigrationOption[],
    latestSourceUpdateTimeMicros: longField(body, 'latestSourceUpdateTimeMicros') ?? 0,
    progress: { ...EMPTY_PROGRESS },
    checkpoints: {},
  };
  const src = optString(body, 'sourceNodeGroupReference');
  const dst = optString(body, 'destinationNodeGroupReference');
  const transform = optString(body, 'transformationServiceLink');
  const timeout = longField(body, 'operationTimeoutMicros');
  if (src !== undefined) state.sourceNodeGroupReference = src;
  if (dst !== undefined) state.destinationNodeGroupReference = dst;
  if (transform !== undefined) state.transformationServiceLink = transform;
  if (timeout !== undefined) state.operationTimeoutMicros = timeout;
  if (typeof state.querySpec !== 'object' || state.querySpec === null || Array.isArray(state.querySpec)) fail('VALIDATION', 'querySpec must be a JSON object');
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
