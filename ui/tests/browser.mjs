// The screens in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// against the mock build (`vite build --mode mock`): first run, the backup list (and what each
// backup's last check proved), Back up now with progress, the restore modal (disabled until the
// name is typed; Esc cancels), restore from file (an old-system file anyone could have written:
// a second warning to tick), settings with the cron preview, the weekly test restore, the TLS
// modes and the backup folder chosen in its dialog, offsite copies (an S3 destination added
// through the form, refused with a wrong secret first; each backup's copies in the list; Sync
// now), activity, the failure banner, the refusal of the old system's public key. Screenshots go to ../target/screenshots/ui-*.png.

import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { strict as assert } from "node:assert";
import { chromium } from "playwright-core";

const dist = resolve(import.meta.dirname, "../dist-mock");
const shots = resolve(import.meta.dirname, "../../target/screenshots");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(browserPath)) {
  console.error(`Chromium is not at ${browserPath}: install Debian's chromium (make setup does) or set CHROMIUM`);
  process.exit(1);
}
await mkdir(shots, { recursive: true });

const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml" };
const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const file = join(dist, path === "/" ? "index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: browserPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
let failed = 0;
const results = [];
async function check(name, fn) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await fn(page);
    assert.deepEqual(errors, [], "no script errors");
    results.push(`ok   ${name}`);
  } catch (e) {
    failed++;
    results.push(`FAIL ${name}: ${e?.stack ?? e}`);
    await page.screenshot({ path: join(shots, `ui-failed-${name.replace(/\W+/g, "-")}.png`) }).catch(() => {});
  } finally {
    await page.close();
  }
}

await check("first run: connection, test, demo offer, key with recovery copy", async (page) => {
  await page.goto(base + "?setup");
  await page.getByText("1. The school database").waitFor();
  await page.getByTestId("demo-offer").waitFor();
  await page.screenshot({ path: join(shots, "ui-setup-database.png") });
  assert.equal(await page.getByTestId("save-connection").isDisabled(), true, "save waits for a good test");
  await page.getByTestId("db-name").fill("school_erp");
  await page.getByTestId("db-password").fill("wrong");
  await page.getByTestId("test-connection").click();
  await page.getByText("The database refused the login").waitFor();
  assert.equal(await page.getByTestId("save-connection").isDisabled(), true);
  await page.getByTestId("db-password").fill("secret");
  await page.getByTestId("test-connection").click();
  await page.getByText("Connected to").waitFor();
  await page.getByTestId("save-connection").click();
  await page.getByText("2. The encryption key").waitFor();
  await page.getByTestId("key-generate").click();
  await page.getByTestId("fingerprint").waitFor();
  assert.equal(await page.getByTestId("setup-done").isDisabled(), true, "continue waits for the recovery copy");
  assert.equal(await page.getByTestId("setup-daily").isChecked(), true, "the daily 02:00 schedule is offered, ticked");
  await page.getByTestId("key-save-recovery").click();
  await page.getByText("Saved to").waitFor();
  await page.screenshot({ path: join(shots, "ui-setup-key.png") });
  await page.getByTestId("setup-done").click();
  await page.getByRole("heading", { name: "Backups" }).waitFor();
});

await check("backups: list, back up now with progress, empty state", async (page) => {
  await page.goto(base + "?empty");
  await page.getByTestId("empty").waitFor();
  await page.screenshot({ path: join(shots, "ui-backups-empty.png") });
  await page.getByTestId("backup-now").click();
  await page.getByTestId("progress").waitFor();
  await page.screenshot({ path: join(shots, "ui-backup-progress.png") });
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await page.getByTestId("backup-row").count(), 1);
  await page.goto(base);
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await page.getByTestId("backup-row").count(), 4);
  await page.screenshot({ path: join(shots, "ui-backups.png") });
});

await check("a new computer: Find backups in NAS lists them, and the restore modal shows the download", async (page) => {
  await page.goto(base + "?empty");
  const card = page.getByTestId("find-backups");
  await card.waitFor();
  await page.getByTestId("find-from").selectOption("NAS");
  await page.screenshot({ path: join(shots, "ui-find-backups.png") });
  await page.getByTestId("find-go").click();
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await page.getByTestId("backup-row").count(), 4);
  const first = page.getByTestId("backup-row").first();
  assert.equal(await first.getByTestId("local-file").innerText(), "Not on this computer");
  assert.equal(await first.getByTestId("copy-NAS").innerText(), "NAS ✓");
  await first.getByTestId("restore").click();
  await page.getByText("Fetching the backup", { exact: true }).waitFor();
  assert.match(await page.getByTestId("progress-phase").innerText(), /from its destination: NAS$/);
  await page.screenshot({ path: join(shots, "ui-restore-download.png") });
  await page.getByTestId("restore-confirm").waitFor();
});

