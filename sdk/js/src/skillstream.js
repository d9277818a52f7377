/**
 * SkillStream browser SDK: batches events to POST /v1/events/batch, keeps the
 * unsent queue in localStorage across reloads, retries with backoff, honours
 * opt-out, and hands what is left to navigator.sendBeacon when the page hides.
 * No runtime dependencies; every browser API it uses can be injected (tests,
 * other runtimes).
 */

const VERSION = '0.1.0';
const OPT_OUT_EVENT = 'settings_tracking_opt_out';
const OPT_IN_EVENT = 'settings_tracking_opt_in';
// Retried with backoff; any other non-200 answer drops the batch (never retried).
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
// navigator.sendBeacon refuses bodies over 64 KiB (in flight, per page).
const BEACON_MAX_BYTES = 60000;
const BODY_MAX_BYTES = 512 * 1024;
const DICTIONARY_TTL_MS = 60 * 60 * 1000;
const INTERNAL = '_check'; // queued while opted out before the dictionary was known

const DEFAULTS = {
  flushAt: 20,
  flushIntervalMs: 5000,
  maxQueueSize: 1000,
  maxBatchSize: 100,
  backoffBaseMs: 1000,
  backoffMaxMs: 60000,
  requestTimeoutMs: 10000,
  storagePrefix: 'skillstream:',
};

/**
 * Delay before retry number `attempt` (0 = first retry): exponential, with
 * "equal jitter" (half fixed, half random), never shorter than Retry-After.
 */
function backoffDelay(attempt, { baseMs, maxMs, random = Math.random, retryAfterMs = null }) {
  const exp = Math.min(maxMs, baseMs * 2 ** attempt);
  const delay = exp / 2 + random() * (exp / 2);
  return retryAfterMs == null ? delay : Math.max(delay, retryAfterMs);
}

