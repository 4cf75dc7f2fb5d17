// web_page.mjs - the web page in a real browser (Debian's Chromium driven
// headless by playwright-core), against a perpsim of its own with the
// living market on, as a trader uses it:
//   - the page loads from the server's / with no console error or page error;
//   - within seconds the book shows >= 10 levels a side and changes, trades print, the
//     candles have bars, the instrument's mark and funding show;
//   - with the market paused, the ladder is REST's L2 book level for level;
//   - logged in with a key (signed in the browser, the secret never sent):
//     the wallet shows the deposit; a limit order placed from the form is in
//     the ladder and in REST's GET /order; amended from its row, REST has the new price;
//     canceled, it is gone from the page and Canceled in REST; a market
//     order opens a position whose row and liquidation line show;
//   - a trader liquidated by the instructor panel's index shock: the page's
//     "Liquidations, explained" shows it with the numbers of GET
//     /explain/v1/liquidation (bankruptcy price, the insurance fund's
//     change) and of the trader's own position and Liquidation execution;
//   - a restore of the exchange (checkpoint, orders, restore) closes the
//     page's WebSocket: it reconnects by itself to the restored book and
//     account; on a stepped clock the page's clock goes back with it.
// A screenshot of the whole page goes to $WEB_SCREENSHOT when set, one of
// each view to the directory $WEB_SHOTS (docs/img holds the README's).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { makeSteps, ownServer, sleep } from './lib.mjs';