await check("about: the version and the backup formats it writes and reads", async (page) => {
  await page.goto(base);
  await page.getByTestId("about").click();
  await page.getByTestId("about-box").waitFor();
  assert.equal(await page.getByTestId("about-version").innerText(), "0.1.0");
  assert.match(await page.getByTestId("about-writes").innerText(), /^format 3 \(\.svb/);
  assert.match(await page.getByTestId("about-reads").innerText(), /old system's \.enc/);
  await page.screenshot({ path: join(shots, "ui-about.png") });
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => !document.querySelector("[data-testid=about-box]"));
});

await check("backups: the weekly test restore shows on its backup, Test restore on another; Settings has it on", async (page) => {
  await page.goto(base);
  await page.getByTestId("backup-row").first().waitFor();
  const badge = (i) => page.getByTestId("backup-row").nth(i).getByTestId("check-badge");
  assert.match(await badge(0).innerText(), /^✓ test-restored \w{3},? \d\d \w{3} \d{4}$/);
  assert.match(await badge(0).getAttribute("title"), /^test restore: /);
  assert.equal(await badge(3).innerText(), "✓ verified");
  assert.equal(await badge(1).innerText(), "not yet");
  await page.getByTestId("backup-row").nth(1).getByTestId("test-restore").click();
  await page.getByText("Restored into a scratch database").waitFor();
  assert.match(await badge(1).innerText(), /^✓ test-restored /);
  await page.getByTestId("nav-settings").click();
  const box = page.getByTestId("weekly-test-restore");
  await box.waitFor();
  assert.equal(await box.isChecked(), true);
  assert.match(await page.locator("label.check", { has: box }).innerText(), /Test-restore the newest backup every week \(into a scratch database, then dropped\)/);
});

await check("restore modal: disabled until the name is typed, Esc cancels, then restores", async (page) => {
  await page.goto(base);
  await page.getByTestId("restore").first().click();
  const confirm = page.getByTestId("restore-confirm");
  await confirm.waitFor();
  assert.equal(await confirm.isDisabled(), true);
  await page.getByTestId("confirm-name").fill("school_er");
  assert.equal(await confirm.isDisabled(), true);
  await page.getByTestId("confirm-name").fill("school_erp");
  assert.equal(await confirm.isDisabled(), false);
  await page.screenshot({ path: join(shots, "ui-restore-modal.png") });
  await page.keyboard.press("Escape");
  assert.equal(await page.getByRole("dialog").count(), 0, "Esc closes the modal");
  // Keyboard only: open, type, Tab to the button, Enter.
  await page.getByTestId("restore").first().focus();
  await page.keyboard.press("Enter");
  await page.getByTestId("confirm-name").waitFor();
  await page.keyboard.type("school_erp");
  await page.getByTestId("restore-confirm").focus();
  await page.keyboard.press("Enter");
  await page.getByTestId("restore-result").waitFor();
  await page.screenshot({ path: join(shots, "ui-restore-done.png") });
  assert.equal(await page.getByTestId("undo").count(), 1);
});

await check("restore from file shows what the file contains, and a second warning for an unauthenticated one", async (page) => {
  await page.goto(base);
  await page.getByTestId("restore-file").click();
  await page.getByTestId("preview-tables").waitFor();
  assert.match(await page.getByRole("dialog").innerText(), /old system/);
  const warning = page.getByTestId("dev-key-warning");
  assert.match(await warning.innerText(), /not authenticated.*anyone could have written/s);
  const confirm = page.getByTestId("restore-confirm");
  await page.getByTestId("confirm-name").fill("school_erp");
  assert.equal(await confirm.isDisabled(), true, "the name alone does not enable it");
  await page.getByTestId("trust-dev-key").check();
  assert.equal(await confirm.isDisabled(), false);
  await page.screenshot({ path: join(shots, "ui-restore-untrusted.png") });
  await page.getByTestId("trust-dev-key").uncheck();
  assert.equal(await confirm.isDisabled(), true, "nor without the box");
  await page.keyboard.press("Escape");
  assert.equal(await page.getByRole("dialog").count(), 0);
  // Ticked and confirmed: restored (the mock refuses it without the box, as the app does).
  await page.getByTestId("restore-file").click();
  await page.getByTestId("confirm-name").fill("school_erp");
  await page.getByTestId("trust-dev-key").check();
  await confirm.click();
  await page.getByTestId("restore-result").waitFor();
});

await check("settings: the TLS modes say what they protect against; a CA file from the dialog; another server's password", async (page) => {
  await page.goto(base);
  await page.getByTestId("nav-settings").click();
  await page.getByTestId("db-tls").waitFor();
  assert.match(await page.getByTestId("db-tls-help").innerText(), /does not check who answers/);
  assert.equal(await page.getByTestId("db-ca").isVisible(), false, "no CA file for prefer");
  await page.getByTestId("db-tls").selectOption("verify-full");
  assert.match(await page.getByTestId("db-tls-help").innerText(), /safe choice/);
  await page.getByTestId("db-ca-pick").click();
  await page.getByText("/home/it/Documents/school-ca.pem").waitFor();
  await page.screenshot({ path: join(shots, "ui-settings-tls.png") });
  await page.getByTestId("db-host").fill("db2.school.lan");
  await page.getByTestId("test-connection").first().click();
  await page.getByText("Type the password for this server").waitFor();
  await page.getByTestId("db-password").fill("secret");
  await page.getByTestId("test-connection").first().click();
  await page.getByText("Connected to").waitFor();
});

await check("settings: the backup folder is not typed but chosen in the folder dialog, then saved", async (page) => {
  await page.goto(base);
  await page.getByTestId("nav-settings").click();
  const dir = page.getByTestId("backup-dir");
  await dir.waitFor();
  assert.equal(await dir.getAttribute("readonly"), "", "the folder is read-only");
  assert.equal(await dir.inputValue(), "/home/it/.local/share/schoolvault/backups");
  await page.getByTestId("backup-dir-pick").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=backup-dir]")?.value === "/media/nas/schoolvault");
  await page.getByTestId("save-settings").click();
  await page.getByText("Settings saved.").waitFor();
  await page.getByTestId("nav-backups").click();
  await page.getByTestId("nav-settings").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=backup-dir]")?.value === "/media/nas/schoolvault");
});

