// Swagger UI, served by Gatehouse at /docs, driven in Debian's Chromium the way
// a person uses it: Authorize with the OAuth2 password flow from the OpenAPI
// document, then "Try it out" on GET /users/me.
//
// Reads GATEHOUSE_URL, E2E_USERNAME, E2E_PASSWORD, E2E_OUTPUT and CHROMIUM_PATH
// (set by e2e/run.sh). Leaves swagger-ui-authorized.png in E2E_OUTPUT.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test through e2e/run.sh`);
  return value;
}

const baseUrl = required('GATEHOUSE_URL');
const username = required('E2E_USERNAME');
const password = required('E2E_PASSWORD');
const output = required('E2E_OUTPUT');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// Each test gets its own browser with a fresh profile, so nothing one test
// stores (cookies, localStorage) can help or hurt another.
async function withBrowser(run) {
  const profile = await mkdtemp(join(tmpdir(), 'gatehouse-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 1000 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  // Whatever the page logs or fails to load is printed, to explain a failure.
  page.on('pageerror', (error) => console.log(`page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    console.log(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`),
  );
  try {
    return await run(page);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

async function openDocs(page) {
  const response = await page.goto(`${baseUrl}/docs`);
  assert.equal(response.status(), 200, 'GET /docs');
  await page.locator('.swagger-ui .info .title').filter({ hasText: 'Gatehouse' }).waitFor();
}

// Opens the Authorize dialog and submits the password flow's form.
async function logIn(page, user, pass) {
  await page.locator('.swagger-ui .auth-wrapper button.authorize').click();
  const dialog = page.locator('.swagger-ui .dialog-ux .modal-ux');
  await dialog.waitFor();
  await dialog.locator('#oauth_username').fill(user);
  await dialog.locator('#oauth_password').fill(pass);
  // The first POST is the login; where it goes comes from the document's
  // security scheme (its tokenUrl), so it is checked rather than waited for.
  const login = page.waitForRequest((request) => request.method() === 'POST');
  await dialog.locator('.auth-btn-wrapper button.authorize').click();
  const request = await login;
  assert.equal(request.url(), `${baseUrl}/token`, 'Swagger UI posts the login to /token');
  const response = await request.response();
  return { dialog, request, response };
}

// Expands GET /users/me, presses "Try it out" and "Execute", and returns the
// request the page sent and the response table Swagger UI shows.
async function tryUsersMe(page) {
  const operation = page.locator('.swagger-ui .opblock-get').filter({
    has: page.locator('.opblock-summary-path[data-path="/users/me"]'),
  });
  await operation.locator('.opblock-summary').click();
  await operation.locator('button.try-out__btn').click();
  const sent = page.waitForRequest(
    (request) => request.url() === `${baseUrl}/users/me` && request.method() === 'GET',
  );
  await operation.locator('button.execute').click();
  const request = await sent;
  const live = operation.locator('.live-responses-table');
  await live.locator('tbody tr.response .response-col_status').first().waitFor();
  return { operation, request, live };
}

// Swagger UI's own record of who is authorized (its Redux store).
function authorizations(page) {
  return page.evaluate(() => window.ui.authSelectors.authorized().toJS());
}

test('Swagger UI logs in with the password flow and Try it out on GET /users/me answers 200 with the user', async () => {
  await withBrowser(async (page) => {
    await openDocs(page);

    const { dialog, request, response } = await logIn(page, username, password);

    assert.equal(response.status(), 200, 'POST /token from Swagger UI');
    const form = new URLSearchParams(request.postData());
    assert.equal(form.get('grant_type'), 'password');
    assert.equal(form.get('username'), username);
    assert.match(request.headers()['content-type'], /^application\/x-www-form-urlencoded/);
    await dialog.locator('button.btn-done', { hasText: 'Close' }).waitFor();
    await dialog.getByText('Authorized', { exact: true }).first().waitFor();
    assert.ok((await authorizations(page)).OAuth2PasswordBearer?.token?.access_token);
    await dialog.locator('button.btn-done').click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('.swagger-ui .auth-wrapper button.authorize.locked').waitFor();

    const { operation, request: call, live } = await tryUsersMe(page);

    assert.match(call.headers().authorization ?? '', /^Bearer ey/, 'the call carries the token');
    assert.equal((await live.locator('tbody tr.response .response-col_status').first().innerText()).trim(), '200');
    const body = await live.locator('tbody tr.response .response-col_description .microlight').first().innerText();
    assert.deepEqual(JSON.parse(body), {
      username,
      email: 'alice@example.com',
      full_name: 'Alice Wonderson',
      disabled: false,
    });
    await operation.scrollIntoViewIfNeeded();
    const screenshot = join(output, 'swagger-ui-authorized.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`screenshot: ${screenshot}`);
  });
});

test('Swagger UI shows invalid_grant for a wrong password and stores no token', async () => {
  await withBrowser(async (page) => {
    await openDocs(page);

    const { dialog, response } = await logIn(page, username, `not-${password}`);

    assert.equal(response.status(), 400);
    const error = dialog.locator('.errors');
    await error.waitFor();
    const shown = await error.innerText();
    assert.match(shown, /invalid_grant/);
    assert.match(shown, /incorrect username or password/);
    assert.deepEqual(await authorizations(page), {});
    assert.equal(await dialog.locator('button.btn-done', { hasText: 'Logout' }).count(), 0);
    assert.deepEqual(await page.evaluate(() => ({ ...window.localStorage })), {});
    await dialog.locator('button.btn-done').click();
    await page.locator('.swagger-ui .auth-wrapper button.authorize.unlocked').waitFor();

    const { request: call, live } = await tryUsersMe(page);

    assert.equal(call.headers().authorization, undefined, 'no token is sent');
    assert.equal((await live.locator('tbody tr.response .response-col_status').first().innerText()).trim(), '401');
  });
});
