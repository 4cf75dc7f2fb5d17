// ws_e2e.mjs - the realtime WebSocket API (/realtime) against REST, with two
// real, unmodified clients:
//   - BitMEX's official Node adapter, bitmex-realtime-api 1.5.5 (it fetches
//     /api/v1/schema/websocketHelp, authenticates in the connect URL and
//     subscribes with a bare-string args, one table per message), one per
//     account for order, execution, position and margin, plus one without
//     keys for orderBookL2, trade, instrument and liquidation;
//   - ccxt pro 4.5.82 (bitmex): watchOrderBook, watchTrades, watchTicker and,
//     authenticated on the same socket with authKeyExpires (ms), watchOrders,
//     watchMyTrades, watchPositions, watchBalance.
// A seeded storm of signed REST requests (limit orders, amends, cancels,
// crossing and market orders, leverage changes) from several accounts and
// admin index moves, with one account liquidated on the way; then the clock
// is frozen (stepped) until GET /admin/v1/state stops moving, and every table
// the clients built from the feed must equal what REST serves: the full L2
// book, each account's orders, positions, margins and executions, the public
// trades, the instrument, and the liquidation in the liquidation table and in
// the liquidated account's position updates. One line per step; exit 1 on
// failure (E2E_KEEP_GOING=1 runs every step).
//
// Environment: PERPSIM_URL, PERPSIM_ADMIN_TOKEN (run.sh sets them);
// E2E_SEED (default 20260607) and E2E_STORM (storm actions, default 400).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import ccxt from 'ccxt';
import BitMEXClient from 'bitmex-realtime-api';
import {
    BASE, ONE_BTC, WSURL, admin, allRows, api, makeSteps, newAccount, poll, prng, publicGet, quiesce,
    requireEnv, setIndex, signed, sleep,
} from './lib.mjs';

requireEnv('ws_e2e');

const pkgVersion = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;
for (const [name, want] of [['ccxt', '4.5.82'], ['bitmex-realtime-api', '1.5.5']]) {
    const v = pkgVersion(name);
    if (v !== want) {
        console.error(`ws_e2e: ${name} ${v} is installed, ${want} is required (npm ci in tests/e2e)`);
        process.exit(2);
    }
}

const SEED = Number(process.env.E2E_SEED || 20260607);
const STORM = Number(process.env.E2E_STORM || 400);
const SYM = 'XBTUSD';
const S = 'BTC/USD:BTC';
const J = (x) => JSON.stringify(x);

// The comparisons run on a stepped (frozen) clock; thaw() brings engine time
// up to the wall clock (so it does not lag for the suites after this one)
// and lets it run again.
let clockFrozen = false;
async function thaw() {
    if (clockFrozen) {
        clockFrozen = false;
        try {
            await admin('POST', '/admin/v1/clock/advance', { to: new Date().toISOString() });
        } finally {
            await admin('POST', '/admin/v1/clock', { mode: 'real' });
        }
    }
}
const { step, finish } = makeSteps('ws_e2e', { onFail: thaw });

// Nothing here may hang run.sh: a watchdog ends a stuck run.
const WATCHDOG_MS = Number(process.env.E2E_WS_TIMEOUT_MS || 300000);
setTimeout(async () => {
    console.log(`FAIL  ws_e2e did not finish within ${WATCHDOG_MS} ms (a watch or a feed hung)`);
    try {
        await thaw();
    } finally {
        process.exit(1);
    }
}, WATCHDOG_MS).unref();

// ---------------------------------------------------------------- comparisons

// The fields of a REST row that the WS row lacks or holds another value for
// (skip: fields not compared), and the fields only the WS row has.
function diffRow(rest, ws, skip = []) {
    const diffs = [];
    for (const k of Object.keys(rest)) {
        if (skip.includes(k)) continue;
        if (!(k in ws)) diffs.push(`${k}: REST ${J(rest[k])}, WS missing`);
        else if (!isDeepStrictEqual(rest[k], ws[k])) diffs.push(`${k}: REST ${J(rest[k])}, WS ${J(ws[k])}`);
    }
    const extra = Object.keys(ws).filter((k) => !(k in rest) && !skip.includes(k));
    return { diffs, extra };
}

// Rows of two tables matched by key: every difference as one line.
function diffTables(what, restRows, wsRows, keyOf, skip = []) {
    const out = [];
    const extras = new Set();
    const ws = new Map(wsRows.map((r) => [keyOf(r), r]));
    const rest = new Map(restRows.map((r) => [keyOf(r), r]));
    for (const [k, r] of rest) {
        const w = ws.get(k);
        if (!w) {
            out.push(`${what} ${k}: in REST, not in the WS table (REST ${J(r).slice(0, 300)})`);
            continue;
        }
        const d = diffRow(r, w, skip);
        for (const x of d.diffs) out.push(`${what} ${k}: ${x}`);
        d.extra.forEach((x) => extras.add(x));
    }
    for (const [k, w] of ws) {
        if (!rest.has(k)) out.push(`${what} ${k}: in the WS table, not in REST (WS ${J(w).slice(0, 300)})`);
    }
    return { diffs: out, extras: [...extras] };
}