await check("settings: the list of backups rebuilt from the folder, after a warning, with progress and what was not listed", async (page) => {
  await page.goto(base + "?slow");
  await page.getByTestId("nav-settings").click();
  await page.getByTestId("rebuild-list").click();
  const dialog = page.getByRole("dialog");
  assert.match(await dialog.innerText(), /not changed/);
  await dialog.getByRole("button", { name: "Rebuild the list" }).click();
  await page.getByTestId("progress").waitFor();
  assert.equal(await page.getByTestId("rebuild-list").isDisabled(), true, "one rebuild at a time");
  const result = page.getByTestId("rebuild-result");
  await page.waitForFunction(() => /found in the folder and listed/.test(document.querySelector("[data-testid=rebuild-result]")?.textContent ?? ""));
  assert.match(await result.innerText(), /notes\.svb: not a SchoolVault backup/);
  assert.equal(await page.getByTestId("progress").count(), 0, "the progress goes when it ends");
});

await check("offsite copies: add an S3 destination (a wrong secret explained first), then each backup's copies, Sync now", async (page) => {
  await page.goto(base);
  // The mock's backups: NAS done, Cloud waiting on the newest.
  await page.getByTestId("backup-row").first().waitFor();
  const copy = (i, name) => page.getByTestId("backup-row").nth(i).getByTestId(`copy-${name}`);
  assert.equal(await copy(0, "NAS").getAttribute("data-state"), "done");
  assert.equal(await copy(0, "NAS").innerText(), "NAS ✓");
  assert.equal(await copy(0, "Cloud").getAttribute("data-state"), "pending");
  // Two hours ago: today's time, or (run just after midnight) yesterday's date and time.
  assert.match(await copy(0, "Cloud").innerText(), /^Cloud: pending since (\d\d [A-Z][a-z]{2}, )?\d\d:\d\d$/);
  assert.match(await copy(0, "Cloud").getAttribute("title"), /cannot be reached/);
  assert.equal(await copy(1, "Cloud").getAttribute("data-state"), "done");
  assert.equal(await page.getByTestId("backup-row").first().getByTestId("local-file").innerText(), "Local ✓");

  await page.getByTestId("nav-settings").click();
  const offsite = page.getByTestId("offsite");
  await offsite.getByTestId("destination-row").first().waitFor();
  assert.equal(await offsite.getByTestId("destination-row").count(), 2);
  const form = page.getByTestId("add-destination");
  await form.getByTestId("dest-name").fill("wasabi");
  await form.getByTestId("dest-kind").selectOption("s3");
  await form.getByTestId("dest-bucket").fill("school-backups");
  await form.getByTestId("dest-prefix").fill("erp");
  await form.getByTestId("dest-endpoint").fill("https://s3.eu-central-1.wasabisys.com");
  await form.getByTestId("dest-region").fill("eu-central-1");
  await form.getByTestId("dest-access-key").fill("WASABI7EXAMPLE");
  await form.getByTestId("dest-secret-key").fill("wrong");
  assert.equal(await form.getByTestId("dest-url").innerText(), "s3://school-backups/erp?endpoint=https://s3.eu-central-1.wasabisys.com&region=eu-central-1&path_style=true");
  await form.getByRole("button", { name: "Test and save" }).click();
  await form.getByText("The offsite destination refused SchoolVault").waitFor();
  assert.match(await form.getByTestId("dest-result").innerText(), /refused the access key/);
  assert.equal(await form.getByTestId("dest-name").inputValue(), "wasabi", "what was typed stays");
  assert.equal(await form.getByTestId("dest-secret-key").inputValue(), "wrong");
  assert.equal(await offsite.getByTestId("destination-row").count(), 2);
  await page.screenshot({ path: join(shots, "ui-offsite-refused.png"), fullPage: true });
  await form.getByTestId("dest-secret-key").fill("right-secret");
  await form.getByRole("button", { name: "Test and save" }).click();
  const added = page.locator('[data-testid=destination-row][data-name="wasabi"]');
  await added.waitFor();
  assert.match(await added.innerText(), /S3-compatible bucket/);
  assert.match(await added.innerText(), /s3:\/\/school-backups\/erp\?endpoint=/);
  assert.equal(await added.getByTestId("dest-counts").innerText(), "0 done · 4 waiting · 0 failed");
  assert.equal(await form.getByTestId("dest-secret-key").inputValue(), "", "the secret is not kept in the page");
  assert.equal(await page.content().then((html) => html.includes("right-secret")), false);
  await added.getByTestId("dest-test").click();
  await added.getByText("Works").waitFor();
  await page.locator('[data-testid=destination-row][data-name="Cloud"]').getByTestId("dest-test").click();
  await page.locator('[data-testid=destination-row][data-name="Cloud"]').getByText("The offsite destination cannot be reached").waitFor();
  await page.screenshot({ path: join(shots, "ui-offsite.png"), fullPage: true });

  // The new destination waits for every backup until the next sync.
  await page.getByTestId("nav-backups").click();
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await copy(0, "wasabi").getAttribute("data-state"), "pending");
  assert.equal(await copy(3, "wasabi").getAttribute("data-state"), "pending");
  await page.screenshot({ path: join(shots, "ui-backups-copies.png") });

  await page.getByTestId("nav-settings").click();
  await page.getByTestId("sync-now").click();
  await page.getByTestId("sync-wasabi").waitFor();
  assert.equal(await page.getByTestId("sync-wasabi").innerText(), "wasabi: 4 backups copied.");
  assert.match(await page.getByTestId("sync-Cloud").innerText(), /^Cloud: could not be used\. .*cannot be reached/);
  assert.equal(await page.locator('[data-testid=destination-row][data-name="wasabi"]').getByTestId("dest-counts").innerText(), "4 done · 0 waiting · 0 failed");
  await page.getByTestId("nav-backups").click();
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await copy(0, "wasabi").getAttribute("data-state"), "done");
  assert.equal(await copy(0, "Cloud").getAttribute("data-state"), "pending");

  // Removed (asked first): the copies there are no longer listed.
  await page.getByTestId("nav-settings").click();
  await page.locator('[data-testid=destination-row][data-name="wasabi"]').getByTestId("dest-remove").click();
  assert.match(await page.getByRole("dialog").innerText(), /already there are kept/);
  await page.getByRole("button", { name: "Remove destination" }).click();
  await page.getByText("wasabi was removed; the files there are kept.").waitFor();
  assert.equal(await offsite.getByTestId("destination-row").count(), 2);
});

