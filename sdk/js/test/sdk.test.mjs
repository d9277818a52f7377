import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { backoffDelay, parseRetryAfter } from '../src/skillstream.js';
import { Clock, MemoryStorage, SALT, Server, makeClient, settle } from './harness.mjs';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('batches by size, then by time, with the envelope set by the SDK', async () => {
  const { client, clock, server } = makeClient();
  const track = (i) => client.track('lesson_completed', { lesson_id: `l${i}` }, { program_id: 'p1' });
  for (let i = 0; i < 4; i++) track(i);
  await clock.advance(0);
  assert.equal(server.batches.length, 0, 'under flushAt: waits');
  track(4);
  await clock.advance(0);
  assert.deepEqual(server.batches.map((b) => b.length), [5], 'flushAt reached: sent at once');
  for (let i = 5; i < 7; i++) track(i);
  await clock.advance(999);
  assert.equal(server.batches.length, 1, 'the next two wait for the interval');
  await clock.advance(1);
  assert.deepEqual(server.batches.map((b) => b.length), [5, 2]);
  for (let i = 7; i < 250; i++) track(i);
  await clock.advance(0);
  assert.deepEqual(server.batches.map((b) => b.length), [5, 2, 100, 100, 43], 'maxBatchSize');

  const [first] = server.sent;
  const { init } = server.attempts[0];
  assert.equal(server.attempts[0].url, 'https://api.example.test/v1/events/batch');
  assert.equal(init.headers.Authorization, 'Bearer wk_test');
  assert.equal(init.headers['Content-Type'], 'application/json');
  assert.equal(first.event_name, 'lesson_completed');
  assert.match(first.client_event_id, UUID4);
  assert.match(first.anonymous_id, UUID4);
  assert.equal(first.event_timestamp, '2026-11-28T10:00:00.000Z');
  assert.equal(first.context_page, '/lessons/1');
  assert.equal(first.context_device, 'web.desktop');
  assert.equal(first.persona, 'student');
  assert.equal(first.opt_out_status, false);
  assert.equal(first.program_id, 'p1');
  assert.deepEqual(first.properties, { lesson_id: 'l0' });
  assert.equal(new Set(server.sent.map((e) => e.client_event_id)).size, 250);
  assert.equal(client.stats().sent, 250);
  assert.equal(client.stats().queued, 0);
});

test('backoff: exponential with jitter, never before Retry-After', () => {
  const opts = { baseMs: 1000, maxMs: 30000 };
  assert.equal(backoffDelay(0, { ...opts, random: () => 0 }), 500);
  assert.equal(backoffDelay(0, { ...opts, random: () => 0.999999 }) < 1000, true);
  assert.equal(backoffDelay(3, { ...opts, random: () => 0 }), 4000);
  assert.equal(backoffDelay(20, { ...opts, random: () => 1 }), 30000, 'capped');
  assert.equal(backoffDelay(0, { ...opts, random: () => 0, retryAfterMs: 7000 }), 7000);
  assert.equal(backoffDelay(6, { ...opts, random: () => 1, retryAfterMs: 1000 }), 30000);
  assert.equal(parseRetryAfter('7', 0), 7000);
  assert.equal(parseRetryAfter(null, 0), null);
  assert.equal(parseRetryAfter('Sat, 28 Nov 2026 10:00:30 GMT', Date.parse('2026-11-28T10:00:00Z')), 30000);
});

test('retries 503, 429 and network errors, honouring Retry-After, until accepted', async () => {
  const server = new Server([
    { status: 503, headers: { 'Retry-After': '7' }, body: { detail: 'Kafka unavailable' } },
    { status: 429 },
    'down',
    'ok',
  ]);
  const { client, clock } = makeClient({ server });
  for (let i = 0; i < 5; i++) client.track('lesson_completed');
  await clock.advance(0);
  assert.equal(server.attempts.length, 1);
  await clock.advance(6999);
  assert.equal(server.attempts.length, 1, 'waits out Retry-After');
  await clock.advance(1);
  assert.equal(server.attempts.length, 2);
  // 429 without Retry-After: second retry, 2000 ms * (0.5 + 0.5 * 0.5)
  await clock.advance(1499);
  assert.equal(server.attempts.length, 2);
  await clock.advance(1);
  assert.equal(server.attempts.length, 3);
  await clock.advance(3000); // network error: third retry, 4000 * 0.75
  assert.equal(server.attempts.length, 4);
  assert.equal(server.sent.length, 5);
  const ids = server.attempts.map((a) => a.events.map((e) => e.client_event_id).join());
  assert.equal(new Set(ids).size, 1, 'every retry carries the same client_event_ids');
  assert.equal(client.stats().queued, 0);
  // and the next failure starts from the base delay again
  server.script.push({ status: 503 });
  for (let i = 0; i < 5; i++) client.track('lesson_completed');
  await clock.advance(0);
  await clock.advance(750);
  assert.equal(server.attempts.length, 6);
});

