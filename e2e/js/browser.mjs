// Drives Debian's Chromium (headless, real WebGPU on SwiftShader) through the
// scout page a titan serves, for e2e/tests/browser.rs. Prints one JSON object
// on stdout with what the page showed; saves a screenshot.
//
//   node browser.mjs --url http://127.0.0.1:PORT/ --out DIR
//        [--prompt TEXT] [--count N] [--reload] [--no-webgpu] [--scout] [--shot FILE.png]
//        [--chat TEXT --max-tokens N [--drop-mid-answer]] [--lose-gpu]
//        [--chromium-arg SWITCH]...
//
// With --lose-gpu the page's WebGPU devices are destroyed (GPUDevice.destroy(), as
// a driver reset or a lost GPU ends them) after the first draft, and the same draft
// runs again: the report has it, and the engine line after it.
// With --chat the message is sent from the chat panel at temperature 0 once the
// page is scouting; the report has the streamed answer, and, after a reload,
// the conversation the page kept. With --drop-mid-answer the page asks the titan
// (DELETE /v1/system/peers/<its PeerId>) to close its libp2p connection once the
// answer has begun and the titan has verified drafts of the page's for it; the
// report then has the answer as it stood, the mesh states the page went through
// until it was scouting again (at most a minute), and the time from sending the
// chat to that.
//
// With --scout the page is left to draft for the titan: once its mesh panel
// says it is scouting, one JSON line {"event":"scouting",...} is printed; the
// driver then waits for its stdin to close before it reads the counters,
// takes the screenshot and prints the report.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const flag = (name) => args.includes(`--${name}`);
const url = opt("url");
const out = opt("out", tmpdir());
const prompt = opt("prompt", "The capital of France is");
const count = opt("count", "16");
const timeout = Number(opt("timeout-ms", "400000"));

