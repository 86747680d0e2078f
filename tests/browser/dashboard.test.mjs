// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core.
// scripts/browser-test.sh starts the services and passes TASKPILOT_URL, ADMIN_KEY, READ_KEY.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.TASKPILOT_URL;
const ADMIN_KEY = process.env.ADMIN_KEY;
const READ_KEY = process.env.READ_KEY;
const SHOTS = process.env.SCREENSHOT_DIR ?? "screenshots";
const WIDTHS = { desktop: 1280, phone: 390 };
const LIVE_TIMEOUT = 15_000;
assert.ok(BASE && ADMIN_KEY && READ_KEY, "run through scripts/browser-test.sh");
mkdirSync(SHOTS, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // Without the background-networking flags chromium keeps calling hosts this network refuses.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});
after(async () => browser?.close());

/// The JSON API as a client uses it.
async function api(method, path, body, key = ADMIN_KEY) {
  const response = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/// A web task of `type` bound to `schedulerType` with `payload`; its id.
async function boundTask(type, schedulerType, payload = {}) {
  const created = await api("POST", "/api/tasks", { type, payload });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const bound = await api("POST", `/api/tasks/${created.body.id}/scheduler`, { schedulerType });
  assert.equal(bound.status, 201, JSON.stringify(bound.body));
  return created.body.id;
}

async function newPage(width = WIDTHS.desktop) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => assert.fail(`script error on ${page.url()}: ${e}`));
  return page;
}

async function signIn(page, key) {
  await page.goto(BASE + "/ui");
  assert.match(page.url(), /\/ui\/login$/, "a browser without a key is sent to sign in");
  await page.getByLabel("API key").fill(key);
  await Promise.all([page.waitForURL(BASE + "/ui"), page.getByRole("button", { name: "Sign in" }).click()]);
}

/// Both widths of the page at `path`, signed in with `key`.
async function screenshots(name, path, key = ADMIN_KEY) {
  for (const [label, width] of Object.entries(WIDTHS)) {
    const page = await newPage(width);
    if (key) await signIn(page, key);
    await page.goto(BASE + path);
    await page.waitForLoadState("networkidle").catch(() => {});
    await page.screenshot({ path: join(SHOTS, `${name}-${label}.png`), fullPage: true });
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= width, `${path} is ${scrollWidth} px wide at ${width} px: it scrolls sideways`);
    await page.context().close();
  }
}

/// Marks the document, so that a later check can tell it was not loaded again.
const markDocument = (page) => page.evaluate(() => { window.__notReloaded = true; });
const stillSameDocument = (page) => page.evaluate(() => window.__notReloaded === true);

test("a wrong key is refused and nothing is signed in", async () => {
  const page = await newPage();
  await page.goto(BASE + "/ui");
  await page.getByLabel("API key").fill("tp_notakey_0000000000000000000000000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "UNAUTHORIZED" }).waitFor();
  assert.match(page.url(), /\/ui\/login$/);
  await page.goto(BASE + "/ui");
  assert.match(page.url(), /\/ui\/login$/, "still not signed in");
  await page.context().close();
});

test("signing in and reaching a task work with the keyboard alone", async () => {
  const id = (await api("POST", "/api/tasks", { type: "browser-keyboard", payload: {} })).body.id;
  const page = await newPage();
  await page.goto(BASE + "/ui/login");
  // The key field takes the focus on arrival (autofocus, which may land a moment after the
  // load event on a busy machine: typing before it loses keystrokes); Enter submits.
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === "key");
  await page.keyboard.type(ADMIN_KEY);
  await Promise.all([page.waitForURL(BASE + "/ui"), page.keyboard.press("Enter")]);
  // The first Tab reaches the skip link, which moves the focus to the content.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  await page.getByLabel("Find task by id").focus();
  await page.keyboard.type(String(id));
  await Promise.all([page.waitForURL(`${BASE}/ui/tasks/${id}`), page.keyboard.press("Enter")]);
  await page.getByRole("heading", { name: `Task #${id}` }).waitFor();
  await page.context().close();
});

test("create and bind a task in the browser, and watch it succeed without reloading", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.getByText("New task").click();
  await page.getByLabel("Type", { exact: true }).first().fill("browser-flow");
  await page.getByLabel("Payload (JSON)").fill('{"sleepMs": 1500}');
  await page.getByLabel("Bind to").selectOption("demo-slow");
  await Promise.all([page.waitForURL(/\/ui\/tasks\/\d+$/), page.getByRole("button", { name: "Create" }).click()]);
  const id = Number(page.url().split("/").pop());
  await markDocument(page);
  const status = page.locator("#execution-status");
  assert.notEqual((await status.textContent()).trim(), "SUCCEEDED", "the slow task has not finished at load");
  await status.filter({ hasText: "SUCCEEDED" }).waitFor({ timeout: LIVE_TIMEOUT });
  assert.ok(await stillSameDocument(page), "the status changed without a reload");
  await page.locator("ol.history li").filter({ hasText: "SUCCEEDED" }).waitFor();
  await page.locator("table.attempts tbody tr").first().waitFor();
  const task = await api("GET", `/api/tasks/${id}`);
  assert.equal(task.body.schedulerType, "demo-slow");
  await page.context().close();
});