await check("key import (from a file, never typed) refuses the old system's public development key, in words", async (page) => {
  await page.goto(base);
  await page.getByTestId("nav-settings").click();
  // No field to type a key into: it comes from a file chosen in a native dialog.
  assert.equal(await page.locator("input[type=password][placeholder*=hexadecimal]").count(), 0);
  await page.getByTestId("key-import-file").click();
  const error = page.getByTestId("error");
  await error.waitFor();
  assert.match(await error.innerText(), /public development key.*forged by anyone/s);
});

await check("delete asks first, naming the backup", async (page) => {
  await page.goto(base);
  await page.getByTestId("delete").first().click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /will be deleted/);
  await page.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await page.getByTestId("backup-row").count(), 4);
  await page.getByTestId("delete").first().click();
  await page.getByRole("button", { name: "Delete backup" }).click();
  await page.getByText("The backup was deleted.").waitFor();
  assert.equal(await page.getByTestId("backup-row").count(), 3);
});

await check("settings: school days at 02:00 without cron; cron preview validates; activity; failure banner until dismissed", async (page) => {
  await page.goto(base + "?failure");
  await page.getByTestId("failure-banner").waitFor();
  assert.match(await page.getByTestId("email-error").innerText(), /not emailed: .*could not be sent/);
  await page.getByTestId("nav-settings").click();
  assert.equal(await page.getByTestId("watchdog").inputValue(), "10");
  await page.getByTestId("next-runs").locator("li").first().waitFor();
  assert.equal(await page.getByTestId("next-runs").locator("li").count(), 5);
  await page.screenshot({ path: join(shots, "ui-settings.png"), fullPage: true });
  // School days only, without cron: the setting follows, and the next runs with it.
  assert.equal(await page.getByTestId("schedule-daily").isChecked(), true);
  await page.getByTestId("schedule-day-6").uncheck();
  await page.getByTestId("schedule-day-0").uncheck();
  assert.equal(await page.getByTestId("cron").inputValue(), "0 2 * * 1-5");
  await page.getByTestId("next-runs").locator("li").first().waitFor();
  await page.getByTestId("schedule-time").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shots, "ui-settings-schedule.png") });
  await page.getByTestId("cron").fill("0 2 *");
  assert.equal(await page.getByTestId("schedule-advanced").isChecked(), true);
  await page.getByText("not a valid cron expression").waitFor();
  await page.getByTestId("nav-activity").click();
  await page.getByTestId("run-row").first().waitFor();
  await page.screenshot({ path: join(shots, "ui-activity.png") });
  await page.getByTestId("failure-banner").getByRole("button", { name: "Dismiss" }).click();
  await page.waitForFunction(() => !document.querySelector("[data-testid=failure-banner]"));
});

