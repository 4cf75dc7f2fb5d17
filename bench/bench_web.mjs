// bench_web.mjs - the web page's figures, as a visitor meets them: a
// perpsim of its own with the living market on, the page opened in
// Debian's Chromium (headless, through playwright-core from tests/e2e).
//
//   node bench/bench_web.mjs [--bin build/app/perpsim] [--loads N] [--seconds S]
//                            [--speed N] [--small]
//
// Prints:
//   - the bundle: every script and style the page loads, raw and gzipped
//     (gzip -9, as a server would send them); issue 18's budget is 300 KB
//     gzipped for the JavaScript;
//   - first paint: N fresh loads (a new browser context each, no cache),
//     first-contentful-paint from the browser's own Paint Timing, and the
//     time until the book shows 10 levels a side from the feed (the page
//     useful); median, p95 and worst; the budget is 1 s on loopback;
//   - smoothness over S seconds of the market (its clock at --speed N x
//     real time, so N times the traffic): feed messages and draws a
//     second (the page draws book, tape, orders and account at most once
//     per animation frame), the frame intervals' median, p99 and worst, and
//     long tasks (over 50 ms, the browser's Long Tasks API).
// --small: 3 loads, 3 s (the test command runs it so, to show it works;
// its figures are not a measurement). Figures go in bench/RESULTS.md.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ownServer } from '../tests/e2e/lib.mjs';

const here = import.meta.dirname;
const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
};
const small = args.includes('--small');
const BIN = resolve(opt('--bin', process.env.PERPSIM_BIN || join(here, '../build/app/perpsim')));
const WEB = resolve(process.env.PERPSIM_WEB_DIR || join(here, '../web/dist'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LOADS = Number(opt('--loads', small ? 3 : 20));
const SECONDS = Number(opt('--seconds', small ? 3 : 20));
const SPEED = Number(opt('--speed', 1));
const die = (m) => {
    console.error(`bench_web: ${m}`);
    process.exit(2);
};
if (!existsSync(BIN)) die(`no perpsim at ${BIN} (--bin)`);
if (!existsSync(join(WEB, 'index.html'))) die(`no built page in ${WEB}: tools/build-web.sh builds it`);
if (!existsSync(CHROMIUM)) die(`no Chromium at ${CHROMIUM}: tools/install-deps.sh installs it`);
let chromium;
try {
    ({ chromium } = createRequire(join(here, '../tests/e2e/package.json'))('playwright-core'));
} catch {
    die('playwright-core is missing: (cd tests/e2e && npm ci) installs it');
}

// ---------------------------------------------------------------- the server
const srv = await ownServer(BIN, ['--quiet', '--rate-limit', 'off', '--web-dir', WEB, '--seed', '7',
    ...(SPEED !== 1 ? ['--clock', `accelerated:${SPEED}`] : [])]);
const BASE = srv.base;
const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
});
async function done(code) {
    await browser.close().catch(() => {});
    await srv.stop();
    process.exit(code);
}
const q = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const ms = (v) => `${v.toFixed(0)} ms`;

try {
    // ------------------------------------------------------------ the bundle
    const html = await (await fetch(BASE + '/')).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
    if (!assets.length) throw new Error('no assets named in /');
    let jsGz = 0;
    console.log(`bundle (${BASE}/):`);
    for (const a of assets) {
        const body = Buffer.from(await (await fetch(BASE + a)).arrayBuffer());
        const gz = gzipSync(body, { level: 9 }).length;
        if (a.endsWith('.js')) jsGz += gz;
        console.log(`  ${a}: ${(body.length / 1024).toFixed(1)} KB, ${(gz / 1024).toFixed(1)} KB gzipped`);
    }
    console.log(`  JavaScript gzipped: ${(jsGz / 1024).toFixed(1)} KB (budget 300 KB: ${jsGz <= 300 * 1024 ? 'within' : 'OVER'})`);

    // ------------------------------------------------------------ first paint
    // Let the market fill the book first, as a visitor arriving finds it.
    await new Promise((r) => setTimeout(r, 1500));
    const fcp = [];
    const useful = [];
    for (let k = 0; k < LOADS; k++) {
        const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
        const page = await ctx.newPage();
        await page.goto(BASE + '/', { waitUntil: 'commit' });
        await page.waitForFunction(() => document.querySelectorAll('#book tbody tr.ask').length >= 10 &&
            document.querySelectorAll('#book tbody tr.bid').length >= 10, null, { timeout: 20000, polling: 'raf' });
        const t = await page.evaluate(() => ({
            fcp: performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint')?.startTime,
            now: performance.now(),
        }));
        if (t.fcp == null) throw new Error('no first-contentful-paint entry');
        fcp.push(t.fcp);
        useful.push(t.now);
        await ctx.close();
    }
    console.log(`first paint, ${LOADS} fresh loads: first-contentful-paint median ${ms(q(fcp, 0.5))}, p95 ${ms(q(fcp, 0.95))}, ` +
        `worst ${ms(Math.max(...fcp))} (budget 1 s: ${Math.max(...fcp) <= 1000 ? 'within' : 'OVER'}); ` +
        `book 10 levels a side: median ${ms(q(useful, 0.5))}, worst ${ms(Math.max(...useful))}`);

    // ------------------------------------------------------------ smoothness
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(BASE + '/');
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'connected', null, { timeout: 20000 });
    const s = await page.evaluate((seconds) => new Promise((ok) => {
        const { frames } = window.perpsim;
        const m0 = frames.messages;
        const d0 = frames.draws;
        const gaps = [];
        const long = [];
        new PerformanceObserver((l) => long.push(...l.getEntries().map((e) => e.duration))).observe({ type: 'longtask' });
        let last = performance.now();
        const t0 = last;
        const tick = (t) => {
            gaps.push(t - last);
            last = t;
            if (t - t0 < seconds * 1000) requestAnimationFrame(tick);
            else ok({ messages: frames.messages - m0, draws: frames.draws - d0, gaps, long, span: (t - t0) / 1000 });
        };
        requestAnimationFrame(tick);
    }), SECONDS);
    console.log(`smoothness, ${s.span.toFixed(1)} s of the market at ${SPEED}x: ${(s.messages / s.span).toFixed(0)} feed messages/s, ` +
        `${(s.draws / s.span).toFixed(0)} draws/s; frame interval median ${q(s.gaps, 0.5).toFixed(1)} ms, ` +
        `p99 ${q(s.gaps, 0.99).toFixed(1)} ms, worst ${Math.max(...s.gaps).toFixed(1)} ms (${s.gaps.length} frames); ` +
        `long tasks ${s.long.length}${s.long.length ? ` (worst ${ms(Math.max(...s.long))})` : ''}`);
    if (small) console.log('bench_web: small mode, the figures are not a measurement');
    await done(0);
} catch (e) {
    console.error(`bench_web: ${e.message}\n${srv.log().slice(-2000)}`);
    await done(1);
}
