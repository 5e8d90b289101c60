// The seed's clients, unchanged: the real @trpc/client 11 (no transformer) calling every
// seed procedure with the seed's inputs against herald-local's /api/trpc, through
// httpBatchLink, httpLink and httpBatchStreamLink. Each answer is compared with the REST
// route's. Run by tests/tests/trpc.rs, which passes:
//   HERALD_URL     http://127.0.0.1:PORT
//   TOKEN          a JWT of a member of TENANT
//   TENANT         the caller's tenant
//   OTHER_TENANT   a tenant the caller is not a member of
//   OTHER_CONTACT  a contact of OTHER_TENANT
// Prints one JSON line per link with what it checked; any failed assertion exits non-zero.

import assert from 'node:assert/strict';
import {
  createTRPCClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
  TRPCClientError,
} from '@trpc/client';

const { HERALD_URL, TOKEN, TENANT, OTHER_TENANT, OTHER_CONTACT } = process.env;
const url = `${HERALD_URL}/api/trpc`;
const auth = (token) => (token ? { authorization: `Bearer ${token}` } : {});

// Every batch the server receives, by link, to prove the batching links batch.
const requests = [];
const countingFetch = (input, init) => {
  requests.push(String(input));
  return fetch(input, init);
};

function client(link, token = TOKEN) {
  return createTRPCClient({
    links: [link({ url, headers: () => auth(token), fetch: countingFetch })],
  });
}