// Runs check() (which returns a list of differences) until it returns none or
// ms pass; throws with the last differences (at most 40 lines).
async function converge(what, ms, check) {
    const end = Date.now() + ms;
    let diffs;
    for (;;) {
        diffs = await check();
        if (diffs.length === 0) return;
        if (Date.now() > end) break;
        await sleep(250);
    }
    const shown = diffs.slice(0, 40).join('\n');
    const more = diffs.length > 40 ? `\n... and ${diffs.length - 40} more` : '';
    throw new assert.AssertionError({ message: `${what}: ${diffs.length} difference(s) after ${ms} ms:\n${shown}${more}` });
}

// Field names that differ, for the summary line: "position.markPrice, ..."
const fieldsOf = (diffs) => [...new Set(diffs.map((d) => {
    const m = /^(\S+) [^:]+: (\w+):/.exec(d);
    return m ? `${m[1]}.${m[2]}` : d.split(':')[0];
}))];

// A converge failure, headed by the names of the fields that differ.
function withFieldSummary(e) {
    if (e instanceof assert.AssertionError)
        e.message = `fields that differ: ${fieldsOf(e.message.split('\n').slice(1)).join(', ')}\n` + e.message;
    return e;
}

// ---------------------------------------------------------------- the adapter

const adapters = [];

// One official adapter: keys (or none), subscriptions [[symbol, table]...].
function startAdapter(name, acct, subs) {
    const opts = { endpoint: WSURL, httpEndpoint: BASE + '/api/v1', maxTableLen: 100000 };
    if (acct) {
        opts.apiKeyID = acct.apiKey;
        opts.apiKeySecret = acct.apiSecret;
    }
    const client = new BitMEXClient(opts);
    client.socket.logConnection = false; // its "Connected." lines would break the one-line-per-step output
    const a = { name, acct, client, subs, errors: [], opens: 0, closes: [], ends: [], calls: {} };
    client.on('error', (...args) => a.errors.push(args.map((x) => (x && x.message) || (typeof x === 'string' ? x : J(x))).join(' ')));
    client.on('open', () => a.opens++);
    client.on('close', () => a.closes.push(new Date().toISOString()));
    client.on('end', (code) => a.ends.push(code));
    a.hooks = {};
    for (const [symbol, table] of subs) {
        client.addStream(symbol, table, (data, sym, tbl) => {
            a.calls[tbl] = (a.calls[tbl] || 0) + 1;
            const hook = a.hooks[tbl];
            if (hook) hook(data, sym);
        });
    }
    adapters.push(a);
    return a;
}

const tableKey = (table) => (BitMEXClient.noSymbolTables.includes(table) ? '*' : SYM);
const hasPartial = (a, table) => Boolean(a.client._data[table] && a.client._data[table][tableKey(table)] !== undefined);
const rows = (a, table) => (hasPartial(a, table) ? a.client.getData(tableKey(table), table) : []);

// ---------------------------------------------------------------- accounts

console.log(`bitmex-realtime-api ${pkgVersion('bitmex-realtime-api')}, ccxt ${pkgVersion('ccxt')} against ${WSURL}, seed ${SEED}, ${STORM} storm actions`);

let M; // maker, 10 XBT
let A; // trader, 1 XBT, also ccxt pro
let B; // trader, 1 XBT
let V; // victim, 0.002 XBT, liquidated in the storm
const who = {};
await step('admin: create maker, two traders and a small account to liquidate', async () => {
    M = await newAccount({ XBt: 10 * ONE_BTC, USDt: 10000000000 });
    A = await newAccount({ XBt: ONE_BTC, USDt: 1000000000 });
    B = await newAccount({ XBt: ONE_BTC });
    V = await newAccount({ XBt: 200000 });
    Object.assign(who, { M, A, B, V });
    await setIndex(60000);
    return `accounts M=${M.account} A=${A.account} B=${B.account} V=${V.account}`;
});
if (!V) process.exit(1);

// ---------------------------------------------------------------- subscriptions

const PRIVATE = ['order', 'execution', 'position', 'margin'];
let pub;
const acctAdapters = {};
const liqSeen = new Map(); // orderID -> first row seen in the liquidation table
let liqMaxRows = 0;
const vQty = []; // the victim's currentQty after each position message