test('rejected events are never retried; duplicates leave the queue', async () => {
  const server = new Server();
  server.fetch = async (url, init) => {
    if (url.endsWith('/dictionary')) return { status: 500, headers: { get: () => null }, json: async () => ({}) };
    const events = JSON.parse(init.body).events;
    server.attempts.push({ events });
    return {
      status: 200,
      headers: { get: () => null },
      json: async () => ({
        accepted: [events[0].client_event_id],
        duplicates: [events[1].client_event_id],
        rejected: [{ index: 2, client_event_id: events[2].client_event_id,
          errors: [{ field: 'properties.lesson_id', reason: 'must be a string' }] }],
      }),
    };
  };
  const { client, clock, errors } = makeClient({ server, options: { flushAt: 3 } });
  client.track('lesson_completed');
  client.track('lesson_completed');
  client.track('lesson_completed', { lesson_id: 5 });
  await clock.advance(60000);
  assert.equal(server.attempts.length, 1);
  assert.equal(client.stats().queued, 0);
  assert.deepEqual(
    errors.filter((e) => e.kind === 'rejected').map((e) => e.errors[0].field),
    ['properties.lesson_id'],
  );
  const s = client.stats();
  assert.deepEqual([s.sent, s.duplicates, s.rejected], [1, 1, 1]);
});

test('a 400 drops the batch, a 413 halves it', async () => {
  const server = new Server([{ status: 413 }, { status: 400, body: { detail: 'malformed JSON' } }]);
  const { client, clock, errors } = makeClient({ server, options: { flushAt: 4 } });
  for (let i = 0; i < 4; i++) client.track('lesson_completed');
  await clock.advance(60000);
  assert.deepEqual(server.attempts.map((a) => a.events.length), [4, 2, 2]);
  assert.equal(server.sent.length, 2);
  assert.equal(errors.find((e) => e.kind === 'http').detail, 'malformed JSON');
  assert.equal(client.stats().queued, 0);
});

test('the queue survives a reload and is sent by the next page', async () => {
  const storage = new MemoryStorage();
  const down = new Server(Array(50).fill('down'));
  const a = makeClient({ storage, server: down });
  for (let i = 0; i < 3; i++) a.client.track('lesson_completed');
  await a.clock.advance(1000);
  assert.equal(down.sent.length, 0);
  const anon = a.client.anonymousId();
  a.client.close(); // the page goes away

  const b = makeClient({ storage });
  assert.equal(b.client.anonymousId(), anon, 'the anonymous id is kept');
  assert.equal(b.client.stats().queued, 3);
  await b.clock.advance(0);
  assert.equal(b.server.sent.length, 3);
  assert.deepEqual(
    b.server.sent.map((e) => e.client_event_id),
    down.attempts[0].events.map((e) => e.client_event_id),
  );
});

test('the queue is bounded: the oldest go first, and are counted', async () => {
  const server = new Server(Array(50).fill('down'));
  const { client, clock, errors } = makeClient({ server, options: { maxQueueSize: 5, flushAt: 100 } });
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(client.track('lesson_completed'));
  await clock.advance(0);
  assert.equal(client.stats().queued, 5);
  assert.equal(client.stats().dropped, 3);
  assert.deepEqual(errors.filter((e) => e.kind === 'queue_full').flatMap((e) => e.dropped), ids.slice(0, 3));
  server.script = [];
  await clock.advance(60000);
  assert.deepEqual(server.sent.map((e) => e.client_event_id), ids.slice(3));
});

test('after optOut only essential events and the opt-out event are sent', async () => {
  const { client, clock, server } = makeClient({ options: { flushAt: 1 } });
  await settle(); // the dictionary
  client.track('lesson_completed');
  await client.optOut();
  assert.equal(client.isOptedOut(), true);
  assert.equal(client.track('lesson_completed'), null);
  client.track('session_started', { auth_method: 'sso' });
  await clock.advance(5000);
  await client.optIn();
  client.track('lesson_completed');
  await clock.advance(5000);
  assert.deepEqual(
    server.sent.map((e) => [e.event_name, e.opt_out_status]),
    [
      ['lesson_completed', false],
      ['settings_tracking_opt_out', true],
      ['session_started', true],
      ['settings_tracking_opt_in', false],
      ['lesson_completed', false],
    ],
  );
  assert.equal(client.stats().suppressed, 1);
});

test('opted out before the dictionary loads: non-essential events never reach the wire', async () => {
  const storage = new MemoryStorage();
  storage.setItem('skillstream:opt_out', 'true');
  const server = new Server();
  server.dictionaryUp = false;
  const { client, clock } = makeClient({ storage, server, options: { flushAt: 1 } });
  client.track('lesson_completed');
  client.track('session_started');
  await clock.advance(3000);
  assert.equal(server.attempts.length, 0, 'held until the dictionary says what is essential');
  server.dictionaryUp = true;
  await clock.advance(60000);
  assert.deepEqual(server.sent.map((e) => e.event_name), ['session_started']);
  assert.equal('_check' in server.sent[0], false);
});