const BIN = process.env.PERPSIM_BIN;
const WEB = process.env.PERPSIM_WEB_DIR || resolve(import.meta.dirname, '../../web/dist');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.WEB_SHOTS; /* a directory for a screenshot of each view */
if (!BIN) {
    console.error('web_page: set PERPSIM_BIN (run.sh does)');
    process.exit(2);
}
assert.ok(existsSync(join(WEB, 'index.html')), `no built web page in ${WEB}: tools/build-web.sh builds it`);
assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: tools/install-deps.sh installs it`);

// ---------------------------------------------------------------- the server
const dataDir = mkdtempSync(join(tmpdir(), 'perpsim-web-'));
const server = await ownServer(BIN, ['--no-demo', '--rate-limit', 'off', '--web-dir', WEB, '--seed', '7',
    '--data-dir', dataDir], { cleanup: () => rmSync(dataDir, { recursive: true, force: true }) });
const BASE = server.base;
const { admin } = server;
let browser = null;
async function stop() {
    if (browser) await browser.close().catch(() => {});
    return server.stop();
}

// A REST client of the test's own, to check what the page did. It signs
// with the exchange's time, as the page does (a stepped clock runs ahead).
async function rest(acct, verb, path, params, body) {
    const target = '/api/v1/' + path + (params ? '?' + new URLSearchParams(params) : '');
    const now = (await (await fetch(BASE + '/api/v1')).json()).timestamp;
    const expires = String(Math.floor(now / 1000) + 60);
    const data = body ? JSON.stringify(body) : '';
    const sig = createHmac('sha256', acct.apiSecret).update(verb + target + expires + data).digest('hex');
    const headers = { 'api-key': acct.apiKey, 'api-expires': expires, 'api-signature': sig };
    if (data) headers['Content-Type'] = 'application/json';
    const r = await fetch(BASE + target, { method: verb, headers, body: data || undefined });
    assert.equal(r.status, 200, `${verb} ${target}: ${r.status}`);
    return r.json();
}

async function until(what, fn, ms = 20000) {
    const t0 = Date.now();
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(100);
    }
}

const { step, finish } = makeSteps('web_page', { onFail: stop });
const problems = [];
const acct = await admin('POST', 'accounts', { deposits: { XBt: 100000000 } });

browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
const rows = (sel) => page.locator(sel).count();

await step('the page loads from / with no error', async () => {
    const r = await page.goto(BASE + '/');
    assert.equal(r.status(), 200);
    await until('the WebSocket', async () => (await page.locator('#status').textContent()) === 'connected');
    assert.deepEqual(problems, []);
    return await page.title();
});

await step('the market shows: >= 10 levels a side, trades, candles, mark and funding', async () => {
    await until('10 levels a side', async () => (await rows('#asks tr')) >= 10 && (await rows('#bids tr')) >= 10);
    const ladder = await page.locator('#book').textContent();
    await until('the book to change (the makers requote as the index walks)', async () =>
        (await page.locator('#book').textContent()) !== ladder, 30000);
    await until('a trade', async () => (await rows('#trades tbody tr')) >= 1, 60000);
    await until('a candle', async () => Number(await page.locator('#chart').getAttribute('data-bars')) >= 1);
    const mark = await page.locator('[data-stat="Mark"]').textContent();
    const funding = await page.locator('[data-stat="Funding"]').textContent();
    assert.match(mark, /^\d{1,3}(,\d{3})*\.\d\d$/);
    assert.match(funding, /%$/);
    return `mark ${mark}, funding ${funding}, ${await rows('#trades tbody tr')} trades`;
});

await step('the feed is drawn once per animation frame: 50 book messages in one task, one draw', async () => {
    const got = await page.evaluate(() => new Promise((done) => {
        const { rt, frames } = window.perpsim;
        const book = rt.table('orderBookL2_25');
        const b0 = frames.book;
        for (let k = 0; k < 50; k++) rt.onMessage({ table: 'orderBookL2_25', action: 'update', data: [] }, book);
        const queued = frames.book - b0;
        // Registered after the page's own frame callback: runs in the same frame, just after it.
        requestAnimationFrame(() => done({ queued, drawn: frames.book - b0, messages: frames.messages, draws: frames.draws }));
    }));
    assert.equal(got.queued, 0, 'nothing drawn while the messages come');
    assert.equal(got.drawn, 1, `one draw for the 50 messages: ${JSON.stringify(got)}`);
    assert.ok(got.draws < got.messages, `fewer draws than feed messages so far: ${JSON.stringify(got)}`);
    return `${got.messages} messages, ${got.draws} draws so far`;
});

await step('with the market paused, the ladder is REST\'s book level for level', async () => {
    await admin('POST', 'market', { enabled: false });
    const shown = async (sel) => (await page.locator(sel).evaluateAll((trs) =>
        trs.map((tr) => [...tr.children].slice(0, 2).map((td) => Number(td.textContent.replace(/,/g, '')))))
    );
    let n = 0;
    // REST again at each look: a command already in flight may land after one.
    await until('the page to show REST\'s book', async () => {
        const book = await (await fetch(BASE + '/api/v1/orderBook/L2?symbol=XBTUSD&depth=15')).json();
        const want = (side) => book.filter((r) => r.side === side).map((r) => [r.price, r.size]);
        const asks = await shown('#asks tr'); // highest first, as REST lists sells
        const bids = await shown('#bids tr');
        n = asks.length + bids.length;
        return JSON.stringify(asks) === JSON.stringify(want('Sell')) && JSON.stringify(bids) === JSON.stringify(want('Buy'));
    }, 10000);
    return `${n} levels`;
});

let orderID = null;
await step('logged in with a key: the wallet, then a limit order from the form is in the ladder and in REST', async () => {
    await page.fill('#key', acct.apiKey);
    await page.fill('#secret', acct.apiSecret);
    await page.click('#connect');
    await until('the wallet', async () => /1\.00000000 XBT wallet/.test(await page.locator('#margin').textContent()));
    const best = await (await fetch(BASE + '/api/v1/orderBook/L2?symbol=XBTUSD&depth=1')).json();
    const bid = best.find((r) => r.side === 'Buy').price;
    // Between the makers' levels (12 apart) near the best bid: a level of its own in the ladder
    // (the market is paused: nothing trades against it).
    const price = bid - 6;
    await page.fill('#qty', '300');
    await page.fill('#price', String(price));
    await page.click('#buy');
    await until('the order row', async () => (await rows('#orders tbody tr')) === 1);
    orderID = await page.locator('#orders tbody tr').getAttribute('data-order-id');
    const open = await rest(acct, 'GET', 'order', { filter: JSON.stringify({ open: true }) });
    assert.equal(open.length, 1);
    assert.equal(open[0].orderID, orderID);
    assert.equal(open[0].price, price);
    assert.equal(open[0].orderQty, 300);
    // Its level in the ladder, at REST's size there (a noise trader's order may share the price).
    const level = price.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
    await until(`its level ${level} in the ladder, with REST's size`, async () => {
        const l2 = await (await fetch(BASE + '/api/v1/orderBook/L2?symbol=XBTUSD&depth=25')).json();
        const size = l2.find((r) => r.side === 'Buy' && r.price === price)?.size ?? 0;
        const shown = await page.locator('#bids tr').evaluateAll((trs) =>
            trs.map((tr) => [...tr.children].slice(0, 2).map((td) => td.textContent).join(' ')));
        return size >= 300 && shown.includes(`${level} ${size.toLocaleString('en-US')}`);
    });
    return `${orderID} at ${price}`;
});