await check("offsite copies behind for the stale time: a banner that says so and leads to the settings", async (page) => {
  await page.goto(base + "?behind");
  const banner = page.getByTestId("offsite-banner");
  await banner.waitFor();
  assert.match(await banner.innerText(), /only on this computer/);
  assert.match(await banner.innerText(), /No copy to Cloud since .*cannot be reached/);
  await page.screenshot({ path: join(shots, "ui-offsite-behind.png") });
  await banner.getByRole("button", { name: "Open settings" }).click();
  await page.getByTestId("watchdog").waitFor();
});

await check("a running restore: progress (phase, table, rows, ETA), Esc and a click outside do not close it; then the result", async (page) => {
  await page.goto(base + "?slow");
  await page.getByTestId("restore").first().click();
  // A large backup is read through before the warning: the modal shows that reading's progress.
  await page.getByRole("dialog").getByText("Reading the backup", { exact: true }).waitFor();
  await page.getByTestId("confirm-name").fill("school_erp");
  await page.getByTestId("restore-confirm").click();
  const detail = page.getByRole("dialog").locator(".progress-detail");
  await page.waitForFunction(() => /rows/.test(document.querySelector("[role=dialog] .progress-detail")?.textContent ?? ""));
  assert.match(await page.getByRole("dialog").getByTestId("progress-phase").innerText(), /public\.table_/);
  assert.match(await detail.innerText(), /of 175 tables · [\d,]+ rows/);
  await page.keyboard.press("Escape");
  await page.mouse.click(5, 5);
  assert.equal(await page.getByRole("dialog").count(), 1, "the modal stays open while the restore runs");
  await page.waitForFunction(() => /about \d+ s left/.test(document.querySelector("[role=dialog] .progress-detail")?.textContent ?? ""));
  await page.screenshot({ path: join(shots, "ui-restore-progress.png") });
  await page.getByTestId("restore-result").waitFor({ timeout: 15000 });
  assert.equal(await page.getByTestId("undo").count(), 1);
});