const chromiumArgs = [
  "--no-sandbox",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
if (!flag("no-webgpu")) chromiumArgs.push("--enable-unsafe-webgpu");
// Extra Chromium switches (repeatable): --chromium-arg --force-fieldtrials=...
args.forEach((a, i) => {
  if (a === "--chromium-arg" && args[i + 1]) chromiumArgs.push(args[i + 1]);
});

const browser = await chromium.launch({
  executablePath: opt("chromium", "/usr/bin/chromium"),
  headless: true,
  args: chromiumArgs,
});
const result = { console: [] };
const driverStart = Date.now();
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  // Each line carries the seconds since the driver started (the browser's launch), to read timelines.
  const at = () => ((Date.now() - driverStart) / 1000).toFixed(1);
  page.on("console", (m) => result.console.push(`${at()}s ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => result.console.push(`${at()}s pageerror: ${e.message}`));

  const settled = (id, states) =>
    page.waitForFunction(
      ([id, states]) => {
        const el = document.getElementById(id);
        return el && states.includes(el.dataset.state) ? el.dataset.state : null;
      },
      [id, states],
      { timeout, polling: 250 },
    );
  const read = (id) =>
    page.evaluate((id) => {
      const el = document.getElementById(id);
      return el ? { state: el.dataset.state, text: el.textContent, tokens: el.dataset.tokens } : null;
    }, id);

  // Polls `predicate(arg)` in the page until it resolves truthy. (waitForFunction
  // takes the promise an async predicate returns as truthy at once.)
  const until = async (predicate, arg, every = 100) => {
    const end = Date.now() + timeout;
    while (!(await page.evaluate(predicate, arg))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${predicate}`);
      await new Promise((r) => setTimeout(r, every));
    }
  };

  if (flag("lose-gpu")) {
    // Keep every device the page asks for, so the driver can destroy them.
    await page.addInitScript(() => {
      window.__shardDevices = [];
      if (typeof GPUAdapter === "undefined") return;
      const requestDevice = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await requestDevice.apply(this, args);
        window.__shardDevices.push(device);
        return device;
      };
    });
  }

  const started = Date.now();
  await page.goto(url);
  await settled("engine-status", ["ready", "failed"]);
  result.engine_ready_ms = Date.now() - started;
  result.model = await read("model-status");
  result.engine = await read("engine-status");
  const chatLog = () =>
    page.evaluate(() => [...document.querySelectorAll("#chat-log .msg")].map((m) => ({ role: m.dataset.role, content: m.textContent })));
  const peerId = () =>
    page.evaluate(() =>
      document.querySelector("#scout-counts + .muted")?.textContent.replace("this scout is ", "").trim());
  if (result.engine.state === "ready" && opt("chat")) {
    await settled("mesh-status", ["scouting", "failed"]);
    result.mesh = await read("mesh-status");
    // Until the page's first pull arrives the titan would decode the chat alone:
    // wait for the titan to count one.
    const me = await peerId();
    await until(async (me) => {
      const peers = await (await fetch("/v1/system/peers")).json();
      return peers.peers.some((p) => p.peer_id === me && p.role === "scout" && p.pulls > 0);
    }, me, 250);
    await page.fill("#chat-temperature", "0");
    await page.fill("#chat-max-tokens", opt("max-tokens", "16"));
    await page.fill("#chat-input", opt("chat"));
    const sent = Date.now();
    await page.click("#chat-send");
    // The first piece of the answer, then the end of it.
    await page.waitForFunction(() => {
      const m = [...document.querySelectorAll("#chat-log .msg")].pop();
      return m && m.dataset.role === "assistant" && m.textContent.length > 0;
    }, null, { timeout, polling: 100 });
    result.first_token_ms = Date.now() - sent;
    let watching = null;
    if (flag("drop-mid-answer")) {
      // Once the titan has verified drafts of the page's for this answer.
      await until(async (me) => {
        const peers = await (await fetch("/v1/system/peers")).json();
        return peers.peers.some((p) => p.peer_id === me && p.drafted > 0);
      }, me, 20);
      result.answer_at_drop = await page.evaluate(() => [...document.querySelectorAll("#chat-log .msg")].pop().textContent);
      result.drop = await page.evaluate(async (me) => {
        const r = await fetch(`/v1/system/peers/${me}`, { method: "DELETE" });
        return { status: r.status, body: await r.json() };
      }, me);
      // The mesh states the page goes through until it is scouting again.
      result.mesh_states = [];
      watching = (async () => {
        const until = Date.now() + 60000;
        while (Date.now() < until) {
          const m = await read("mesh-status");
          if (m && result.mesh_states.at(-1) !== m.state) result.mesh_states.push(m.state);
          if (result.mesh_states.length > 1 && m?.state === "scouting") break;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
    }
    await settled("chat-status", ["done", "failed", "stopped"]);
    result.chat_ms = Date.now() - sent;
    if (watching) {
      await watching;
      result.mesh_after_drop = await read("mesh-status");
      result.reconnected_ms = Date.now() - sent;
    }
    result.chat_status = await read("chat-status");
    result.chat = await chatLog();
    result.counts = await page.evaluate(() => ({ ...document.getElementById("scout-counts").dataset }));
    result.scout_peer_id = me;
    await page.screenshot({ path: join(out, opt("shot", "chat.png")), fullPage: true });
    await page.reload();
    await page.waitForSelector("#chat-log .msg", { timeout: 30000 });
    result.chat_after_reload = await chatLog();
    // The page keeps its libp2p identity: the same scout after the reload.
    await page.waitForFunction(() =>
      (document.querySelector("#scout-counts + .muted")?.textContent ?? "").includes("12D3"),
      null, { timeout, polling: 250 });
    result.scout_peer_id_after_reload = await peerId();
  } else if (result.engine.state === "ready" && flag("scout")) {
    await settled("mesh-status", ["scouting", "failed"]);
    result.mesh = await read("mesh-status");
    result.scout_peer_id = await peerId();
    console.log(JSON.stringify({ event: "scouting", mesh: result.mesh, peer_id: result.scout_peer_id }));
    await new Promise((resolve) => {
      process.stdin.on("end", resolve);
      process.stdin.on("close", resolve);
      process.stdin.resume();
    });
    result.mesh_after = await read("mesh-status");
    result.counts = await page.evaluate(() => ({ ...document.getElementById("scout-counts").dataset }));
  } else if (result.engine.state === "ready") {
    await page.fill("#draft-prompt", prompt);
    await page.fill("#draft-count", count);
    await page.click("#draft-run");
    await settled("draft-output", ["done", "failed"]);
    result.draft = await read("draft-output");
    result.speed = (await read("draft-speed")).text;
    if (flag("lose-gpu")) {
      result.devices_destroyed = await page.evaluate(() => {
        for (const d of window.__shardDevices) d.destroy();
        return window.__shardDevices.length;
      });
      // Marked stale, so the wait below sees the new draft's state, not the old one.
      await page.evaluate(() => { document.getElementById("draft-output").dataset.state = "stale"; });
      await page.click("#draft-run");
      await settled("draft-output", ["done", "failed"]);
      result.draft_after_loss = await read("draft-output");
      result.engine_after_loss = await read("engine-status");
    }
  }
  if (!opt("chat")) await page.screenshot({ path: join(out, opt("shot", "scout-page.png")), fullPage: true });
  if (flag("reload")) {
    const again = Date.now();
    await page.reload();
    await settled("engine-status", ["ready", "failed"]);
    result.reload_engine_ready_ms = Date.now() - again;
    result.reload_model = await read("model-status");
  }
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