await step('amended from its row: REST has the new price', async () => {
    const px = (await rest(acct, 'GET', 'order', { filter: JSON.stringify({ orderID }) }))[0].price - 100;
    await page.fill(`#orders tr[data-order-id="${orderID}"] .amend-price`, String(px));
    await page.click(`#orders tr[data-order-id="${orderID}"] .amend`);
    await until('REST to show it', async () =>
        (await rest(acct, 'GET', 'order', { filter: JSON.stringify({ orderID }) }))[0].price === px);
    return `now ${px}`;
});

await step('canceled from its row: gone from the page, Canceled in REST', async () => {
    await page.click(`#orders tr[data-order-id="${orderID}"] .cancel`);
    await until('the row to go', async () => (await rows('#orders tbody tr')) === 0);
    const o = (await rest(acct, 'GET', 'order', { filter: JSON.stringify({ orderID }) }))[0];
    assert.equal(o.ordStatus, 'Canceled');
});

await step('a market sell opens a position: its row, its liquidation line on the chart', async () => {
    await page.fill('#qty', '1000');
    await page.fill('#price', '');
    await page.click('#sell');
    await until('the position row', async () => (await rows('#positions tbody tr')) === 1);
    const pos = (await rest(acct, 'GET', 'position', { filter: JSON.stringify({ symbol: 'XBTUSD' }) }))[0];
    assert.equal(pos.currentQty, -1000);
    const row = await page.locator('#positions tbody tr td').allTextContents();
    assert.equal(row[1], '-1,000');
    await until('the fill', async () => (await rows('#fills tbody tr')) >= 1);
    const lines = await page.evaluate(() => window.perpsim.chart.lines.length);
    assert.ok(lines >= 2, `price lines on the chart: ${lines}`);
    if (SHOTS) {
        // The trader's view, header to account, for the docs.
        await page.evaluate(() => window.scrollTo(0, 0)); /* boxes in the page's coordinates */
        const box = async (sel) => page.locator(sel).boundingBox();
        const top = await box('header');
        const acct = await box('#account-pane');
        await page.screenshot({ path: join(SHOTS, 'web-trader.png'), fullPage: true,
            clip: { x: 0, y: top.y, width: 1400, height: acct.y + acct.height - top.y } });
    }
    return `liquidation ${row[4]}`;
});