await check("the school is still connected: the modal lists the sessions, a restore without ending them stops, ending them restores", async (page) => {
  await page.goto(base + "?sessions");
  await page.getByTestId("restore").first().click();
  const sessions = page.getByTestId("sessions");
  await sessions.waitFor();
  assert.match(await sessions.innerText(), /2 other sessions are connected to school_erp/);
  assert.match(await sessions.innerText(), /pid 4242 erp-web \(user erp from 10\.0\.0\.7, idle in transaction since/);
  assert.match(await sessions.innerText(), /waits up to 60 s/);
  await page.getByTestId("confirm-name").fill("school_erp");
  assert.equal(await page.getByTestId("restore-confirm").isDisabled(), true, "waits until the users were told");
  await page.getByTestId("users-told").check();
  await page.screenshot({ path: join(shots, "ui-restore-sessions.png") });
  await page.getByTestId("restore-confirm").click();
  const error = page.getByRole("dialog").getByTestId("error");
  await error.waitFor();
  assert.match(await error.innerText(), /The database is in use/);
  assert.match(await error.innerText(), /nothing was changed; holding them: pid 4242 erp-web/);
  await page.keyboard.press("Escape");
  await page.getByTestId("restore").first().click();
  await page.getByTestId("end-sessions").check();
  await page.getByTestId("users-told").check();
  await page.getByTestId("confirm-name").fill("school_erp");
  await page.getByTestId("restore-confirm").click();
  await page.getByTestId("restore-result").waitFor();
  assert.match(await page.getByTestId("restore-result").innerText(), /2 other sessions on school_erp were ended/);
});

await check("key rotation: a year-old key is said; the new key needs its recovery copy first; the list shows which key each backup uses", async (page) => {
  await page.goto(base + "?oldkey");
  const banner = page.getByTestId("rotation-banner");
  await banner.waitFor();
  assert.match(await banner.innerText(), /over a year old/);
  // Before: only the backup made before an earlier rotation shows its key.
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await page.getByTestId("older-key").count(), 1);
  assert.match(await page.getByTestId("older-key").innerText(), /earlier key 3f9a0c1d2e4b5a69/);
  await banner.getByRole("button", { name: "Rotate key…" }).click();
  await page.getByTestId("key-rotate").click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /until it is saved, nothing changes/);
  await page.screenshot({ path: join(shots, "ui-key-rotate.png") });
  await dialog.getByRole("button", { name: "Save the new key's recovery copy…" }).click();
  await page.getByText("New key 7c6d5e4f3a2b1c0d is current").waitFor();
  await page.waitForFunction(() => !document.querySelector("[data-testid=rotation-banner]"));
  await page.getByTestId("nav-backups").click();
  await page.getByTestId("backup-row").first().waitFor();
  assert.equal(await page.getByTestId("older-key").count(), 4, "every earlier backup names its key");
  await page.getByTestId("backup-now").click();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=backup-row]").length === 5);
  assert.equal(await page.locator("[data-testid=backup-row]").first().getByTestId("older-key").count(), 0, "the new backup uses the new key");
});

await check("the yearly rotation reminder can be dismissed", async (page) => {
  await page.goto(base + "?oldkey");
  await page.getByTestId("rotation-dismiss").click();
  await page.waitForFunction(() => !document.querySelector("[data-testid=rotation-banner]"));
});