async function rest(method, path, body) {
  const res = await fetch(`${HERALD_URL}${path}`, {
    method,
    headers: { ...auth(TOKEN), 'x-tenant-id': TENANT, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function restOk(method, path, body) {
  const res = await rest(method, path, body);
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json;
}

/** The tRPC error a call fails with. */
async function failure(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TRPCClientError, `not a TRPCClientError: ${err}`);
    return err;
  }
  assert.fail('the call succeeded');
}

let phones = 0;
const phone = () => `+1415555${String(1000 + (process.pid % 5000) + phones++).padStart(4, '0')}`;

/** Every seed procedure (and Herald's additions) through one client. */
async function everyProcedure(t, tag) {
  const tenantId = TENANT;
  const called = new Set();
  const call = async (name, kind, input) => {
    const [router, proc] = name.split('.');
    called.add(name);
    return t[router][proc][kind](input);
  };

  // Contacts.
  const contact = await call('contacts.create', 'mutate', { tenantId, name: `Ada ${tag}`, phone: phone() });
  assert.deepEqual(contact, await restOk('GET', `/api/contacts/${contact.id}`));
  assert.deepEqual(
    await call('contacts.getById', 'query', { tenantId, id: contact.id }),
    await restOk('GET', `/api/contacts/${contact.id}`),
  );
  const renamed = await call('contacts.update', 'mutate', { tenantId, id: contact.id, name: `Ada L ${tag}` });
  assert.equal(renamed.name, `Ada L ${tag}`);
  assert.deepEqual(renamed, await restOk('GET', `/api/contacts/${contact.id}`));
  const imported = await call('contacts.import', 'mutate', {
    tenantId,
    contacts: [{ name: `Imported ${tag}`, phone: phone() }],
  });
  assert.equal(imported.imported, 1);
  assert.deepEqual(
    await call('contacts.list', 'query', { tenantId, limit: 50 }),
    await restOk('GET', '/api/contacts?limit=50'),
  );
  const search = { tenantId, limit: 5, offset: 0, search: 'Ada' };
  assert.deepEqual(
    await call('contacts.list', 'query', search),
    await restOk('GET', '/api/contacts?limit=5&offset=0&search=Ada'),
  );

  // Groups.
  const group = await call('groups.create', 'mutate', { tenantId, name: `VIP ${tag}` });
  assert.deepEqual(
    await call('groups.getById', 'query', { tenantId, id: group.id }),
    await restOk('GET', `/api/groups/${group.id}`),
  );
  const regrouped = await call('groups.update', 'mutate', { tenantId, id: group.id, name: `VVIP ${tag}` });
  assert.deepEqual(regrouped, await restOk('GET', `/api/groups/${group.id}`));
  await call('groups.addContacts', 'mutate', { tenantId, id: group.id, contactIds: [contact.id] });
  const members = await call('groups.members', 'query', { tenantId, id: group.id, limit: 10 });
  assert.deepEqual(members, await restOk('GET', `/api/groups/${group.id}/contacts?limit=10`));
  assert.deepEqual(members.items.map((c) => c.id), [contact.id]);
  assert.deepEqual(
    await call('groups.list', 'query', { tenantId }),
    await restOk('GET', '/api/groups'),
  );

  // Message templates.
  const template = await call('messageTemplates.create', 'mutate', {
    tenantId,
    name: `Hi ${tag}`,
    body: 'Hello {{ contact.name }}',
  });
  assert.deepEqual(
    await call('messageTemplates.getById', 'query', { tenantId, id: template.id }),
    await restOk('GET', `/api/templates/${template.id}`),
  );
  const retemplated = await call('messageTemplates.update', 'mutate', { tenantId, id: template.id, name: `Hello ${tag}` });
  assert.deepEqual(retemplated, await restOk('GET', `/api/templates/${template.id}`));
  const preview = await call('messageTemplates.preview', 'mutate', { tenantId, id: template.id, contactId: contact.id });
  assert.deepEqual(
    preview,
    await restOk('POST', `/api/templates/${template.id}/preview`, { contactId: contact.id }),
  );
  assert.deepEqual(
    await call('messageTemplates.list', 'query', { tenantId, limit: 50 }),
    await restOk('GET', '/api/templates?limit=50'),
  );

  // Campaigns.
  const draft = { tenantId, name: `Spring ${tag}`, templateId: template.id, groupId: group.id };
  const campaign = await call('campaigns.create', 'mutate', draft);
  assert.deepEqual(
    await call('campaigns.getById', 'query', { tenantId, id: campaign.id }),
    await restOk('GET', `/api/campaigns/${campaign.id}`),
  );
  const summer = await call('campaigns.update', 'mutate', { tenantId, id: campaign.id, name: `Summer ${tag}` });
  assert.deepEqual(summer, await restOk('GET', `/api/campaigns/${campaign.id}`));
  assert.equal((await call('campaigns.start', 'mutate', { tenantId, id: campaign.id })).status, 'running');
  assert.equal((await call('campaigns.pause', 'mutate', { tenantId, id: campaign.id })).status, 'paused');
  assert.equal((await call('campaigns.resume', 'mutate', { tenantId, id: campaign.id })).status, 'running');
  assert.equal((await call('campaigns.cancel', 'mutate', { tenantId, id: campaign.id })).status, 'cancelled');
  assert.deepEqual(
    await call('campaigns.list', 'query', { tenantId, limit: 50, status: 'cancelled' }),
    await restOk('GET', '/api/campaigns?limit=50&status=cancelled'),
  );
  const spare = await call('campaigns.create', 'mutate', draft);
  assert.equal(await call('campaigns.delete', 'mutate', { tenantId, id: spare.id }), null);
  assert.equal((await rest('GET', `/api/campaigns/${spare.id}`)).status, 404);

  // Messages history.
  const message = await call('messagesHistory.create', 'mutate', { tenantId, contactId: contact.id, body: 'Hi' });
  assert.deepEqual(
    await call('messagesHistory.getById', 'query', { tenantId, id: message.id }),
    await restOk('GET', `/api/messages/${message.id}`),
  );
  const sending = await call('messagesHistory.updateStatus', 'mutate', { tenantId, id: message.id, status: 'sending' });
  assert.equal(sending.applied, true);
  assert.equal(sending.message.status, 'sending');
  assert.deepEqual(sending.message, await restOk('GET', `/api/messages/${message.id}`));
  assert.deepEqual(
    await call('messagesHistory.list', 'query', { tenantId, contactId: contact.id }),
    await restOk('GET', `/api/messages?contactId=${contact.id}`),
  );

  // Webhooks.
  const hook = await call('webhooks.create', 'mutate', {
    tenantId,
    url: 'https://hooks.example.com/herald',
    eventTypes: ['contact_created'],
  });
  assert.ok(hook.secret, 'the secret is shown once, at creation');
  assert.deepEqual(
    await call('webhooks.getById', 'query', { tenantId, id: hook.id }),
    await restOk('GET', `/api/webhooks/${hook.id}`),
  );
  const described = await call('webhooks.update', 'mutate', { tenantId, id: hook.id, description: 'CRM' });
  assert.deepEqual(described, await restOk('GET', `/api/webhooks/${hook.id}`));
  const rotated = await call('webhooks.regenerateSecret', 'mutate', { tenantId, id: hook.id });
  assert.ok(rotated.secret && rotated.secret !== hook.secret);
  assert.deepEqual(
    await call('webhooks.getLogs', 'query', { tenantId, id: hook.id, limit: 10 }),
    await restOk('GET', `/api/webhooks/${hook.id}/logs?limit=10`),
  );
  const noLog = crypto.randomUUID();
  const retry = await failure(call('webhooks.retry', 'mutate', { tenantId, id: hook.id, logId: noLog }));
  const restRetry = await rest('POST', `/api/webhooks/${hook.id}/logs/${noLog}/retry`);
  assert.equal(retry.data.httpStatus, restRetry.status);
  assert.equal(retry.data.detail, restRetry.json.detail);
  assert.deepEqual(
    await call('webhooks.list', 'query', { tenantId }),
    await restOk('GET', '/api/webhooks'),
  );
  // Last before its delete: the delivery it queues may change the webhook's logs.
  const queued = await call('webhooks.test', 'mutate', { tenantId, id: hook.id });
  assert.ok(queued.deliveryId);

  // Deletes last: each answers null (REST's 204) and the resource is gone.
  for (const [name, path, id] of [
    ['webhooks.delete', '/api/webhooks', hook.id],
    ['messageTemplates.delete', '/api/templates', (await call('messageTemplates.create', 'mutate', { tenantId, name: `Old ${tag}`, body: 'x' })).id],
    ['groups.removeContacts', null, group.id],
    ['groups.delete', '/api/groups', group.id],
    ['contacts.delete', '/api/contacts', contact.id],
  ]) {
    if (name === 'groups.removeContacts') {
      const left = await call(name, 'mutate', { tenantId, id, contactIds: [contact.id] });
      assert.equal(left.removed, 1);
      assert.deepEqual(left.group, await restOk('GET', `/api/groups/${id}`));
      continue;
    }
    assert.equal(await call(name, 'mutate', { tenantId, id }), null);
    assert.equal((await rest('GET', `${path}/${id}`)).status, 404, name);
  }
  return [...called].sort();
}

/** The errors of the list, each with its tRPC code and Herald's problem inside. */
async function errors(t, anonymous) {
  const tenantId = TENANT;
  const out = {};
  const notFound = await failure(t.contacts.getById.query({ tenantId, id: OTHER_CONTACT }));
  assert.equal(notFound.data.code, 'NOT_FOUND');
  assert.equal(notFound.shape.code, -32004);
  assert.equal(notFound.data.httpStatus, 404);
  assert.equal(notFound.data.path, 'contacts.getById');
  assert.equal(notFound.data.type, 'https://herald.dev/problems/not-found');
  assert.ok(notFound.data.requestId);
  out.notFound = notFound.shape;

  const forbidden = await failure(t.contacts.list.query({ tenantId: OTHER_TENANT }));
  assert.equal(forbidden.data.code, 'FORBIDDEN');
  assert.equal(forbidden.shape.code, -32003);
  out.forbidden = forbidden.shape;

  const unauthorized = await failure(anonymous.contacts.list.query({ tenantId }));
  assert.equal(unauthorized.data.code, 'UNAUTHORIZED');
  assert.equal(unauthorized.shape.code, -32001);
  out.unauthorized = unauthorized.shape;

  const before = await restOk('GET', '/api/contacts?limit=200');
  const invalid = await failure(t.contacts.create.mutate({ tenantId, name: '', phone: 'not a phone' }));
  assert.equal(invalid.data.code, 'UNPROCESSABLE_CONTENT');
  assert.equal(invalid.shape.code, -32022);
  const pointers = invalid.data.errors.map((e) => e.pointer).sort();
  assert.deepEqual(pointers, ['/name', '/phone']);
  const unknown = await failure(t.contacts.create.mutate({ tenantId, name: 'X', phone: phone(), color: 'red' }));
  assert.equal(unknown.data.code, 'UNPROCESSABLE_CONTENT');
  assert.match(unknown.message, /unknown field `color`/);
  const unknownFilter = await failure(t.contacts.list.query({ tenantId, colour: 'red' }));
  assert.equal(unknownFilter.data.code, 'UNPROCESSABLE_CONTENT');
  assert.deepEqual(unknownFilter.data.errors.map((e) => e.pointer), ['/colour']);
  const badLimit = await failure(t.contacts.list.query({ tenantId, limit: 0 }));
  assert.deepEqual(badLimit.data.errors.map((e) => e.pointer), ['/limit']);
  const badTenant = await failure(t.contacts.list.query({ tenantId: 'nope' }));
  assert.equal(badTenant.data.code, 'BAD_REQUEST');
  assert.equal(badTenant.shape.code, -32600);
  // Nothing written by the failed mutations.
  assert.deepEqual(await restOk('GET', '/api/contacts?limit=200'), before);
  out.invalid = invalid.shape;
  out.badTenant = badTenant.shape;
  return out;
}

/** tRPC's own client against the wire directly: a mutation sent as GET, tenant conflicts. */
async function wire() {
  const get = await fetch(`${url}/contacts.create?input=${encodeURIComponent(JSON.stringify({ tenantId: TENANT, name: 'X' }))}`, {
    headers: auth(TOKEN),
  });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const body = await get.json();
  assert.equal(body.error.code, -32005);
  assert.equal(body.error.data.code, 'METHOD_NOT_SUPPORTED');

  const conflict = await fetch(`${url}/contacts.list?input=${encodeURIComponent(JSON.stringify({ tenantId: TENANT }))}`, {
    headers: { ...auth(TOKEN), 'x-tenant-id': OTHER_TENANT },
  });
  assert.equal(conflict.status, 400);
  assert.match((await conflict.json()).error.message, /name different tenants/);

  // The seed's own fetch: the tenant in the header, no input at all.
  const seed = await fetch(`${url}/contacts.list`, { headers: { ...auth(TOKEN), 'X-Tenant-ID': TENANT } });
  assert.equal(seed.status, 200);
  assert.ok(seed.headers.get('x-request-id'));
  assert.ok(seed.headers.get('ratelimit-limit'));
  assert.deepEqual((await seed.json()).result.data, await restOk('GET', '/api/contacts'));

  // The seed's other fetch: the tenant in the URL's query string.
  const inUrl = await fetch(`${url}/contacts.list?tenantId=${TENANT}`, { headers: auth(TOKEN) });
  assert.equal(inUrl.status, 200);
  assert.deepEqual((await inUrl.json()).result.data, await restOk('GET', '/api/contacts'));

  // A mixed batch: one success, one NOT_FOUND: 207.
  const mixed = await fetch(
    `${url}/contacts.list,contacts.getById?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: { tenantId: TENANT }, 1: { tenantId: TENANT, id: OTHER_CONTACT } }))}`,
    { headers: auth(TOKEN) },
  );
  assert.equal(mixed.status, 207);
  const [ok, missing] = await mixed.json();
  assert.ok(ok.result.data.items);
  assert.equal(missing.error.data.httpStatus, 404);

  // Idempotency-Key on a mutation: the retry replays the first answer, one contact made.
  const key = crypto.randomUUID();
  const once = JSON.stringify({ tenantId: TENANT, name: 'Once', phone: phone() });
  const create = () =>
    fetch(`${url}/contacts.create`, {
      method: 'POST',
      headers: { ...auth(TOKEN), 'content-type': 'application/json', 'idempotency-key': key },
      body: once,
    });
  const first = await create();
  const second = await create();
  assert.equal(second.headers.get('idempotent-replayed'), 'true');
  const created = await first.json();
  assert.deepEqual(await second.json(), created);
  return { methodNotSupported: body.error, idempotent: created.result.data.id };
}

async function main() {
  const links = { httpBatchLink, httpLink, httpBatchStreamLink };
  const report = {};
  for (const [name, link] of Object.entries(links)) {
    const t = client(link);
    const seen = requests.length;
    const called = await everyProcedure(t, name);
    const failures = await errors(t, client(link, null));

    // Five queries across resources at once: one request for the batching links.
    const before = requests.length;
    const tenantId = TENANT;
    const five = await Promise.all([
      t.contacts.list.query({ tenantId, limit: 50 }),
      t.groups.list.query({ tenantId }),
      t.messageTemplates.list.query({ tenantId }),
      t.campaigns.list.query({ tenantId }),
      t.webhooks.list.query({ tenantId }),
    ]);
    const batchRequests = requests.slice(before);
    assert.deepEqual(five, [
      await restOk('GET', '/api/contacts?limit=50'),
      await restOk('GET', '/api/groups'),
      await restOk('GET', '/api/templates'),
      await restOk('GET', '/api/campaigns'),
      await restOk('GET', '/api/webhooks'),
    ]);
    if (name !== 'httpLink') {
      assert.equal(batchRequests.length, 1, 'one request for five queries');
      assert.match(batchRequests[0], /contacts\.list,groups\.list,messageTemplates\.list,campaigns\.list,webhooks\.list\?batch=1/);
    }
    report[name] = { called, failures, batchRequests, requests: requests.length - seen };
  }
  report.wire = await wire();
  console.log(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