await step('a restore of the exchange: the page reconnects to the restored book', async () => {
    const connections = await page.evaluate(() => window.perpsim.rt.connections);
    const cp = await admin('POST', 'checkpoint', { name: 'web' });
    const before = await (await fetch(BASE + '/api/v1/orderBook/L2?symbol=XBTUSD&depth=15')).json();
    await admin('POST', 'index', { symbol: '.BXBT', move: -0.05 });
    await admin('POST', 'market', { enabled: true });
    await sleep(1500);
    await admin('POST', 'market', { enabled: false });
    const r = await admin('POST', 'restore', { name: 'web' });
    assert.equal(r.hash, cp.hash);
    // REST lists sells from the highest price down, as the ladder shows them.
    await until('the page to reconnect and show the restored book', async () => {
        const asks = await page.locator('#asks tr').evaluateAll((trs) =>
            trs.map((tr) => Number(tr.children[0].textContent.replace(/,/g, ''))));
        return (await page.evaluate(() => window.perpsim.rt.connections)) > connections &&
            (await page.locator('#status').textContent()) === 'connected' &&
            JSON.stringify(asks) === JSON.stringify(before.filter((x) => x.side === 'Sell').map((x) => x.price));
    }, 15000);
    // The tables start over at each connection: a position row now is the
    // restored account's, from a new partial of an authenticated connection.
    await until('the position back', async () => (await rows('#positions tbody tr')) === 1);
    const m = (await rest(acct, 'GET', 'user/margin', { currency: 'XBt' }));
    await until('the wallet as REST has it', async () =>
        (await page.locator('#margin').textContent()).includes(`${(m.walletBalance / 1e8).toFixed(8)} XBT wallet`));
});

await step('on a stepped clock, a restore takes the page\'s clock back with it', async () => {
    await admin('POST', 'clock', { mode: 'stepped' });
    await admin('POST', 'clock/advance', { ms: 60000 });
    const cp = await admin('POST', 'checkpoint', { name: 'stepped' });
    await admin('POST', 'clock/advance', { ms: 2 * 3600000 });
    const shownClock = () => page.locator('#clock').textContent();
    await until('the page at the later time', async () =>
        (await shownClock()).startsWith(new Date(Date.parse(cp.time) + 2 * 3600000).toISOString().replace('T', ' ').slice(0, 19)));
    await admin('POST', 'restore', { name: 'stepped' });
    const want = cp.time.replace('T', ' ').slice(0, 19);
    await until(`the page's clock back at ${want}`, async () => (await shownClock()).startsWith(want), 10000);
    return want;
});

await step('funding is explained on the page: the countdown, then the rate paid, its formula and my payment', async () => {
    const countdown = () => page.locator('#funding-countdown').textContent();
    await until('the countdown', async () => (await countdown()).startsWith('Next funding in'));
    const before = await (await fetch(`${BASE}/explain/v1/funding?symbol=XBTUSD`)).json();
    await admin('POST', 'clock/advance', { to: before.next.fundingTimestamp });
    const x = await (await fetch(`${BASE}/explain/v1/funding?symbol=XBTUSD&count=1`)).json();
    const f = x.fundings[0];
    assert.equal(f.timestamp, before.next.fundingTimestamp);
    const mine = f.payments.find((p) => p.account === acct.account);
    assert.ok(mine && mine.currentQty === -1000, `my short paid or received: ${JSON.stringify(f.payments)}`);
    const hist = (await rest(acct, 'GET', 'user/walletHistory', { currency: 'XBt', count: 50 }))
        .filter((h) => h.text === 'Funding' && h.transactTime === f.timestamp);
    assert.equal(hist.length, 1);
    assert.equal(hist[0].amount, mine.walletChange);
    const card = page.locator(`#funding article[data-funding-ts="${f.timestamp}"]`);
    await until('its card on the page', async () => (await card.count()) === 1, 15000);
    const text = await card.textContent();
    const row = await card.locator(`tr[data-account="${acct.account}"]`).textContent();
    const xbt = (v) => `${(v / 1e8).toLocaleString('en-US', { minimumFractionDigits: 8, maximumFractionDigits: 8 })} XBT`;
    for (const want of [`funding ${(f.fundingRate * 100).toFixed(6)}%`, f.nextRate.formula, `Paid ${xbt(f.paid)}`]) {
        assert.ok(text.includes(want), `the card says "${want}": ${text}`);
    }
    assert.ok(row.includes(`${acct.account} (you)`) && row.includes(xbt(mine.walletChange)), `my row: ${row}`);
    await until('the countdown to the funding after', async () =>
        (await countdown()).includes(new Date(Date.parse(f.timestamp) + 8 * 3600000).toISOString().replace('T', ' ').slice(0, 19)));
    return `${(f.fundingRate * 100).toFixed(6)}%, mine ${mine.walletChange}`;
});