await step('adapter: public client subscribes orderBookL2:XBTUSD, trade, instrument, liquidation; one keyed client per account subscribes order, execution, position, margin', async () => {
    pub = startAdapter('public', undefined, [[SYM, 'orderBookL2'], [SYM, 'trade'], [SYM, 'instrument'], [SYM, 'liquidation']]);
    pub.hooks.liquidation = (data) => {
        liqMaxRows = Math.max(liqMaxRows, data.length);
        for (const r of data) if (!liqSeen.has(r.orderID)) liqSeen.set(r.orderID, { ...r });
    };
    for (const [n, acct] of Object.entries(who)) {
        acctAdapters[n] = startAdapter(n, acct, PRIVATE.map((t) => [t === 'margin' ? '*' : SYM, t]));
    }
    acctAdapters.V.hooks.position = (data) => {
        const p = data.find((r) => r.symbol === SYM);
        if (p && vQty[vQty.length - 1] !== p.currentQty) vQty.push(p.currentQty);
    };
    const missing = () => adapters.map((a) => [a.name, a.subs.filter(([, t]) => !hasPartial(a, t)).map(([, t]) => t)])
        .filter(([, ts]) => ts.length).map(([n, ts]) => `${n}: ${ts.join(',')}`).join('; ');
    try {
        await poll(() => adapters.every((a) => a.subs.every(([, t]) => hasPartial(a, t)) || a.errors.length), 20000, 'every partial');
    } catch (e) {
        throw new Error(`${e.message}; no partial yet for ${missing()}; errors ${J(adapters.map((a) => a.errors))}`);
    }
    const errs = adapters.filter((a) => a.errors.length).map((a) => `${a.name}: ${a.errors.join(' | ')}`);
    assert.equal(errs.length, 0, `adapter errors: ${errs.join('; ')}`);
    // nothing traded yet for these accounts: empty private partials
    for (const n of Object.keys(who)) {
        const a = acctAdapters[n];
        assert.deepEqual(rows(a, 'order'), [], `${n}: order partial not empty`);
        assert.deepEqual(rows(a, 'execution'), [], `${n}: execution partial not empty`);
        const m = rows(a, 'margin');
        assert.ok(m.some((r) => r.currency === 'XBt' && r.account === who[n].account),
            `${n}: margin partial has no XBt row of account ${who[n].account}: ${J(m).slice(0, 300)}`);
    }
    const inst = rows(pub, 'instrument');
    assert.ok(inst.some((r) => r.symbol === SYM), `instrument partial has no XBTUSD row`);
    return `${adapters.length} adapters, ${adapters.reduce((n, a) => n + a.subs.length, 0)} subscriptions, book ${rows(pub, 'orderBookL2').length} rows`;
});

// ---------------------------------------------------------------- ccxt pro

let cx;
let stopWatching = false;
const watched = {};
function watchLoop(name, fn) {
    const w = (watched[name] = { n: 0, errors: [], last: undefined, first: undefined });
    (async () => {
        while (!stopWatching) {
            try {
                w.last = await fn();
                if (w.n++ === 0) w.first = JSON.parse(J(w.last)); // ccxt mutates what it returned
            } catch (e) {
                if (stopWatching) break;
                w.errors.push(`${e.constructor.name}: ${e.message}`);
                await sleep(500);
            }
        }
    })();
}

await step('ccxt pro: ws:// needs loadHttpProxyAgent() first (NotSupported without it)', async () => {
    cx = new ccxt.pro.bitmex({ apiKey: A.apiKey, secret: A.apiSecret, timeout: 15000, enableRateLimit: false });
    // REST urls are the host only (ccxt appends /api/v1/...); ws is the /realtime URL.
    cx.urls.api = { public: BASE, private: BASE, ws: WSURL };
    await cx.loadMarkets();
    let err;
    try {
        cx.client(WSURL);
    } catch (e) {
        err = e;
    }
    assert.ok(err instanceof ccxt.NotSupported, `client(ws://) without an http agent: ${err ? err.constructor.name + ' ' + err.message : 'no error'}`);
    await cx.loadHttpProxyAgent();
    return err.message;
});

await step('ccxt pro: watchOrderBook, watchTicker, watchBalance resolve; watchTrades, watchOrders, watchMyTrades, watchPositions subscribed', async () => {
    watchLoop('orderBook', () => cx.watchOrderBook(S));
    watchLoop('trades', () => cx.watchTrades(S));
    watchLoop('ticker', () => cx.watchTicker(S));
    watchLoop('orders', () => cx.watchOrders(S));
    watchLoop('myTrades', () => cx.watchMyTrades(S));
    watchLoop('positions', () => cx.watchPositions([S]));
    watchLoop('balance', () => cx.watchBalance());
    // ccxt resolves nothing for an empty order, execution or position partial (watchPositions([S])
    // waits for a row of S), so only these three can be waited for
    await poll(() => ['orderBook', 'ticker', 'balance'].every((k) => watched[k].n > 0 || watched[k].errors.length), 20000,
        'the first orderBook, ticker and balance');
    const errs = Object.entries(watched).filter(([, w]) => w.errors.length).map(([k, w]) => `${k}: ${w.errors[0]}`);
    assert.equal(errs.length, 0, errs.join('; '));
    const bal = watched.balance.first; // from the margin partial
    assert.equal(bal.BTC && bal.BTC.total, 1, `watchBalance BTC total ${bal.BTC && bal.BTC.total} (1 BTC deposited)`);
    assert.equal(bal.BTC.free, 1, 'watchBalance BTC free');
    await sleep(1500); // the order/execution partials are empty, so ccxt resolves nothing for them: give them time
    const t = watched.ticker.last;
    return `ticker mark ${t.info && t.info.markPrice}, book ${cx.orderbooks[S].bids.length}/${cx.orderbooks[S].asks.length}`;
});

// ---------------------------------------------------------------- the storm

const t0 = (await admin('GET', '/admin/v1/state')).time; // engine time before the storm's first trade
const rng = prng(SEED);
const traders = ['M', 'A', 'B'];
const open = { M: [], A: [], B: [] }; // order ids believed open, oldest first
const stats = { orders: 0, market: 0, amends: 0, cancels: 0, cancelAll: 0, leverage: 0, index: 0, refused: {} };
let mid = 60000;
const px = (p) => Math.round(p * 2) / 2; // tick 0.5
const qty = (lo, hi) => 100 * rng.int(lo, hi); // lot 100
const liq = {};