test('identify: user id on later events, the e-mail hashed once with the tenant salt; reset', async () => {
  const { client, clock, server } = makeClient({ options: { flushAt: 1 } });
  const anon = client.anonymousId();
  await client.identify('usr_1', { email: '  Maya@Example.COM ' });
  client.track('lesson_completed');
  client.track('lesson_completed');
  await clock.advance(5000);
  const want = createHash('sha256').update(`${SALT}maya@example.com`).digest('hex');
  const [a, b] = server.sent;
  assert.equal(a.user_id, 'usr_1');
  assert.equal(a.email_sha256, want);
  assert.equal(a.anonymous_id, anon);
  assert.equal(b.user_id, 'usr_1');
  assert.equal('email_sha256' in b, false, 'sent once');
  assert.equal('email' in a, false);
  for (const [k, v] of client.store.storage.map) assert.equal(/maya/i.test(v), false, k);

  client.reset();
  client.track('lesson_completed');
  await clock.advance(5000);
  const c = server.sent[2];
  assert.notEqual(c.anonymous_id, anon);
  assert.match(c.anonymous_id, UUID4);
  assert.equal('user_id' in c, false);
});

test('page hide hands the queue to sendBeacon, key in a text body, chunks under 64 KiB', async () => {
  const beacons = [];
  const win = new EventTarget();
  const server = new Server(Array(50).fill('down'));
  const { client } = makeClient({
    server,
    options: { window: win, flushAt: 1000, maxQueueSize: 1000,
      sendBeacon: (url, body) => beacons.push({ url, body }) > 0 },
  });
  const props = { lesson_id: 'x'.repeat(400) };
  for (let i = 0; i < 300; i++) client.track('lesson_completed', props);
  win.dispatchEvent(new Event('pagehide'));
  assert.ok(beacons.length >= 2);
  const seen = [];
  for (const b of beacons) {
    assert.equal(b.url, 'https://api.example.test/v1/events/batch');
    assert.equal(typeof b.body, 'string', 'a string body is sent as text/plain');
    assert.ok(b.body.length <= 60000);
    const parsed = JSON.parse(b.body);
    assert.equal(parsed.write_key, 'wk_test');
    seen.push(...parsed.events.map((e) => e.client_event_id));
  }
  assert.equal(new Set(seen).size, 300);
  assert.equal(client.stats().queued, 300, 'kept: the next page resends, the server dedupes');
  assert.equal(client.stats().beaconed, 300);
});

test('tabs sharing storage do not overwrite each other', async () => {
  const storage = new MemoryStorage();
  const server = new Server(Array(50).fill('down'));
  const a = makeClient({ storage, server, options: { flushAt: 100 } });
  const b = makeClient({ storage, server, clock: new Clock(), options: { flushAt: 100 } });
  a.client.track('lesson_completed');
  b.client.track('lesson_completed');
  a.client.track('lesson_completed');
  assert.equal(a.client.stats().queued, 3);
});

test('a flush with nothing to send, or a timer that fires early, does not wedge the sender', async () => {
  const server = new Server([{ status: 503, headers: { 'Retry-After': '2' } }]);
  const { client, clock } = makeClient({ server, options: { flushAt: 1 } });
  await client.flush();
  await client.flush();
  client.track('lesson_completed');
  await clock.advance(0);
  assert.equal(server.attempts.length, 1);
  await client.flush(); // inside the backoff: nothing is sent, nothing is stuck
  await clock.advance(1000);
  assert.equal(server.attempts.length, 1);
  await clock.advance(1000);
  assert.equal(server.sent.length, 1);
  client.track('lesson_completed');
  await clock.advance(0);
  assert.equal(server.sent.length, 2);
});

test('without working storage the SDK still sends, from memory', async () => {
  const broken = { getItem() { throw new Error('SecurityError'); }, setItem() { throw new Error('QuotaExceededError'); }, removeItem() {} };
  const { client, clock, server } = makeClient({ storage: broken, options: { flushAt: 2 } });
  client.track('lesson_completed');
  client.track('lesson_completed');
  await clock.advance(0);
  assert.equal(server.sent.length, 2);
  assert.match(server.sent[0].anonymous_id, UUID4);
  assert.equal(server.sent[0].anonymous_id, server.sent[1].anonymous_id);
});

test('storage cleared under the SDK: a new anonymous id, never a missing one', async () => {
  const { client, clock, server, storage } = makeClient({ options: { flushAt: 1 } });
  const before = client.anonymousId();
  storage.map.clear();
  client.track('lesson_completed');
  await clock.advance(0);
  assert.match(server.sent[0].anonymous_id, UUID4);
  assert.notEqual(server.sent[0].anonymous_id, before);
});
