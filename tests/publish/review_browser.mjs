// Drives Debian's headless Chromium (playwright-core, never a downloaded browser) through the review page
// opened from disk, and prints what a moderator would see as one JSON object on stdout. The pytest test
// (test_review_browser.py) makes the assertions. Usage: node review_browser.mjs PLAN.json
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const profile = mkdtempSync(join(tmpdir(), "review-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: plan.chromium,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1400, height: 1000 },
  timeout: 60_000,
});
const out = { requests: [], consoleErrors: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  page.on("request", (r) => out.requests.push(r.url()));
  page.on("console", (m) => m.type() === "error" && out.consoleErrors.push(m.text()));
  page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
  await page.goto(plan.url);
  await page.waitForSelector("body[data-ready=true]");

  const view = () => page.evaluate(() => ({
    pageLabel: document.getElementById("page-label").textContent,
    shown: document.getElementById("shown").textContent,
    newerDisabled: document.getElementById("newer").disabled,
    olderDisabled: document.getElementById("older").disabled,
    cards: [...document.querySelectorAll("article.card")].map((a) => ({
      id: a.dataset.id,
      timestamp: a.dataset.timestamp,
      confidence: Number(a.dataset.confidence),
      heading: a.querySelector("h2").textContent,
      img: a.querySelector("img.spectrogram").getAttribute("src"),
      audio: a.querySelector("audio").getAttribute("src"),
      json: a.querySelector("a.json").getAttribute("href"),
      wav: a.querySelector("a.wav").getAttribute("href"),
      plays: [...a.querySelectorAll("button.play")].map((b) => Number(b.dataset.start)),
      curvePoints: (a.querySelector("svg polyline.scores")?.getAttribute("points") ?? "").split(" ").filter(Boolean).length,
      thresholds: [...a.querySelectorAll("svg line.threshold")].map((l) => ({
        kind: l.classList.contains("local") ? "local" : "global", value: Number(l.dataset.value) })),
      positiveWindows: a.querySelectorAll("svg rect.positive-window").length,
    })),
  }));

  out.header = await page.evaluate(() => ({
    title: document.getElementById("title").textContent,
    stream: document.getElementById("stream").textContent,
    model: document.getElementById("model").textContent,
    span: document.getElementById("span").textContent,
    clips: document.getElementById("clips").textContent,
    positives: document.getElementById("positives").textContent,
    detections: document.getElementById("detections").textContent,
    gapSeconds: document.getElementById("gap-seconds").textContent,
    gaps: [...document.querySelectorAll("#gaps tbody tr")].map((tr) =>
      [tr.dataset.reason, ...[...tr.querySelectorAll("td")].slice(1).map((td) => td.textContent)]),
  }));
  out.first = await view();
  if (plan.screenshot) await page.screenshot({ path: plan.screenshot, fullPage: true });

  out.older = [];
  while (!(await page.locator("#older").isDisabled())) {
    await page.click("#older");
    out.older.push(await view());
  }
  if (out.older.length) {
    await page.click("#newer");
    out.backOne = await view();
  }

  await page.fill("#min-confidence", String(plan.minConfidence));
  out.minConfidence = await view();
  await page.click("#clear-filters");
  await page.fill("#from", plan.fromDate);
  await page.fill("#to", plan.toDate);
  out.dateRange = await view();
  await page.click("#clear-filters");
  out.reset = await view();

  // Play the first card's last positive window: the audio must start there.
  const card = page.locator("article.card").first();
  const button = card.locator("button.play").last();
  const start = Number(await button.getAttribute("data-start"));
  await button.click();
  await page.waitForFunction(
    (s) => { const a = document.querySelector("article.card audio"); return a.readyState >= 1 && a.currentTime >= s - 0.01; },
    start,
  );
  out.play = await card.locator("audio").evaluate((a) => ({ currentTime: a.currentTime, duration: a.duration, paused: a.paused }));
  out.play.start = start;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");