function refused(r, what) {
    const m = (r.body && r.body.error && r.body.error.message) || `HTTP ${r.status}`;
    const k = `${what}: ${m.replace(/[0-9]+/g, 'N')}`;
    stats.refused[k] = (stats.refused[k] || 0) + 1;
    if (r.status >= 500 || r.status === 401 || r.status === 403) throw new Error(`${what} -> HTTP ${r.status} ${J(r.body)}`);
}
function track(n, o) {
    const i = open[n].indexOf(o.orderID);
    const live = o.leavesQty > 0 && (o.ordStatus === 'New' || o.ordStatus === 'PartiallyFilled');
    if (live && i < 0) open[n].push(o.orderID);
    if (!live && i >= 0) open[n].splice(i, 1);
}

async function place(n, params) {
    const r = await signed(who[n], 'POST', '/order', { symbol: SYM, ...params });
    if (r.status === 200) {
        if (params.ordType === 'Market') stats.market++;
        else stats.orders++;
        track(n, r.body);
    } else refused(r, 'order');
    return r;
}

async function liquidation() {
    // V goes long 1000 at ~8x with 0.002 XBT behind it; the index falls to 50000.
    await place('M', { side: 'Sell', orderQty: 1000, price: px(mid + 100), ordType: 'Limit' });
    const r = await signed(V, 'POST', '/order', { symbol: SYM, side: 'Buy', orderQty: 1000, ordType: 'Market' });
    assert.equal(r.status, 200, `victim's market buy: ${J(r.body)}`);
    const p = (await api(V, 'GET', '/position', { filter: { symbol: SYM } })).find((x) => x.symbol === SYM);
    assert.ok(p && p.currentQty > 0, `victim has no long: ${J(p)}`);
    liq.qty = p.currentQty;
    liq.liquidationPrice = p.liquidationPrice;
    await setIndex(50000);
    try {
        await poll(async () => {
            const q = (await api(V, 'GET', '/position', { filter: { symbol: SYM } })).find((x) => x.symbol === SYM);
            return q && q.currentQty === 0;
        }, 15000, 'the victim to be liquidated');
    } finally {
        await setIndex(mid);
    }
    liq.done = true;
}

await step(`storm: ${STORM} seeded REST actions from M, A, B (limit, crossing and market orders, amends, cancels, leverage) with index moves and one liquidation`, async () => {
    const tStart = Date.now();
    for (let i = 0; i < STORM; i++) {
        if (i === Math.floor(STORM / 2)) await liquidation();
        const n = rng.pick(traders);
        const acct = who[n];
        const x = rng.next();
        if (x < 0.36) { // a resting limit order
            const side = rng.chance(0.5) ? 'Buy' : 'Sell';
            const off = rng.int(2, 800) * 0.5;
            await place(n, { side, orderQty: qty(1, 20), price: px(side === 'Buy' ? mid - off : mid + off), ordType: 'Limit' });
        } else if (x < 0.48) { // a limit that crosses the spread, sometimes IOC
            const side = rng.chance(0.5) ? 'Buy' : 'Sell';
            const off = rng.int(0, 400) * 0.5;
            const p = { side, orderQty: qty(1, 15), price: px(side === 'Buy' ? mid + off : mid - off), ordType: 'Limit' };
            if (rng.chance(0.3)) p.timeInForce = 'ImmediateOrCancel';
            await place(n, p);
        } else if (x < 0.53) { // a market order
            await place(n, { side: rng.chance(0.5) ? 'Buy' : 'Sell', orderQty: qty(1, 8), ordType: 'Market' });
        } else if (x < 0.73) { // amend price, orderQty or leavesQty
            if (!open[n].length) continue;
            const id = open[n][rng.int(0, open[n].length - 1)];
            const kind = rng.next();
            const p = { orderID: id };
            if (kind < 0.5) p.price = px(mid + rng.int(-700, 700) * 0.5);
            else if (kind < 0.8) p.orderQty = qty(1, 25);
            else p.leavesQty = qty(1, 10);
            const r = await signed(acct, 'PUT', '/order', p);
            if (r.status === 200) {
                stats.amends++;
                track(n, r.body);
            } else {
                refused(r, 'amend');
                if (r.status === 404 || /ordStatus/.test(J(r.body))) open[n].splice(open[n].indexOf(id), 1);
            }
        } else if (x < 0.9) { // cancel one
            if (!open[n].length) continue;
            const id = open[n][rng.int(0, open[n].length - 1)];
            const r = await signed(acct, 'DELETE', '/order', { orderID: id });
            open[n].splice(open[n].indexOf(id), 1);
            if (r.status === 200) {
                stats.cancels++;
                if (Array.isArray(r.body) && r.body[0] && r.body[0].error) stats.refused['cancel: ' + r.body[0].error] = (stats.refused['cancel: ' + r.body[0].error] || 0) + 1;
            } else refused(r, 'cancel');
        } else if (x < 0.92) { // cancel all of it (not M: the book stays deep)
            if (n === 'M') continue;
            const r = await signed(acct, 'DELETE', '/order/all', { symbol: SYM });
            if (r.status === 200) {
                stats.cancelAll++;
                open[n] = [];
            } else refused(r, 'cancelAll');
        } else if (x < 0.94) { // leverage: cross (0) or isolated
            const r = await signed(acct, 'POST', '/position/leverage', { symbol: SYM, leverage: rng.pick([0, 0, 25, 50, 100]) });
            if (r.status === 200) stats.leverage++;
            else refused(r, 'leverage');
        } else { // the index moves
            mid = 60000 + rng.int(-8, 8) * 50;
            await setIndex(mid);
            stats.index++;
        }
    }
    // the book stays two-sided and deep at the end
    for (let k = 1; k <= 5; k++) {
        await place('M', { side: 'Buy', orderQty: 500, price: px(mid - 300 - 25 * k), ordType: 'Limit' });
        await place('M', { side: 'Sell', orderQty: 500, price: px(mid + 300 + 25 * k), ordType: 'Limit' });
    }
    assert.ok(liq.done, 'the liquidation did not run');
    const ref = Object.entries(stats.refused).map(([k, v]) => `${v}x ${k}`).join('; ');
    return `${stats.orders} limit, ${stats.market} market, ${stats.amends} amends, ${stats.cancels} cancels, ` +
        `${stats.cancelAll} cancel-alls, ${stats.leverage} leverage, ${stats.index} index moves in ${Date.now() - tStart} ms; ` +
        `victim long ${liq.qty} liq ${liq.liquidationPrice}; refused: ${ref || 'none'}`;
});

