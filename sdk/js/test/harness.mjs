// A fake browser for the SDK's unit tests: storage, a manual clock, a
// scripted server and a page that can hide.
import { Client } from '../src/skillstream.js';

export const SALT = '0123456789abcdef0123456789abcdef';
export const ESSENTIAL = ['session_started', 'settings_tracking_opt_out', 'settings_tracking_opt_in'];

export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

export class Clock {
  constructor() {
    this.t = Date.parse('2026-11-28T10:00:00Z');
    this.timers = new Map();
    this.next = 1;
  }
  now = () => this.t;
  setTimeout = (fn, ms) => {
    const id = this.next++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  /** Move time forward, running due timers in order and letting promises settle. */
  async advance(ms) {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= end);
      if (!due.length) break;
      due.sort((a, b) => a[1].at - b[1].at);
      const [id, timer] = due[0];
      this.timers.delete(id);
      this.t = Math.max(this.t, timer.at);
      timer.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

export async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

function response(status, body = {}, headers = {}) {
  const h = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return { status, headers: { get: (k) => h.get(k.toLowerCase()) ?? null }, json: async () => body };
}

/**
 * A scripted API: `script` answers batch posts in order (then "ok" forever):
 * "ok" | "down" (network error) | {status, headers, body}.
 */
export class Server {
  constructor(script = []) {
    this.script = [...script];
    this.batches = [];
    this.attempts = [];
    this.dictionaryCalls = 0;
    this.dictionaryUp = true;
  }
  fetch = async (url, init = {}) => {
    if (url.endsWith('/v1/events/dictionary')) {
      this.dictionaryCalls++;
      if (!this.dictionaryUp) throw new TypeError('Failed to fetch');
      return response(200, { essential: ESSENTIAL, email_hash_salt: SALT, max_batch_events: 1000 });
    }
    const events = JSON.parse(init.body).events;
    this.attempts.push({ url, init, events });
    const step = this.script.length ? this.script.shift() : 'ok';
    if (step === 'down') throw new TypeError('Failed to fetch');
    if (step !== 'ok') return response(step.status, step.body || {}, step.headers || {});
    this.batches.push(events);
    return response(200, { accepted: events.map((e) => e.client_event_id), duplicates: [], rejected: [] });
  };
  get sent() {
    return this.batches.flat();
  }
}

export function makeClient(overrides = {}) {
  const clock = overrides.clock || new Clock();
  const server = overrides.server || new Server();
  const storage = overrides.storage || new MemoryStorage();
  const errors = [];
  const client = new Client({
    host: 'https://api.example.test/',
    writeKey: 'wk_test',
    persona: 'student',
    flushAt: 5,
    flushIntervalMs: 1000,
    backoffBaseMs: 1000,
    backoffMaxMs: 30000,
    storage,
    fetch: server.fetch,
    crypto: globalThis.crypto,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    location: { pathname: '/lessons/1' },
    window: null,
    onError: (e) => errors.push(e),
    ...overrides.options,
  });
  return { client, clock, server, storage, errors };
}