await check("events, not polling: a failure is shown as soon as the app says so, and a verify result just shown survives the redraw", async (page) => {
  await page.goto(base + "?failurelater");
  await page.getByTestId("verify").nth(1).click();
  const note = page.locator("[data-testid=backup-row] .note.ok");
  await note.first().waitFor();
  await page.evaluate(() => {
    window.__head = document.querySelector(".view-head");
    window.__row = document.querySelector("[data-testid=backup-row]");
  });
  const said = await note.first().innerText();
  // Within a few seconds of the event (the old poll looked every 15 s).
  await page.getByTestId("failure-banner").waitFor({ timeout: 5000 });
  assert.match(await page.getByTestId("failure-banner").innerText(), /Cannot reach the database server/);
  await page.waitForTimeout(300);
  assert.equal(await note.first().innerText(), said, "the verify result is still there after the redraw");
  // Nothing else was drawn again: the same screen, the same rows (the list did not change).
  assert.equal(await page.evaluate(() => window.__head.isConnected && window.__row.isConnected), true, "the screen and its rows were not redrawn");
});

await check("a scheduled backup that ends while the window is open: its row appears, the rest of the screen stays", async (page) => {
  await page.goto(base + "?backuplater");
  await page.getByTestId("backup-row").first().waitFor();
  await page.evaluate(() => {
    window.__head = document.querySelector(".view-head");
    window.__button = document.querySelector("[data-testid=backup-now]");
  });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=backup-row]").length === 5, null, { timeout: 5000 });
  assert.equal(await page.locator("[data-testid=backup-row]").first().getAttribute("data-kind"), "scheduled");
  assert.equal(await page.evaluate(() => window.__head.isConnected && window.__button.isConnected), true, "only the list was redrawn");
});

await check("a quick switch between screens shows the last one, not the slower one asked for before", async (page) => {
  await page.goto(base + "?slow");
  await page.getByTestId("nav-settings").click();
  await page.getByTestId("cron").waitFor();
  // Backups takes a second to load; Activity, asked for just after, is ready first.
  await page.getByTestId("nav-backups").click();
  await page.getByTestId("nav-activity").click();
  await page.getByTestId("run-row").first().waitFor();
  await page.waitForTimeout(1500);
  assert.equal(await page.getByTestId("run-row").count() > 0, true, "Activity is still shown");
  assert.equal(await page.getByTestId("backup-now").count(), 0, "the slower Backups did not replace it");
  assert.equal(await page.locator(".nav-item.active").innerText(), "Activity");
});

await check("an owed recovery copy: the key step resumed, a banner on every screen until the copy is saved", async (page) => {
  await page.goto(base + "?owed");
  await page.getByTestId("key-save-recovery").waitFor();
  await page.getByTestId("recovery-banner").waitFor();
  assert.equal(await page.getByTestId("recovery-banner-go").count(), 0, "no button to the step already shown");
  await page.getByTestId("nav-emergency").click();
  await page.getByTestId("emergency").waitFor();
  assert.match(await page.getByTestId("recovery-banner").innerText(), /recovery copy has not been saved/);
  await page.screenshot({ path: join(shots, "ui-recovery-owed.png") });
  await page.getByTestId("recovery-banner-go").click();
  await page.getByTestId("key-save-recovery").click();
  await page.getByText("Saved to").waitFor();
  await page.getByTestId("setup-done").click();
  await page.getByRole("heading", { name: "Backups" }).waitFor();
  assert.equal(await page.getByTestId("recovery-banner").count(), 0, "said until the copy is saved, not after");
});

await check("disaster recovery: reachable from the first run and from every screen, the steps with their buttons", async (page) => {
  await page.goto(base + "?setup");
  await page.getByTestId("nav-emergency").click();
  await page.getByTestId("emergency").waitFor();
  assert.match(await page.getByTestId("emergency-step-2").innerText(), /No key on this computer yet/);
  await page.getByTestId("emergency-key").click();
  await page.getByTestId("test-connection").waitFor();
  await page.goto(base);
  await page.getByTestId("nav-emergency").click();
  assert.match(await page.getByTestId("emergency-step-1").innerText(), /Connected to/);
  await page.screenshot({ path: join(shots, "ui-emergency.png"), fullPage: true });
  await page.getByTestId("emergency-restore").click();
  await page.getByTestId("backup-now").waitFor();
});

await browser.close();
server.close();
console.log(results.join("\n"));
console.log(`browser tests: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