// ---------------------------------------------------------------- quiescence

await step('quiescence: clock stepped (frozen), GET /admin/v1/state seq stops moving, then 1.5 s for the feed', async () => {
    await admin('POST', '/admin/v1/clock', { mode: 'stepped' });
    clockFrozen = true;
    const s = await quiesce({ polls: 4, every: 250, timeoutMs: 20000 });
    await sleep(1500);
    return `seq ${s.seq} at ${s.time}`;
});

// Every comparison below retries for a while (a loaded machine, a sanitizer
// build) and fails with the differences it still sees.
const SETTLE_MS = 8000;

// ---------------------------------------------------------------- adapter: public tables

const bookKey = (r) => `${r.side} ${r.price} id ${r.id}`;
await step('adapter: orderBookL2 table (sorted by price) equals GET /orderBook/L2?depth=0 row for row (id, side, size, price)', async () => {
    let n = 0;
    await converge('orderBookL2', SETTLE_MS, async () => {
        const rest = await publicGet(`/api/v1/orderBook/L2?symbol=${SYM}&depth=0`);
        const ws = rows(pub, 'orderBookL2');
        n = rest.length;
        const order = (x, y) => y.price - x.price || (x.side < y.side ? -1 : x.side > y.side ? 1 : 0);
        const r = [...rest].sort(order).map((x) => ({ id: x.id, side: x.side, size: x.size, price: x.price }));
        const w = [...ws].sort(order).map((x) => ({ id: x.id, side: x.side, size: x.size, price: x.price }));
        const diffs = [];
        for (let i = 0; i < Math.max(r.length, w.length); i++) {
            if (!isDeepStrictEqual(r[i], w[i])) diffs.push(`row ${i}: REST ${J(r[i])}, WS ${J(w[i])}`);
        }
        for (const x of ws) {
            if (!(x.size > 0)) diffs.push(`WS level with size ${x.size}: ${J(x)}`);
            if (x.symbol !== SYM) diffs.push(`WS level without symbol ${SYM}: ${J(x)}`);
        }
        if (diffs.length) diffs.unshift(`REST ${r.length} levels, WS ${w.length}`);
        return diffs;
    });
    assert.ok(n > 10, `the book has only ${n} levels`);
    return `${n} levels`;
});

await step('adapter: trade table has every trade of GET /trade since the storm began, field for field', async () => {
    let n = 0;
    await converge('trade', SETTLE_MS, async () => {
        const rest = [];
        for (let start = 0; ; start += 500) {
            const page = await publicGet(`/api/v1/trade?symbol=${SYM}&count=500&start=${start}&startTime=${encodeURIComponent(t0)}`);
            rest.push(...page);
            if (page.length < 500) break;
        }
        n = rest.length;
        const ws = rows(pub, 'trade').filter((r) => r.timestamp >= t0);
        return diffTables('trade', rest, ws, (r) => r.trdMatchID).diffs;
    });
    assert.ok(n > 20, `only ${n} trades since ${t0}`);
    return `${n} trades`;
});

await step('adapter: instrument XBTUSD row equals GET /instrument (prices, mark, open interest, volume...)', async () => {
    const core = ['symbol', 'state', 'lastPrice', 'lastTickDirection', 'bidPrice', 'askPrice', 'midPrice', 'markPrice',
        'fairPrice', 'fairBasis', 'indicativeSettlePrice', 'openInterest', 'openValue', 'volume', 'turnover',
        'fundingRate', 'indicativeFundingRate', 'impactBidPrice', 'impactAskPrice', 'impactMidPrice'];
    let others = [];
    await converge('instrument', SETTLE_MS, async () => {
        const rest = (await publicGet(`/api/v1/instrument?symbol=${SYM}`))[0];
        const ws = rows(pub, 'instrument').find((r) => r.symbol === SYM) || {};
        const { diffs } = diffRow(rest, ws, ['timestamp']);
        others = diffs.filter((d) => !core.includes(d.split(':')[0]));
        return diffs.filter((d) => core.includes(d.split(':')[0]) && d.split(':')[0] in rest);
    });
    return others.length ? `other fields differ (not failed): ${others.join('; ')}` : 'every field equal';
});