// ---------------------------------------------------------------- the instructor's panel

const indexNow = async () => (await (await fetch(BASE + '/api/v1/instrument?symbol=XBTUSD')).json())[0];

await step('the instructor unlocks the panel with the admin token and creates three students', async () => {
    await page.fill('#admin-token', server.token);
    await page.click('#admin-unlock');
    await until('the panel', async () => !(await page.locator('#teach').isHidden()));
    await page.fill('#st-n', '3');
    await page.fill('#st-xbt', '0.5');
    await page.click('#st-make');
    await until('three students\' keys', async () => (await rows('#st-keys tr')) === 4);
    const made = await page.locator('#st-keys tr').evaluateAll((trs) =>
        trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
    const cls = await admin('GET', 'accounts');
    const all = await admin('GET', 'accounts?agents=true');
    assert.ok(!cls.accounts.some((a) => a.agent) && all.accounts.some((a) => a.agent),
        'the market\'s agents listed apart (agents=true)');
    for (const [account, apiKey, apiSecret] of made) {
        const a = cls.accounts.find((x) => x.account === Number(account));
        assert.ok(a, `student ${account} in GET /admin/v1/accounts`);
        assert.equal(a.currencies.find((c) => c.currency === 'XBt').walletBalance, 50000000);
        const m = await rest({ apiKey, apiSecret }, 'GET', 'user/margin', { currency: 'XBt' });
        assert.equal(m.walletBalance, 50000000, 'the student\'s key works');
        await until(`student ${account} in the class table`, async () => {
            const row = page.locator(`#class tbody tr[data-account="${account}"]`);
            return (await row.count()) === 1 && (await row.textContent()).includes('0.50000000 XBT');
        });
    }
    return made.map((m) => m[0]).join(', ');
});

await step('the instructor\'s shock liquidates a prepared account: explained on the page with the exchange\'s numbers', async () => {
    const owner = await admin('POST', 'accounts', { deposits: { XBt: 3000000 } });
    await rest(owner, 'POST', 'position/leverage', null, { symbol: 'XBTUSD', leverage: 50 });
    await rest(owner, 'POST', 'order', null, { symbol: 'XBTUSD', side: 'Buy', orderQty: 1000, ordType: 'Market' });
    const pos = (await rest(owner, 'GET', 'position', { filter: JSON.stringify({ symbol: 'XBTUSD' }) }))[0];
    assert.equal(pos.currentQty, 1000);
    // The panel's shock, a whole percent at least 1% past the liquidation price.
    const idx = (await indexNow()).indicativeSettlePrice;
    const move = Math.floor((pos.liquidationPrice / idx - 1) * 100 - 1);
    await page.selectOption('#shock-index', '.BXBT');
    await page.fill('#shock-move', String(move));
    await page.click('#shock');
    const ex = await until('the owner\'s liquidation', async () =>
        (await rest(owner, 'GET', 'execution', { filter: JSON.stringify({ execType: 'Liquidation' }) }))[0]);
    const x = await (await fetch(`${BASE}/explain/v1/liquidation?execID=${ex.execID}`)).json();
    assert.equal(x.trigger.command, 'index', 'set off by the index move');
    const card = page.locator(`#liquidations article[data-exec-id="${ex.execID}"]`);
    await until('its card on the page', async () => (await card.count()) === 1, 15000);
    const text = await card.textContent();
    const px = (v) => Number(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    const xbt = (v) => (v / 1e8).toLocaleString('en-US', { minimumFractionDigits: 8, maximumFractionDigits: 8 }) + ' XBT';
    const f = x.insuranceFund;
    for (const want of [`Account ${owner.account}, isolated XBTUSD`, `bankruptcy price ${px(pos.bankruptPrice)}`,
        `Taken over by the liquidator: 1,000 XBTUSD at the bankruptcy price ${px(ex.lastPx)}`,
        `mark ${px(x.trigger.markPriceBefore)} → ${px(x.trigger.markPrice)}`,
        `Insurance fund: ${xbt(f.before)} → ${xbt(f.after)} (${f.change >= 0 ? '+' : ''}${xbt(f.change)})`]) {
        assert.ok(text.includes(want), `the card says "${want}": ${text}`);
    }
    assert.equal(x.position.bankruptPrice, pos.bankruptPrice, 'the bankruptcy price GET /position showed');
    const mark = `liq #${x.id}: long 1,000 @ bankruptcy ${Number(pos.bankruptPrice).toLocaleString('en-US', { maximumFractionDigits: 2 })}`;
    await until('its marker on the price chart', async () =>
        (await page.evaluate(() => window.perpsim.chart.liqMarkers.map((m) => m.text))).includes(mark));
    const ins = (await (await fetch(`${BASE}/api/v1/insurance?symbol=XBt&reverse=true&count=1`)).json())[0];
    assert.ok(f.change !== 0 && f.after === f.before + f.change, `the fund moved: ${JSON.stringify(f)}`);
    assert.ok(ins.walletBalance === f.after || x.id < (await (await fetch(`${BASE}/explain/v1/liquidation?count=1`)).json())[0].id,
        `GET /insurance's balance is the explanation's (unless a later liquidation moved it): ${ins.walletBalance} vs ${f.after}`);
    return `shock ${move}%, takeover at ${px(ex.lastPx)}, fund ${f.change >= 0 ? '+' : ''}${f.change} XBt`;
});

await step('the mechanics drawn: the insurance fund, the fair basis, inverse against linear PnL, ADL lights', async () => {
    const fund = page.locator('#fund-chart');
    const ins = (await (await fetch(BASE + '/api/v1/insurance?symbol=XBt&reverse=true&count=1')).json())[0];
    await until('the fund chart at the fund now', async () =>
        Number(await fund.getAttribute('data-points')) >= 2 && Number(await fund.getAttribute('data-last')) === ins.walletBalance / 1e8, 15000);
    await until('fair basis points', async () => Number(await page.locator('#basis-chart').getAttribute('data-points')) >= 1, 15000);
    await until('funding rate points', async () => Number(await page.locator('#rate-chart').getAttribute('data-points')) >= 1, 15000);
    // The account's short of 1,000 XBTUSD: a 20% fall gains 25% on the inverse contract, 20% on a linear one.
    const curves = page.locator('#pnl-curves');
    await until('the curves of the short', async () => (await curves.getAttribute('data-inverse-at80')) === '0.2500');
    assert.equal(await curves.getAttribute('data-linear-at80'), '0.2000');
    assert.ok((await curves.textContent()).includes('XBTUSD short'), await curves.textContent());
    const pos = (await rest(acct, 'GET', 'position', { filter: JSON.stringify({ symbol: 'XBTUSD' }) }))[0];
    const want = String(Math.max(1, Math.ceil(pos.deleveragePercentile * 5)));
    await until(`ADL lights ${want}`, async () =>
        (await page.locator('#positions tbody tr .adl').getAttribute('data-lights')) === want, 15000);
    return `fund ${ins.walletBalance}, ADL ${pos.deleveragePercentile} -> ${want} lights`;
});

await step('from the panel: a shock, the clock sped up, paused and stepped, a checkpoint and its restore', async () => {
    const before = await indexNow();
    await page.selectOption('#shock-index', '.BXBT');
    await page.fill('#shock-move', '-2');
    await page.click('#shock');
    const want = Math.trunc(before.indicativeSettlePrice * 0.98 * 1e8) / 1e8;
    await until('the index 2% down', async () => Math.abs((await indexNow()).indicativeSettlePrice - want) < 1e-6);
    await page.fill('#clk-speed', '60');
    await page.click('#clk-fast');
    await until('an accelerated clock', async () => (await admin('GET', 'clock')).mode === 'accelerated');
    assert.equal((await admin('GET', 'clock')).speed, 60);
    await page.click('#clk-pause');
    await until('a stepped clock', async () => (await page.locator('#clock-mode').getAttribute('data-mode')) === 'stepped');
    const c0 = Date.parse((await admin('GET', 'clock')).time);
    await page.click('.clk-step[data-ms="3600000"]');
    await until('an hour later', async () => Date.parse((await admin('GET', 'clock')).time) === c0 + 3600000);
    await page.fill('#cp-name', 'class-1');
    await page.click('#cp-make');
    const li = page.locator('#cp-list li[data-name="class-1"]');
    await until('the checkpoint listed', async () => (await li.count()) === 1);
    const cp = (await admin('GET', 'checkpoint')).find((c) => c.name === 'class-1');
    await page.fill('#shock-move', '-3');
    await page.click('#shock');
    await until('the state moved on', async () => (await admin('GET', 'state')).hash !== cp.hash);
    await li.locator('button').click();
    await until('the exchange back at the checkpoint', async () => (await admin('GET', 'state')).hash === cp.hash, 15000);
    return `checkpoint ${cp.hash}`;
});

await step('from the panel: the market makers paused and resumed, a fault on and off', async () => {
    const was = (await admin('GET', 'market')).enabled;
    if (await page.locator('#mk-on').isChecked() !== was) await page.click('#mk-on');
    await page.click('#mk-on');
    await page.fill('#mk-spread', '6');
    await page.click('#mk-apply');
    await until('the market toggled', async () => (await admin('GET', 'market')).enabled === !was);
    assert.equal((await admin('GET', 'market')).spreadBp, 6);
    await page.click('#mk-on');
    await page.click('#mk-apply');
    await until('the market back', async () => (await admin('GET', 'market')).enabled === was);
    await page.fill('#ft-overload', '0.25');
    await page.click('#ft-overload-on');
    await until('the overload fault on', async () => (await admin('GET', 'faults')).faults.overload?.share === 0.25);
    await until('the panel says so', async () => (await page.locator('#ft-state').getAttribute('data-on')) === 'overload');
    await page.click('#ft-off');
    await until('every fault off', async () => Object.keys((await admin('GET', 'faults')).faults).length === 0);
});

await step('no console error or page error all along', async () => {
    if (process.env.WEB_SCREENSHOT) await page.screenshot({ path: process.env.WEB_SCREENSHOT, fullPage: true });
    assert.deepEqual(problems, []);
});

// WEB_SHOTS=DIR: a picture of each teaching view as the run left it (the
// trader's view was taken with the position open); docs/img holds the README's.
if (SHOTS) {
    await step('a screenshot of each teaching view', async () => {
        for (const [sel, name] of [['#liq-pane', 'liquidations'], ['#funding-pane', 'funding'],
            ['#charts-pane', 'mechanics'], ['#teach-pane', 'instructor']]) {
            await page.locator(sel).screenshot({ path: join(SHOTS, `web-${name}.png`) });
        }
        return SHOTS;
    });
}

const rc = await stop();
await step('the server stops cleanly', async () => assert.equal(rc, 0, server.log().slice(-2000)));
finish();
