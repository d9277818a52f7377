export interface Options {
  /** API base URL, e.g. "https://api.skillstream.example". */
  host: string;
  /** The tenant's ingest write key (public: it can only send events). */
  writeKey: string;
  /** "student", "career_changer" or "advisor": the persona events carry by default. */
  persona: string;
  /** Send as soon as this many events are queued (default 20). */
  flushAt?: number;
  /** Otherwise send this long after the first queued event (default 5000 ms). */
  flushIntervalMs?: number;
  /** Most events kept while they cannot be sent; the oldest go first (default 1000). */
  maxQueueSize?: number;
  /** Most events in one request (default 100). */
  maxBatchSize?: number;
  /** First retry delay (default 1000 ms), doubled per retry up to backoffMaxMs (60000). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A send that has not answered by then is aborted and retried (default 10000 ms). */
  requestTimeoutMs?: number;
  /** localStorage key prefix (default "skillstream:"). */
  storagePrefix?: string;
  /** Rejected events, dropped batches, a full queue (default: console.warn). */
  onError?: (error: SdkError) => void;
  /** Fetch GET /v1/events/dictionary at start (default true). */
  loadDictionary?: boolean;
  // Environment, for tests and other runtimes (defaults: the browser's).
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null;
  fetch?: typeof fetch;
  crypto?: Crypto;
  sendBeacon?: (url: string, body: string) => boolean;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  now?: () => number;
  random?: () => number;
  location?: { pathname: string };
  window?: EventTarget | null;
  document?: (EventTarget & { visibilityState: string }) | null;
  device?: string;
}

export type SdkError =
  | { kind: 'rejected'; client_event_id: string; event_name: string; errors: { field: string; reason: string }[] }
  | { kind: 'http'; status: number; detail: string; events: string[] }
  | { kind: 'queue_full'; dropped: string[] }
  | { kind: 'no_web_crypto'; detail: string }
  | { kind: 'internal'; detail: string };

/** Envelope fields an event may carry besides its properties. */
export interface Ids {
  user_id?: string;
  persona?: string;
  context_page?: string;
  program_id?: string;
  cohort_id?: string;
  plan_id?: string;
  assessment_id?: string;
  readiness_score?: number;
}

export interface Stats {
  queued: number;
  dropped: number;
  rejected: number;
  duplicates: number;
  sent: number;
  suppressed: number;
  beaconed: number;
}

export class Client {
  constructor(options: Options);
  track(name: string, properties?: Record<string, unknown>, ids?: Ids): string | null;
  identify(userId: string, traits?: { email?: string }): Promise<void>;
  optOut(): Promise<void>;
  optIn(): Promise<void>;
  isOptedOut(): boolean;
  flush(): Promise<void>;
  reset(): void;
  anonymousId(): string;
  stats(): Stats;
  close(): void;
}

export function init(options: Options): Client;
export function track(name: string, properties?: Record<string, unknown>, ids?: Ids): string | null;
export function identify(userId: string, traits?: { email?: string }): Promise<void>;
export function optOut(): Promise<void>;
export function optIn(): Promise<void>;
export function flush(): Promise<void>;
export function reset(): void;
export function stats(): Stats;
export function anonymousId(): string;
export function createClient(options: Options): Client;
export function backoffDelay(
  attempt: number,
  opts: { baseMs: number; maxMs: number; random?: () => number; retryAfterMs?: number | null },
): number;
export function parseRetryAfter(value: string | null, nowMs: number): number | null;
export const VERSION: string;