// ---------------------------------------------------------------- adapter: private tables

// deleveragePercentile (the position's place in the ADL queue) moves with
// every other position of its side; the feed's rows leave it out (docs/api.md)
// and REST computes it live.
const POS_SKIP = ['timestamp', 'deleveragePercentile'];
const MARGIN_SKIP = ['timestamp'];

for (const n of ['M', 'A', 'B', 'V']) {
    await step(`adapter ${n}: open orders (leavesQty > 0) equal GET /order?filter={"open":true}, field for field`, async () => {
        let cnt = 0;
        await converge(`${n} open orders`, SETTLE_MS, async () => {
            const rest = await allRows(who[n], '/order', { symbol: SYM, filter: { open: true } });
            cnt = rest.length;
            const ws = rows(acctAdapters[n], 'order').filter((o) => o.leavesQty > 0);
            return diffTables('order', rest, ws, (o) => o.orderID).diffs;
        });
        return `${cnt} open`;
    });

    await step(`adapter ${n}: every order (filled and canceled too) equals GET /order, field for field`, async () => {
        let cnt = 0;
        await converge(`${n} orders`, SETTLE_MS, async () => {
            const rest = await allRows(who[n], '/order', { symbol: SYM });
            cnt = rest.length;
            return diffTables('order', rest, rows(acctAdapters[n], 'order'), (o) => o.orderID).diffs;
        });
        return `${cnt} orders`;
    });

    await step(`adapter ${n}: position XBTUSD equals GET /position (currentQty, avgEntryPrice, liquidationPrice, markPrice, unrealisedPnl, maintMargin, ...)`, async () => {
        let detail = '';
        try {
            await converge(`${n} position`, SETTLE_MS, async () => {
                const rest = (await api(who[n], 'GET', '/position')).filter((p) => p.symbol === SYM);
                const ws = rows(acctAdapters[n], 'position').filter((p) => p.symbol === SYM);
                const d = diffTables('position', rest, ws, (p) => `${p.account}/${p.symbol}`, POS_SKIP);
                const p = rest[0];
                detail = p ? `qty ${p.currentQty} entry ${p.avgEntryPrice} liq ${p.liquidationPrice} mark ${p.markPrice} upnl ${p.unrealisedPnl}` : 'no position';
                if (d.extras.length) detail += `; WS-only fields ${d.extras.join(',')}`;
                return d.diffs;
            });
        } catch (e) {
            throw withFieldSummary(e);
        }
        return detail;
    });

    await step(`adapter ${n}: margin rows equal GET /user/margin?currency=all (walletBalance, marginBalance, availableMargin, unrealisedPnl, maintMargin, ...)`, async () => {
        let detail = '';
        try {
            await converge(`${n} margin`, SETTLE_MS, async () => {
                const rest = await api(who[n], 'GET', '/user/margin', { currency: 'all' });
                const d = diffTables('margin', rest, rows(acctAdapters[n], 'margin'), (m) => `${m.account}/${m.currency}`, MARGIN_SKIP);
                const x = rest.find((m) => m.currency === 'XBt');
                detail = `XBt wallet ${x.walletBalance} margin ${x.marginBalance} available ${x.availableMargin}`;
                if (d.extras.length) detail += `; WS-only fields ${d.extras.join(',')}`;
                return d.diffs;
            });
        } catch (e) {
            throw withFieldSummary(e);
        }
        return detail;
    });

    await step(`adapter ${n}: executions match GET /execution/tradeHistory by execID (every field), every execType Trade is there`, async () => {
        let cnt = 0;
        let types = '';
        await converge(`${n} executions`, SETTLE_MS, async () => {
            const rest = await allRows(who[n], '/execution/tradeHistory', { symbol: SYM });
            cnt = rest.length;
            const ws = rows(acctAdapters[n], 'execution');
            const restIds = new Set(rest.map((e) => e.execID));
            const byId = new Map(ws.map((e) => [e.execID, e]));
            const diffs = [];
            for (const e of rest) {
                const w = byId.get(e.execID);
                if (!w) diffs.push(`execution ${e.execID} (${e.execType} ${e.side} ${e.lastQty}@${e.lastPx}): in tradeHistory, not in the WS table`);
                else diffRow(e, w).diffs.forEach((d) => diffs.push(`execution ${e.execID}: ${d}`));
            }
            for (const w of ws) {
                if (w.execType === 'Trade' && !restIds.has(w.execID)) diffs.push(`execution ${w.execID} (Trade ${w.side} ${w.lastQty}@${w.lastPx}): in the WS table, not in tradeHistory`);
            }
            const c = {};
            for (const w of ws) c[w.execType] = (c[w.execType] || 0) + 1;
            types = Object.entries(c).map(([k, v]) => `${v} ${k}`).join(', ');
            return diffs;
        });
        return `${cnt} in tradeHistory; WS execTypes: ${types}`;
    });
}