/** Retry-After as milliseconds from `nowMs`: delta-seconds or an HTTP date; null if absent. */
function parseRetryAfter(value, nowMs) {
  if (value == null || value === '') return null;
  const text = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

function uuidv4(crypto) {
  if (crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = new Uint8Array(16);
  if (crypto && typeof crypto.getRandomValues === 'function') crypto.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function sha256Hex(crypto, text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, '0')).join('');
}

function detectDevice(nav) {
  const ua = (nav && nav.userAgent) || '';
  if (/iPad|Tablet/i.test(ua)) return 'web.tablet';
  if ((nav && nav.userAgentData && nav.userAgentData.mobile) || /Mobi|Android|iPhone/i.test(ua)) {
    return 'web.mobile';
  }
  return 'web.desktop';
}

function browserStorage() {
  try {
    return globalThis.localStorage || null; // reading it throws where storage is blocked
  } catch {
    return null;
  }
}

/** localStorage when it works (private modes may throw), else memory for this page. */
class Store {
  constructor(storage, prefix) {
    this.storage = storage;
    this.prefix = prefix;
    this.memory = new Map();
  }

  get(key) {
    let raw = null;
    try {
      raw = this.storage ? this.storage.getItem(this.prefix + key) : null;
    } catch {
      raw = null;
    }
    if (raw == null) raw = this.memory.has(key) ? this.memory.get(key) : null;
    if (raw == null) return null;
    try {
      return JSON.parse(raw);
    } catch {
      return null;
    }
  }

  set(key, value) {
    const raw = JSON.stringify(value);
    try {
      if (this.storage) {
        this.storage.setItem(this.prefix + key, raw);
        this.memory.delete(key);
        return;
      }
    } catch {
      // quota exceeded or storage disabled: keep it for this page at least
    }
    this.memory.set(key, raw);
  }

  remove(key) {
    this.memory.delete(key);
    try {
      if (this.storage) this.storage.removeItem(this.prefix + key);
    } catch {
      // nothing to remove
    }
  }
}

function strip(event) {
  const out = { ...event };
  delete out[INTERNAL];
  return out;
}

class Client {
  /**
   * @param {object} options see docs/sdk.md ("Browser SDK"); host, writeKey and persona are required.
   */
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    for (const name of ['host', 'writeKey', 'persona']) {
      if (!o[name]) throw new Error(`skillstream.init: "${name}" is required`);
    }
    const g = globalThis;
    this.o = o;
    this.host = String(o.host).replace(/\/+$/, '');
    this.fetch = o.fetch || (g.fetch && g.fetch.bind(g));
    this.crypto = o.crypto || g.crypto;
    this.setTimeout = o.setTimeout || g.setTimeout.bind(g);
    this.clearTimeout = o.clearTimeout || g.clearTimeout.bind(g);
    this.now = o.now || (() => Date.now());
    this.random = o.random || Math.random;
    this.location = o.location || g.location || { pathname: '/' };
    const nav = g.navigator;
    this.sendBeacon =
      o.sendBeacon || (nav && typeof nav.sendBeacon === 'function' && nav.sendBeacon.bind(nav));
    this.device = o.device || detectDevice(nav);
    this.store = new Store(o.storage !== undefined ? o.storage : browserStorage(), o.storagePrefix);
    this.onError = o.onError || ((e) => g.console && g.console.warn('[skillstream]', e));

    this.attempt = 0;
    this.retryAt = 0;
    this.timer = null;
    this.timerAt = 0;
    this.sending = null;
    this.dictionaryLoad = null;
    this.pendingEmail = null;
    this.maxBatch = o.maxBatchSize;
    this.closed = false;

    this.anonymousId();
    this._listen(o.window !== undefined ? o.window : g.window, o.document || g.document);
    if (o.loadDictionary !== false) this._dictionary().catch(() => {});
    if (this._queue().length) this._schedule(0);
  }

  // --- public API --------------------------------------------------------------------
  /** Queue an event; returns its client_event_id, or null when opt-out suppressed it. */
  track(name, properties = {}, ids = {}) {
    if (this.closed) return null;
    const optedOut = this.isOptedOut();
    let check = false;
    if (optedOut && name !== OPT_OUT_EVENT && name !== OPT_IN_EVENT) {
      const essential = this._essential();
      if (essential && !essential.has(name)) {
        this._bump('suppressed', 1);
        return null;
      }
      check = !essential;
    }
    const { persona, context_page: page, ...rest } = ids || {};
    const event = {
      event_name: name,
      client_event_id: uuidv4(this.crypto),
      event_timestamp: new Date(this.now()).toISOString(),
      anonymous_id: this.anonymousId(),
      persona: persona || this.o.persona,
      context_page: page || this.location.pathname || '/',
      context_device: this.device,
      opt_out_status: optedOut,
      properties: properties || {},
    };
    const user = this.store.get('user');
    if (user && user.id) event.user_id = user.id;
    if (user && user.email_sha256 && !user.hash_sent) {
      event.email_sha256 = user.email_sha256;
      this.store.set('user', { ...user, hash_sent: true });
    }
    Object.assign(event, rest);
    if (check) event[INTERNAL] = true;
    this._enqueue(event);
    return event.client_event_id;
  }

  /**
   * Attach a user id to the following events; with `email`, its salted SHA-256
   * (computed here, through Web Crypto) rides on the next event tracked.
   */
  async identify(userId, traits = {}) {
    if (!userId) throw new Error('skillstream.identify: a user id is required');
    const before = this.store.get('user');
    const same = before && before.id === String(userId);
    this.store.set('user', same ? before : { id: String(userId) });
    if (!traits || !traits.email) return;
    this.pendingEmail = String(traits.email);
    try {
      await this._hashEmail();
    } catch {
      // the dictionary (salt) is unreachable: hashed again before the next send
    }
  }

  /** Stop sending all but essential events; the opt-out event itself is sent. */
  optOut() {
    if (this.isOptedOut()) return Promise.resolve();
    this.store.set('opt_out', true);
    this.track(OPT_OUT_EVENT, {});
    return this.flush();
  }

  optIn() {
    if (!this.isOptedOut()) return Promise.resolve();
    this.store.set('opt_out', false);
    this.track(OPT_IN_EVENT, {});
    return this.flush();
  }

  isOptedOut() {
    return this.store.get('opt_out') === true;
  }

  /** Send what is queued now (unless the server asked to wait); resolves when done. */
  flush() {
    return this._drain();
  }

  /** A new anonymous id, and no user: for a sign-out. Queue and opt-out stay. */
  reset() {
    this.store.set('anonymous_id', uuidv4(this.crypto));
    this.store.remove('user');
    this.pendingEmail = null;
  }

  /** The visitor's UUID v4, made again if someone cleared the storage. */
  anonymousId() {
    let id = this.store.get('anonymous_id');
    if (!id) {
      id = uuidv4(this.crypto);
      this.store.set('anonymous_id', id);
    }
    return id;
  }

  /** Counters since this browser first loaded the SDK, and the queue length. */
  stats() {
    return { queued: this._queue().length, ...this._counters() };
  }

  /** Stop timers and listeners (the queue stays stored). */
  close() {
    this.closed = true;
    if (this.timer) this.clearTimeout(this.timer);
    this.timer = null;
    if (this.unlisten) this.unlisten();
  }

  // --- queue (read and written through storage, so tabs do not overwrite each other) --
  _queue() {
    const q = this.store.get('queue');
    return Array.isArray(q) ? q : [];
  }

  _counters() {
    const zero = { dropped: 0, rejected: 0, duplicates: 0, sent: 0, suppressed: 0, beaconed: 0 };
    return { ...zero, ...(this.store.get('stats') || {}) };
  }

  _bump(name, n) {
    if (!n) return;
    const c = this._counters();
    c[name] += n;
    this.store.set('stats', c);
  }

  _enqueue(event) {
    const q = this._queue();
    q.push(event);
    const over = Math.max(0, q.length - this.o.maxQueueSize);
    const lost = q.splice(0, over); // oldest first
    this.store.set('queue', q);
    if (lost.length) {
      this._bump('dropped', lost.length);
      this.onError({ kind: 'queue_full', dropped: lost.map((e) => e.client_event_id) });
    }
    if (q.length >= this.o.flushAt) this._schedule(0);
    else this._schedule(this.o.flushIntervalMs);
  }

  _remove(ids) {
    this.store.set('queue', this._queue().filter((e) => !ids.has(e.client_event_id)));
  }

  // --- dictionary: essential events and the e-mail salt --------------------------------
  _essential() {
    const d = this.store.get('dictionary');
    return d && Array.isArray(d.essential) ? new Set(d.essential) : null;
  }

  _dictionary() {
    const d = this.store.get('dictionary');
    if (d && this.now() - d.fetched_at < DICTIONARY_TTL_MS) return Promise.resolve(d);
    if (!this.dictionaryLoad) {
      this.dictionaryLoad = (async () => {
        try {
          const res = await this.fetch(`${this.host}/v1/events/dictionary`, {
            headers: { Authorization: `Bearer ${this.o.writeKey}` },
            credentials: 'omit',
          });
          if (res.status !== 200) throw new Error(`dictionary: HTTP ${res.status}`);
          const body = await res.json();
          const out = {
            essential: body.essential,
            email_hash_salt: body.email_hash_salt,
            max_batch_events: body.max_batch_events,
            fetched_at: this.now(),
          };
          this.store.set('dictionary', out);
          return out;
        } finally {
          this.dictionaryLoad = null;
        }
      })();
    }
    return this.dictionaryLoad;
  }

  async _hashEmail() {
    if (!this.pendingEmail) return;
    if (!this.crypto || !this.crypto.subtle) {
      this.pendingEmail = null; // Web Crypto needs a secure context (https)
      this.onError({ kind: 'no_web_crypto', detail: 'e-mail not sent: no crypto.subtle' });
      return;
    }
    const d = await this._dictionary();
    const email = this.pendingEmail;
    if (!email) return;
    const digest = await sha256Hex(this.crypto, d.email_hash_salt + email.trim().toLowerCase());
    this.pendingEmail = null;
    const user = this.store.get('user');
    if (user && user.email_sha256 !== digest) {
      this.store.set('user', { ...user, email_sha256: digest, hash_sent: false });
    }
  }

  // --- sending -------------------------------------------------------------------------
  _schedule(ms) {
    if (this.closed) return;
    const at = Math.max(this.now() + ms, this.retryAt);
    if (this.timer && this.timerAt <= at) return; // an earlier run is already due
    if (this.timer) this.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.setTimeout(() => {
      this.timer = null;
      this._drain();
    }, at - this.now());
  }

  _drain() {
    if (this.sending) return this.sending;
    const run = this._drainLoop();
    this.sending = run;
    // cleared after it settles (a run with nothing to await settles before it is assigned)
    run.then(() => {
      if (this.sending === run) this.sending = null;
    });
    return run;
  }

  async _drainLoop() {
    try {
      if (this.pendingEmail) await this._hashEmail().catch(() => {});
      while (!this.closed) {
        if (this.now() < this.retryAt) {
          // a timer may fire a little early: wait out the rest of the backoff
          if (this._queue().length) this._schedule(this.retryAt - this.now());
          break;
        }
        if (!(await this._settleOptOut())) break;
        const batch = this._batch();
        if (!batch.length) break;
        if (!(await this._post(batch))) break;
      }
    } catch (err) {
      this.onError({ kind: 'internal', detail: String(err) });
    }
  }

  /** Events queued while opted out before the dictionary was known: keep the essential. */
  async _settleOptOut() {
    const q = this._queue();
    if (!q.some((e) => e[INTERNAL])) return true;
    try {
      await this._dictionary();
    } catch {
      this._retryLater(null);
      return false;
    }
    const essential = this._essential();
    const drop = q.filter((e) => e[INTERNAL] && !essential.has(e.event_name));
    const keep = this._queue()
      .filter((e) => !drop.some((d) => d.client_event_id === e.client_event_id))
      .map(strip);
    this.store.set('queue', keep);
    this._bump('suppressed', drop.length);
    return true;
  }

  _batch() {
    const out = [];
    let bytes = 16;
    for (const e of this._queue()) {
      const size = JSON.stringify(e).length + 1;
      if (out.length >= this.maxBatch || (out.length && bytes + size > BODY_MAX_BYTES)) break;
      out.push(e);
      bytes += size;
    }
    return out;
  }

  _retryLater(retryAfter) {
    const delay = backoffDelay(this.attempt, {
      baseMs: this.o.backoffBaseMs,
      maxMs: this.o.backoffMaxMs,
      random: this.random,
      retryAfterMs: parseRetryAfter(retryAfter, this.now()),
    });
    this.attempt += 1;
    this.retryAt = this.now() + delay;
    if (this.timer) this.clearTimeout(this.timer);
    this.timer = null;
    this._schedule(delay);
    return delay;
  }

  /** One request; true when the queue moved on (sent, or dropped for good). */
  async _post(batch) {
    const abort = typeof AbortController === 'function' ? new AbortController() : null;
    const exchange = async () => {
      const res = await this.fetch(`${this.host}/v1/events/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.o.writeKey}` },
        body: JSON.stringify({ events: batch.map(strip) }),
        credentials: 'omit',
        signal: abort ? abort.signal : undefined,
      });
      let body = null;
      try {
        body = await res.json();
      } catch {
        body = null; // not JSON (a proxy's error page): the status decides
      }
      return { status: res.status, headers: res.headers, body };
    };
    let reply;
    try {
      reply = await this._deadline(exchange(), this.o.requestTimeoutMs);
    } catch {
      if (abort) abort.abort();
      this._retryLater(null); // offline, DNS, CORS refused, no answer in time
      return false;
    }
    const ids = new Set(batch.map((e) => e.client_event_id));
    if (reply.status === 200 && reply.body) {
      this._resolved(batch, ids, reply.body);
      return true;
    }
    if (RETRY_STATUS.has(reply.status) || reply.status === 200) {
      this._retryLater(reply.headers && reply.headers.get('Retry-After'));
      return false;
    }
    if (reply.status === 413 && batch.length > 1) {
      this.maxBatch = Math.max(1, Math.floor(batch.length / 2));
      return true;
    }
    this._remove(ids);
    this.attempt = 0;
    this._bump('rejected', batch.length);
    const detail = reply.body && reply.body.detail;
    this.onError({ kind: 'http', status: reply.status, detail, events: [...ids] });
    return true;
  }

  /** `promise`, or a rejection after `ms`: a request or body that never settles must not
   * hold the queue forever. */
  _deadline(promise, ms) {
    return new Promise((resolve, reject) => {
      const timer = this.setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
      promise.then(
        (value) => {
          this.clearTimeout(timer);
          resolve(value);
        },
        (err) => {
          this.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  _resolved(batch, ids, body) {
    this.attempt = 0;
    this.retryAt = 0;
    const rejected = Array.isArray(body.rejected) ? body.rejected : [];
    for (const r of rejected) {
      const e = batch[r.index] || {};
      const { client_event_id: id, event_name: name } = e;
      this.onError({ kind: 'rejected', client_event_id: id, event_name: name, errors: r.errors });
    }
    this._remove(ids); // accepted, duplicates (already stored), rejected (never retried)
    this._bump('sent', (body.accepted || []).length);
    this._bump('duplicates', (body.duplicates || []).length);
    this._bump('rejected', rejected.length);
  }

  // --- page exit -------------------------------------------------------------------------
  _listen(win, doc) {
    if (!win || typeof win.addEventListener !== 'function') return;
    const onHide = () => this._beacon();
    const onVisibility = () => {
      if (doc && doc.visibilityState === 'hidden') this._beacon();
    };
    win.addEventListener('pagehide', onHide);
    if (doc) doc.addEventListener('visibilitychange', onVisibility);
    this.unlisten = () => {
      win.removeEventListener('pagehide', onHide);
      if (doc) doc.removeEventListener('visibilitychange', onVisibility);
    };
  }

  /**
   * Hand the queue to sendBeacon (text/plain, write key in the body: a beacon
   * cannot set headers). The events stay queued: the next page load sends them
   * again and the server answers `duplicates` for those the beacon delivered.
   */
  _beacon() {
    if (!this.sendBeacon || this.closed) return 0;
    // visibilitychange and pagehide both fire as a page goes: one beacon is enough
    if (this.now() - (this.lastBeaconAt || 0) < 1000) return 0;
    this.lastBeaconAt = this.now();
    const events = this._queue().filter((e) => !e[INTERNAL]);
    const url = `${this.host}/v1/events/batch`;
    const head = `{"write_key":${JSON.stringify(this.o.writeKey)},"events":[`;
    let sent = 0;
    let chunk = [];
    let bytes = head.length + 2;
    const send = () => {
      if (!chunk.length) return true;
      const ok = this.sendBeacon(url, `${head}${chunk.join(',')}]}`);
      if (ok) sent += chunk.length;
      chunk = [];
      bytes = head.length + 2;
      return ok;
    };
    for (const e of events) {
      const json = JSON.stringify(strip(e));
      if (head.length + json.length + 2 > BEACON_MAX_BYTES) continue; // cannot fit any beacon
      if (bytes + json.length + 1 > BEACON_MAX_BYTES && !send()) break;
      chunk.push(json);
      bytes += json.length + 1;
    }
    send();
    this._bump('beaconed', sent);
    return sent;
  }
}

// --- the page-wide instance (script tag and simple imports) -------------------------------
let instance = null;

function need(method) {
  if (!instance) throw new Error(`skillstream.${method}: call skillstream.init({...}) first`);
  return instance;
}

function init(options) {
  if (instance) instance.close();
  instance = new Client(options);
  return instance;
}

const track = (name, properties, ids) => need('track').track(name, properties, ids);
const identify = (userId, traits) => need('identify').identify(userId, traits);
const optOut = () => need('optOut').optOut();
const optIn = () => need('optIn').optIn();
const flush = () => need('flush').flush();
const reset = () => need('reset').reset();
const stats = () => need('stats').stats();
const anonymousId = () => need('anonymousId').anonymousId();

function createClient(options) {
  return new Client(options);
}

export {
  init,
  track,
  identify,
  optOut,
  optIn,
  flush,
  reset,
  stats,
  anonymousId,
  createClient,
  Client,
  backoffDelay,
  parseRetryAfter,
  VERSION,
};