test("a row of the list follows its execution live", async () => {
  const id = await boundTask("browser-row", "demo-slow", { sleepMs: 1500 });
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await markDocument(page);
  const row = page.locator(`#task-${id}`);
  await row.waitFor();
  await row.locator(".execution-status").filter({ hasText: "SUCCEEDED" }).waitFor({ timeout: LIVE_TIMEOUT });
  assert.ok(await stillSameDocument(page), "the row changed without a reload");
  assert.ok(await page.locator("#new-tasks").isHidden());
  await boundTask("browser-row", "demo");
  await page.locator("#new-tasks").waitFor({ state: "visible", timeout: LIVE_TIMEOUT });
  await page.context().close();
});

test("cancel a running demo-slow from its page", async () => {
  const id = await boundTask("browser-cancel", "demo-slow", { sleepMs: 60000 });
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.goto(`${BASE}/ui/tasks/${id}`);
  await page.locator("#execution-status").filter({ hasText: "RUNNING" }).waitFor({ timeout: LIVE_TIMEOUT });
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "Cancel execution" }).click();
  await page.locator("#execution-status").filter({ hasText: "CANCELED" }).waitFor({ timeout: LIVE_TIMEOUT });
  const execution = await api("GET", `/api/tasks/${id}/execution`);
  assert.equal(execution.body.status, "CANCELED");
  await page.context().close();
});

test("bulk cancel previews exactly what the filter matches, and cancels only that", async () => {
  const suffix = Date.now().toString(36);
  const matching = [];
  for (let i = 0; i < 3; i++) matching.push(await boundTask(`bulk-${suffix}`, "demo-slow", { sleepMs: 60000 }));
  const other = await boundTask(`other-${suffix}`, "demo-slow", { sleepMs: 60000 });
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.locator("#filters").getByLabel("Type").fill(`bulk-${suffix}`);
  await Promise.all([page.waitForURL(/type=bulk-/), page.getByRole("button", { name: "Apply filters" }).click()]);
  assert.equal(await page.locator("#task-rows tr[data-task-id]").count(), 3);
  await page.getByRole("button", { name: "Cancel all matching…" }).click();
  const count = page.locator("#bulk-count");
  await count.waitFor();
  assert.equal(await count.getAttribute("data-count"), "3");
  await page.getByLabel("to confirm").fill("2");
  await page.getByRole("button", { name: "Cancel 3 executions" }).click();
  await page.getByRole("alert").filter({ hasText: "CONFIRMATION_MISMATCH" }).waitFor();
  for (const id of matching) {
    assert.notEqual((await api("GET", `/api/tasks/${id}/execution`)).body.status, "CANCELED", "a wrong count cancels nothing");
  }
  await page.getByRole("button", { name: "Cancel all matching…" }).click();
  await page.getByLabel("to confirm").fill("3");
  await page.getByRole("button", { name: "Cancel 3 executions" }).click();
  await page.locator("#bulk-done").filter({ hasText: "3 canceled" }).waitFor();
  for (const id of matching) {
    assert.equal((await api("GET", `/api/tasks/${id}/execution`)).body.status, "CANCELED");
  }
  assert.notEqual((await api("GET", `/api/tasks/${other}/execution`)).body.status, "CANCELED", "outside the filter");
  assert.equal((await api("PUT", `/api/tasks/${other}/execution/cancel`)).status, 204);
  await page.context().close();
});

test("a read-only key sees no button that changes anything, and cannot post one", async () => {
  const running = await boundTask("browser-readonly", "demo-slow", { sleepMs: 60000 });
  const unbound = (await api("POST", "/api/tasks", { type: "browser-readonly", payload: {} })).body.id;
  const page = await newPage();
  await signIn(page, READ_KEY);
  await page.locator("text=read only").waitFor();
  assert.equal(await page.locator("details.create, .bulk button, form.bind, .task-actions").count(), 0);
  await page.goto(`${BASE}/ui/tasks/${running}`);
  await page.locator("#execution-status").waitFor();
  assert.equal(await page.getByRole("button", { name: "Cancel execution" }).count(), 0);
  await page.goto(`${BASE}/ui/tasks/${unbound}`);
  assert.equal(await page.locator("form.bind").count(), 0);
  const refused = await page.request.post(`${BASE}/ui/tasks/${running}/cancel`, {
    headers: { "content-type": "application/json", "hx-request": "true" }, data: {},
  });
  assert.equal(refused.status(), 403);
  assert.notEqual((await api("GET", `/api/tasks/${running}/execution`)).body.status, "CANCELED");
  assert.equal((await api("PUT", `/api/tasks/${running}/execution/cancel`)).status, 204);
  await page.context().close();
});

test("the overview shows counts, both charts and health", async () => {
  const page = await newPage();
  await signIn(page, ADMIN_KEY);
  await page.getByRole("link", { name: "Overview" }).click();
  await page.waitForURL(/\/ui\/overview$/);
  await page.locator("#dtp-health").filter({ hasText: "answers" }).waitFor();
  await page.locator("#throughput-chart canvas").waitFor();
  await page.locator("#pickup-chart canvas").waitFor();
  const browserFlow = page.locator("table.counts tr").filter({ hasText: "browser-flow" });
  assert.equal(await browserFlow.count(), 1);
  await page.context().close();
});

test("every page at 1280 and 390 px", async () => {
  const some = (await api("GET", "/api/tasks?type=browser-flow")).body.items[0].id;
  await screenshots("sign-in", "/ui/login", null);
  await screenshots("tasks", "/ui");
  await screenshots("task", `/ui/tasks/${some}`);
  await screenshots("overview", "/ui/overview");
  await screenshots("tasks-read-only", "/ui", READ_KEY);
});