await step('adapter: the liquidation table showed the victim\'s liquidation (side Sell, XBTUSD) and is empty again', async () => {
    assert.ok(liqSeen.size > 0, 'no row ever appeared in the liquidation table');
    const rowsSeen = [...liqSeen.values()];
    const sell = rowsSeen.find((r) => r.symbol === SYM && r.side === 'Sell');
    assert.ok(sell, `no Sell liquidation of XBTUSD among ${J(rowsSeen)}`);
    for (const r of rowsSeen) {
        for (const k of ['orderID', 'symbol', 'side', 'price', 'leavesQty']) assert.ok(k in r, `liquidation row without ${k}: ${J(r)}`);
    }
    const rest = await publicGet(`/api/v1/liquidation?symbol=${SYM}`);
    const ids = new Set(rest.map((r) => r.orderID));
    for (const r of rowsSeen) assert.ok(ids.has(r.orderID), `liquidation ${r.orderID} is not in GET /liquidation (${J(rest).slice(0, 300)})`);
    await converge('liquidation table', SETTLE_MS, async () => rows(pub, 'liquidation').map((r) => `still live: ${J(r)}`));
    return `${liqSeen.size} liquidation order(s): ${J(rowsSeen)}`;
});

await step('adapter V: the liquidation shows in the victim\'s position updates (long, then 0) and executions', async () => {
    assert.ok(vQty.some((q) => q > 0), `the victim's position table never showed the long: currentQty history ${J(vQty)}`);
    const iLong = vQty.findIndex((q) => q > 0);
    assert.ok(vQty.slice(iLong).includes(0), `the victim's position never went back to 0 after the long: ${J(vQty)}`);
    assert.equal(vQty[vQty.length - 1], 0, `the victim's last currentQty: ${J(vQty)}`);
    const ex = rows(acctAdapters.V, 'execution');
    const l = ex.find((e) => e.execType === 'Liquidation' || /Liquidation/.test(e.text || ''));
    assert.ok(l, `no liquidation execution among the victim's: ${J(ex.map((e) => [e.execType, e.text]))}`);
    return `currentQty ${vQty.join(' -> ')}; ${l.execType} ${l.side} ${l.lastQty}@${l.lastPx}`;
});

await step('adapters: no error, no reconnect (each connected once)', async () => {
    const bad = adapters.filter((a) => a.errors.length || a.opens !== 1 || a.ends.length)
        .map((a) => `${a.name}: opens ${a.opens}, closes ${J(a.closes)}, ends ${J(a.ends)}, errors ${J(a.errors.slice(0, 5))}`);
    assert.equal(bad.length, 0, bad.join('\n'));
    return adapters.map((a) => `${a.name} ${J(a.calls)}`).join('; ');
});

// ---------------------------------------------------------------- ccxt pro

await step('ccxt watchOrderBook equals fetchOrderBook(depth 0)', async () => {
    await converge('ccxt order book', SETTLE_MS, async () => {
        const rest = await cx.fetchOrderBook(S, 0);
        const ob = cx.orderbooks[S];
        const diffs = [];
        for (const side of ['bids', 'asks']) {
            const w = Array.from(ob[side]).map((x) => [x[0], x[1]]);
            if (!isDeepStrictEqual(w, rest[side])) {
                for (let i = 0; i < Math.max(w.length, rest[side].length); i++) {
                    if (!isDeepStrictEqual(w[i], rest[side][i])) diffs.push(`${side}[${i}]: fetch ${J(rest[side][i])}, watch ${J(w[i])}`);
                }
            }
        }
        return diffs;
    });
    return `${cx.orderbooks[S].bids.length} bids, ${cx.orderbooks[S].asks.length} asks`;
});

await step('ccxt watchTrades: the cache is the tail of the public trades (GET /trade, newest first)', async () => {
    let n = 0;
    await converge('ccxt trades', SETTLE_MS, async () => {
        const cache = Array.from(cx.trades[S] || []);
        n = Math.min(cache.length, 500);
        const rest = await publicGet(`/api/v1/trade?symbol=${SYM}&reverse=true&count=${Math.max(n, 1)}`);
        const want = rest.map((t) => t.trdMatchID).sort();
        const got = cache.slice(cache.length - n).map((t) => t.id).sort();
        return isDeepStrictEqual(want, got) ? [] : [`last ${n}: ${got.filter((x) => !want.includes(x)).length} watched not in REST, ${want.filter((x) => !got.includes(x)).length} REST not watched`];
    });
    assert.ok(n > 0, 'no trade was watched');
    return `${n} trades`;
});

// ccxt deep-merges each instrument row into ticker.info, but parses every row
// alone: a sparse update (as BitMEX sends) leaves bid/ask/last undefined. The
// merged info is what must equal REST; the parsed fields are only noted.
await step('ccxt watchTicker: the merged instrument row (info) equals fetchTicker (lastPrice, bidPrice, askPrice, markPrice)', async () => {
    let note = '';
    await converge('ccxt ticker', SETTLE_MS, async () => {
        const t = cx.tickers[S];
        const r = await cx.fetchTicker(S);
        const diffs = [];
        for (const k of ['lastPrice', 'bidPrice', 'askPrice', 'markPrice']) {
            if (t.info[k] !== r.info[k]) diffs.push(`info.${k}: fetch ${r.info[k]}, watch ${t.info[k]}`);
        }
        const parsed = ['bid', 'ask', 'last'].filter((k) => t[k] !== r[k]).map((k) => `${k} ${t[k]} (fetch ${r[k]})`);
        note = parsed.length ? `; ccxt's parsed ${parsed.join(', ')} (it parses sparse updates alone)` : '';
        return diffs;
    });
    const t = cx.tickers[S];
    return `last ${t.info.lastPrice} bid ${t.info.bidPrice} ask ${t.info.askPrice} mark ${t.info.markPrice}${note}`;
});

// ccxt 4.5.82 looks previous orders up in its cache by id at the wrong
// nesting level, so a sparse order update (BitMEX sends only the changed
// fields) replaces the fields it lacks with undefined. Checked: every open
// order of fetchOpenOrders is in the cache, every field ccxt still has agrees
// with REST, and no order ccxt believes open is closed in REST.
await step('ccxt watchOrders: the cache holds every open order of fetchOpenOrders; each field ccxt still has agrees', async () => {
    let n = 0;
    let undef = 0;
    await converge('ccxt orders', SETTLE_MS, async () => {
        const rest = await cx.fetchOpenOrders(S, undefined, 500);
        n = rest.length;
        const cache = new Map(Array.from(cx.orders || []).filter((o) => o.symbol === S || o.symbol === undefined).map((o) => [o.id, o]));
        const open = new Set(rest.map((o) => o.id));
        const diffs = [];
        undef = 0;
        for (const r of rest) {
            const w = cache.get(r.id);
            if (!w) {
                diffs.push(`order ${r.id}: open in REST, never watched`);
                continue;
            }
            for (const k of ['status', 'side', 'price', 'amount', 'filled', 'remaining']) {
                if (w[k] === undefined) undef++;
                else if (w[k] !== r[k]) diffs.push(`order ${r.id}: ${k}: fetch ${J(r[k])}, watch ${J(w[k])}`);
            }
        }
        for (const [id, w] of cache) if (w.status === 'open' && !open.has(id)) diffs.push(`order ${id}: open in the watch cache, not in fetchOpenOrders`);
        return diffs;
    });
    return `${n} open${undef ? `; ${undef} fields undefined in ccxt's cache (sparse updates)` : ''}`;
});

await step('ccxt watchMyTrades: every Trade execution of fetchMyTrades, same price and amount', async () => {
    let n = 0;
    await converge('ccxt my trades', SETTLE_MS, async () => {
        const rest = [];
        for (let start = 0; ; start += 500) {
            const page = await cx.fetchMyTrades(S, undefined, 500, { start });
            rest.push(...page);
            if (page.length < 500) break;
        }
        const trades = rest.filter((t) => t.info.execType === 'Trade');
        n = trades.length;
        const ws = Array.from(cx.myTrades || []).filter((t) => t.symbol === S);
        const pick = (t) => ({ id: t.id, order: t.order, side: t.side, price: t.price, amount: t.amount });
        return diffTables('trade', trades.map(pick), ws.map(pick), (t) => t.id).diffs;
    });
    return `${n} trades`;
});

await step('ccxt watchPositions: the last position update equals fetchPositions (contracts, side)', async () => {
    await converge('ccxt position', SETTLE_MS, async () => {
        const r = (await cx.fetchPositions([S])).find((p) => p.symbol === S);
        const cache = Array.from(cx.positions || []).filter((p) => p.symbol === S);
        const w = cache[cache.length - 1];
        if (!w) return [`no position watched (REST ${r && r.contracts})`];
        const diffs = [];
        if (w.contracts !== r.contracts) diffs.push(`contracts: fetch ${r.contracts}, watch ${w.contracts} (last row ${J(w.info)})`);
        if (r.contracts && w.side !== r.side) diffs.push(`side: fetch ${r.side}, watch ${w.side}`);
        return diffs;
    });
    const r = (await cx.fetchPositions([S])).find((p) => p.symbol === S);
    return `${r.contracts} contracts ${r.side}`;
});

await step('ccxt watchBalance equals fetchBalance (BTC free and total)', async () => {
    let note = '';
    await converge('ccxt balance', SETTLE_MS, async () => {
        const r = await cx.fetchBalance();
        const w = cx.balance.BTC || {};
        const diffs = [];
        for (const k of ['free', 'total']) {
            if (w[k] === undefined) note = `watch ${k} undefined (a margin update without the field)`;
            else if (w[k] !== r.BTC[k]) diffs.push(`BTC.${k}: fetch ${r.BTC[k]}, watch ${w[k]}`);
        }
        return diffs;
    });
    return `BTC free ${cx.balance.BTC.free} total ${cx.balance.BTC.total}${note ? '; ' + note : ''}`;
});

await step('ccxt watchers: no errors', async () => {
    const errs = Object.entries(watched).filter(([, w]) => w.errors.length).map(([k, w]) => `${k}: ${w.errors.slice(0, 3).join(' | ')}`);
    assert.equal(errs.length, 0, errs.join('\n'));
    return Object.entries(watched).map(([k, w]) => `${k} ${w.n}`).join(', ');
});

// ---------------------------------------------------------------- end

await step('clock back to real time; the server still answers', async () => {
    await thaw();
    await publicGet('/api/v1/instrument?symbol=XBTUSD');
});

stopWatching = true;
try {
    await cx.close();
} catch {
    // closing rejects the pending watches, which the loops swallow
}
finish();
process.exit(0); // the adapters have no close(); they would keep the process alive
