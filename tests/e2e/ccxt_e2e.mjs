// ccxt_e2e.mjs - drives a running perpsim server with the unmodified ccxt
// 4.5.82 bitmex client through every unified method of the client contract:
// markets and currencies, market data, balances, every order type ccxt can
// build, amend and the cancel family, order and trade history, positions,
// leverage and margin mode, funding and liquidations, and ccxt's error
// mapping; plus a stop triggered and an account liquidated by index moves
// (admin API) and a pooled connection reused after 5 s idle. One line per
// step; the first failure ends the run with exit 1 (E2E_KEEP_GOING=1 runs
// every step and reports all failures at the end).
//
// Environment:
//   PERPSIM_URL          base URL of the server, e.g. http://127.0.0.1:40123
//   PERPSIM_ADMIN_TOKEN  bearer token of the admin API (accounts, index)
//
// Run through run.sh, which starts the server and installs ccxt.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import ccxt from 'ccxt';
import { BASE, ONE_BTC, admin, makeSteps, newAccount, poll, requireEnv, sleep } from './lib.mjs';

requireEnv('ccxt_e2e');

const CCXT_VERSION = JSON.parse(readFileSync(new URL('./node_modules/ccxt/package.json', import.meta.url))).version;
if (CCXT_VERSION !== '4.5.82') {
    console.error(`ccxt_e2e: ccxt ${CCXT_VERSION} is installed, 4.5.82 is required (npm ci in tests/e2e)`);
    process.exit(2);
}

const S = 'BTC/USD:BTC'; // XBTUSD, the inverse perpetual

// ---------------------------------------------------------------- helpers

const { step, finish } = makeSteps('ccxt_e2e');

function client(apiKey, secret) {
    const ex = new ccxt.bitmex({ apiKey, secret, timeout: 15000, enableRateLimit: false });
    // Override urls.api, never setSandboxMode: that copies urls.test (the
    // real testnet) over it.
    ex.urls.api = { public: BASE, private: BASE };
    return ex;
}

// expects fn to throw one of the ccxt error classes
async function expectError(fn, classes, what) {
    let err;
    try {
        await fn();
    } catch (e) {
        err = e;
    }
    assert.ok(err, `${what}: expected ${classes.map((c) => c.name).join(' or ')}, got success`);
    const ok = classes.some((c) => err instanceof c);
    assert.ok(ok, `${what}: expected ${classes.map((c) => c.name).join(' or ')}, got ${err.constructor.name}: ${err.message}`);
    return err;
}

const near = (a, b, tol, what) =>
    assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} is not within ${tol} of ${b}`);
const isNum = (x, what) => assert.ok(typeof x === 'number' && Number.isFinite(x), `${what} is not a number: ${x}`);

async function position(ex, symbol = S) {
    const ps = await ex.fetchPositions([symbol]);
    return ps.find((p) => p.symbol === symbol);
}

// ---------------------------------------------------------------- accounts

let T; // trader
let M; // market maker
let P; // poor account: 1000 XBt
let trader;
let maker;
let poor;
const ids = {}; // order ids shared between steps
const t0 = Date.now();

console.log(`ccxt ${CCXT_VERSION} against ${BASE}`);

await step('admin: create trader, maker and a nearly empty account', async () => {
    T = await newAccount({ XBt: ONE_BTC, USDt: 1000000000 });
    M = await newAccount({ XBt: 10 * ONE_BTC, USDt: 10000000000 });
    P = await newAccount({ XBt: 1000 });
    trader = client(T.apiKey, T.apiSecret);
    maker = client(M.apiKey, M.apiSecret);
    poor = client(P.apiKey, P.apiSecret);
    return `accounts ${T.account}, ${M.account}, ${P.account}`;
});
if (!poor) process.exit(1); // nothing below can run without the accounts

// ---------------------------------------------------------------- markets

await step('loadMarkets: XBTUSD is BTC/USD:BTC, an inverse swap with tick 0.5 and lot 100', async () => {
    const markets = await trader.loadMarkets();
    const m = markets[S];
    assert.ok(m, `no ${S} among ${Object.keys(markets).join(', ')}`);
    assert.equal(m.id, 'XBTUSD');
    assert.equal(m.type, 'swap');
    assert.equal(m.swap, true);
    assert.equal(m.inverse, true);
    assert.equal(m.linear, false);
    assert.equal(m.settle, 'BTC');
    assert.equal(m.active, true);
    assert.equal(m.precision.price, 0.5);
    assert.equal(m.precision.amount, 100);
    assert.ok(m.contractSize > 0, `contractSize ${m.contractSize}`);
    assert.ok(m.limits.leverage.max >= 1, `max leverage ${m.limits.leverage.max}`);
    isNum(m.taker, 'takerFee');
    isNum(m.maker, 'makerFee');
    return Object.keys(markets).join(', ');
});

await step('loadMarkets: ETHUSD, XBTUSDT and a quarterly future are listed', async () => {
    const ms = Object.values(trader.markets);
    const eth = ms.find((m) => m.id === 'ETHUSD');
    assert.ok(eth, 'no ETHUSD market');
    assert.equal(eth.swap, true, 'ETHUSD swap');
    assert.equal(eth.settle, 'BTC', 'ETHUSD settles in XBt');
    const usdt = trader.markets['BTC/USDT:USDT'];
    assert.ok(usdt, 'no BTC/USDT:USDT (XBTUSDT) market');
    assert.equal(usdt.id, 'XBTUSDT');
    assert.equal(usdt.linear, true, 'XBTUSDT linear');
    const fut = ms.find((m) => m.future && m.base === 'BTC');
    assert.ok(fut, 'no BTC future market');
    assert.match(fut.symbol, /^BTC\/USD[T]?:(BTC|USDT)-\d{6}$/, 'future symbol carries -YYMMDD');
    assert.ok(fut.expiry > Date.now(), `future expiry ${fut.expiryDatetime} is in the past`);
    return `ETHUSD=${eth.symbol}, future=${fut.symbol} (${fut.id})`;
});

await step('fetchMarkets', async () => {
    const ms = await trader.fetchMarkets();
    assert.ok(Array.isArray(ms) && ms.length >= 4, `fetchMarkets returned ${ms.length} markets`);
    assert.ok(ms.some((m) => m.symbol === S));
    return `${ms.length} markets`;
});

await step('fetchCurrencies: BTC (XBt, scale 8) and USDT (USDt)', async () => {
    const cs = await trader.fetchCurrencies();
    assert.ok(cs.BTC, `no BTC among ${Object.keys(cs).join(', ')}`);
    assert.equal(cs.BTC.id, 'XBt');
    assert.equal(cs.BTC.precision, 1e-8, 'BTC precision must come from scale 8');
    assert.ok(cs.USDT, 'no USDT currency');
    assert.equal(cs.USDT.id, 'USDt');
    return Object.keys(cs).join(', ');
});

// ---------------------------------------------------------------- errors

await step('error mapping: a bad secret gives AuthenticationError', async () => {
    const bad = client(T.apiKey, 'not-the-secret-' + T.apiSecret.slice(0, 8));
    bad.setMarkets(trader.markets, trader.currencies); // so the first request is GET /user/margin
    const e = await expectError(() => bad.fetchBalance(), [ccxt.AuthenticationError], 'fetchBalance with a bad secret');
    assert.match(e.message, /Signature not valid/);
});

await step('error mapping: an unknown key gives AuthenticationError', async () => {
    const bad = client('no-such-key-0000000000', 'x'.repeat(48));
    const e = await expectError(() => bad.fetchCurrencies(), [ccxt.AuthenticationError], 'signed GET with an unknown key');
    assert.match(e.message, /Invalid API Key\./);
});

await step('error mapping: a bad signature on a public endpoint is rejected too', async () => {
    const bad = client(T.apiKey, 'wrong-secret');
    await expectError(() => bad.fetchMarkets(), [ccxt.AuthenticationError], 'signed GET /instrument/active with a bad secret');
});

await step('error mapping: insufficient balance gives InsufficientFunds', async () => {
    await poor.loadMarkets();
    const e = await expectError(
        () => poor.createOrder(S, 'limit', 'buy', 10000, 59000),
        [ccxt.InsufficientFunds],
        'buy 10000 contracts with 1000 XBt'
    );
    assert.match(e.message, /insufficient Available Balance/);
});

await step('error mapping: cancelling an unknown order is refused (OrderNotFound, InvalidOrder or 404 Not Found)', async () => {
    // BitMEX answers a cancel of an order id it never had with HTTP 404
    // {"error":{"message":"Not Found"}}, which ccxt 4.5.82 has no
    // mapping for: it surfaces as a plain ExchangeError. An order that exists
    // but is done gives OrderNotFound/InvalidOrder (checked further down).
    const e = await expectError(
        () => trader.cancelOrder('00000000-0000-0000-0000-000000000000', S),
        [ccxt.OrderNotFound, ccxt.InvalidOrder, ccxt.ExchangeError],
        'cancelOrder(unknown id)'
    );
    if (!(e instanceof ccxt.OrderNotFound) && !(e instanceof ccxt.InvalidOrder)) {
        assert.match(e.message, /"message":"Not Found"/, `cancelOrder(unknown id): ${e.constructor.name}: ${e.message}`);
    }
    return `${e.constructor.name}: ${e.message}`;
});

await step('error mapping: fetchOrder of an unknown id gives OrderNotFound', async () => {
    await expectError(() => trader.fetchOrder('00000000-0000-0000-0000-000000000000', S), [ccxt.OrderNotFound], 'fetchOrder(unknown id)');
});

await step('error mapping: an unknown symbol is BadSymbol (client side)', async () => {
    await expectError(() => trader.fetchTicker('NOPE/USD:BTC'), [ccxt.BadSymbol], 'fetchTicker(unknown symbol)');
});

// ---------------------------------------------------------------- liquidity

await step('maker: createOrder limit posts two asks and two bids (resting, open)', async () => {
    await maker.loadMarkets();
    const orders = [
        await maker.createOrder(S, 'limit', 'sell', 1000, 60100),
        await maker.createOrder(S, 'limit', 'sell', 2000, 60500),
        await maker.createOrder(S, 'limit', 'buy', 1000, 59900),
        await maker.createOrder(S, 'limit', 'buy', 2000, 59500),
    ];
    for (const o of orders) {
        assert.equal(o.status, 'open', `maker order ${o.id}: status ${o.status} (${o.info.ordStatus})`);
        assert.equal(o.type, 'limit');
        assert.equal(o.timeInForce, 'GTC', 'a limit order defaults to GoodTillCancel');
        assert.equal(o.info.leavesQty, o.info.orderQty);
        assert.equal(o.info.cumQty, 0);
        assert.ok(o.id, 'order id');
    }
    assert.equal(orders[0].side, 'sell');
    assert.equal(orders[0].price, 60100);
    assert.equal(orders[0].cost, 1000, 'inverse: orderQty goes to cost');
    ids.makerAsk = orders[0].id;
    return orders.map((o) => `${o.side} ${o.info.orderQty}@${o.price}`).join(', ');
});

// ---------------------------------------------------------------- market data

await step('fetchOrderBook: best bid 59900, best ask 60100, sorted', async () => {
    const ob = await trader.fetchOrderBook(S);
    assert.equal(ob.symbol, S);
    assert.deepEqual(ob.asks[0], [60100, 1000]);
    assert.deepEqual(ob.bids[0], [59900, 1000]);
    assert.ok(ob.asks.some(([p, a]) => p === 60500 && a === 2000), `asks ${JSON.stringify(ob.asks)}`);
    assert.ok(ob.bids.some(([p, a]) => p === 59500 && a === 2000), `bids ${JSON.stringify(ob.bids)}`);
    for (let i = 1; i < ob.asks.length; i++) assert.ok(ob.asks[i][0] > ob.asks[i - 1][0], 'asks ascending');
    for (let i = 1; i < ob.bids.length; i++) assert.ok(ob.bids[i][0] < ob.bids[i - 1][0], 'bids descending');
    assert.ok(ob.bids[0][0] < ob.asks[0][0], 'book is not crossed');
    return `${ob.bids.length} bids, ${ob.asks.length} asks`;
});

await step('fetchOrderBook with limit: depth=1 gives one level a side', async () => {
    const ob = await trader.fetchOrderBook(S, 1);
    assert.equal(ob.asks.length, 1, `asks ${JSON.stringify(ob.asks)}`);
    assert.equal(ob.bids.length, 1, `bids ${JSON.stringify(ob.bids)}`);
    assert.deepEqual(ob.asks[0], [60100, 1000]);
    assert.deepEqual(ob.bids[0], [59900, 1000]);
    const ob25 = await trader.fetchOrderBook(S, 25);
    assert.equal(ob25.asks.length, 2);
    assert.equal(ob25.bids.length, 2);
});

await step('fetchTicker: bid/ask from the book, a mark price near the 60000 index', async () => {
    const t = await trader.fetchTicker(S);
    assert.equal(t.symbol, S);
    assert.equal(t.bid, 59900);
    assert.equal(t.ask, 60100);
    isNum(t.info.markPrice, 'markPrice');
    near(t.info.markPrice, 60000, 600, 'markPrice');
    assert.ok(t.timestamp > 0, `ticker timestamp ${t.datetime}`);
    return `bid ${t.bid} ask ${t.ask} mark ${t.info.markPrice} last ${t.last}`;
});

await step('fetchTickers: all swaps, with and without a symbol list', async () => {
    const all = await trader.fetchTickers();
    assert.ok(all[S], `no ${S} in ${Object.keys(all).join(', ')}`);
    assert.equal(all[S].bid, 59900);
    assert.ok(all['BTC/USDT:USDT'], 'no BTC/USDT:USDT ticker');
    const some = await trader.fetchTickers([S]);
    assert.deepEqual(Object.keys(some), [S]);
    return Object.keys(all).join(', ');
});

let balance0;
await step('fetchBalance: 1 BTC and 1000 USDT, free == total before trading', async () => {
    const b = await trader.fetchBalance();
    assert.ok(b.BTC, `no BTC in ${JSON.stringify(Object.keys(b))}`);
    isNum(b.BTC.free, 'BTC free');
    isNum(b.BTC.total, 'BTC total');
    assert.equal(b.BTC.total, 1);
    assert.equal(b.BTC.free, 1);
    assert.ok(b.USDT, 'no USDT balance');
    assert.equal(b.USDT.total, 1000);
    assert.ok(Array.isArray(b.info), '/user/margin?currency=all must be an array');
    balance0 = b.BTC;
    return `BTC free ${b.BTC.free} total ${b.BTC.total}, USDT ${b.USDT.total}`;
});

// ---------------------------------------------------------------- trading

await step('createOrder market buy 100: fills at the maker ask, status closed', async () => {
    const o = await trader.createOrder(S, 'market', 'buy', 100);
    ids.market = o.id;
    ids.marketTime = o.timestamp;
    assert.equal(o.status, 'closed', `status ${o.status} (ordStatus ${o.info.ordStatus})`);
    assert.equal(o.type, 'market');
    assert.equal(o.side, 'buy');
    assert.equal(o.info.ordStatus, 'Filled');
    assert.equal(o.info.orderQty, 100);
    assert.equal(o.info.cumQty, 100);
    assert.equal(o.info.leavesQty, 0);
    assert.equal(o.info.avgPx, 60100);
    assert.equal(o.average, 60100);
    near(o.filled, 100 / 60100, 1e-12, 'filled (BTC) = cumQty/avgPx');
    assert.equal(o.timeInForce, 'IOC', 'a market order reports ImmediateOrCancel');
    return `id ${o.id} avgPx ${o.average} filled ${o.filled}`;
});

await step('fetchPositions: a long of 100 contracts at 60100 with a liquidation price', async () => {
    const p = await position(trader);
    assert.ok(p, 'no XBTUSD position');
    assert.equal(p.side, 'long');
    assert.equal(p.contracts, 100);
    // avgEntryPrice = qty * 1e8 / cost, the cost rounded to whole XBt: within a tick of the fill
    near(p.entryPrice, 60100, 0.5, 'entryPrice');
    isNum(p.markPrice, 'markPrice');
    isNum(p.liquidationPrice, 'liquidationPrice');
    assert.ok(p.liquidationPrice > 0 && p.liquidationPrice < 60100, `liquidationPrice ${p.liquidationPrice}`);
    isNum(p.notional, 'notional');
    assert.ok(p.notional > 0);
    assert.ok(p.info.homeNotional > 0, `homeNotional ${p.info.homeNotional}`);
    assert.ok(p.info.foreignNotional < 0, `foreignNotional ${p.info.foreignNotional} (long inverse: < 0)`);
    assert.ok(p.info.currentCost < 0, `currentCost ${p.info.currentCost}`);
    isNum(Number(p.unrealizedPnl), 'unrealizedPnl'); // ccxt leaves it a decimal string
    assert.equal(p.marginMode, 'cross', 'a new account starts in cross margin');
    return `entry ${p.entryPrice} mark ${p.markPrice} liq ${p.liquidationPrice} upnl ${p.unrealizedPnl}`;
});

await step('fetchBalance: BTC total changed after trading (fee, PnL), free < total', async () => {
    const b = await trader.fetchBalance();
    isNum(b.BTC.free, 'BTC free');
    isNum(b.BTC.total, 'BTC total');
    assert.notEqual(b.BTC.total, balance0.total, 'total did not change after a taker fill');
    assert.ok(b.BTC.total < 1, `total ${b.BTC.total}: a taker fill at 60100 with mark ~60000 loses`);
    assert.ok(b.BTC.free < b.BTC.total, `free ${b.BTC.free} not below total ${b.BTC.total} with a position`);
    return `BTC free ${b.BTC.free} total ${b.BTC.total}`;
});

await step('fetchMyTrades: the taker fill with price, amount, order id and fee', async () => {
    const trades = await trader.fetchMyTrades(S);
    const t = trades.find((x) => x.order === ids.market);
    assert.ok(t, `no trade of order ${ids.market} in ${JSON.stringify(trades.map((x) => x.order))}`);
    assert.equal(t.symbol, S);
    assert.equal(t.side, 'buy');
    assert.equal(t.price, 60100);
    assert.equal(t.amount, 100);
    assert.equal(t.takerOrMaker, 'taker');
    assert.ok(t.id, 'trade id (trdMatchID)');
    assert.equal(t.fee.currency, 'BTC');
    assert.ok(t.fee.cost > 0, `taker fee ${t.fee.cost}`);
    assert.equal(t.fee.rate, trader.markets[S].taker, 'commission == takerFee');
    assert.equal(t.type, 'market');
    ids.tradeId = t.id;
    ids.tradeTime = t.timestamp;
    const limited = await trader.fetchMyTrades(S, t0 - 60000, 10);
    assert.ok(limited.some((x) => x.order === ids.market), 'fetchMyTrades(since, limit) misses the fill');
    return `${trades.length} trades, fee ${t.fee.cost}`;
});

await step('maker: fetchMyTrades shows the maker side of the same match', async () => {
    const trades = await maker.fetchMyTrades(S, undefined, 10);
    const t = trades.find((x) => x.id === ids.tradeId);
    assert.ok(t, `no maker trade with trdMatchID ${ids.tradeId}`);
    assert.equal(t.side, 'sell');
    assert.equal(t.order, ids.makerAsk);
    assert.equal(t.price, 60100);
    assert.equal(t.amount, 100);
    assert.equal(t.fee.rate, maker.markets[S].maker, 'commission == makerFee');
    if (maker.markets[S].maker < 0) assert.equal(t.takerOrMaker, 'maker');
});

await step('fetchTicker after the fill: last price and 24 h volumes', async () => {
    const t = await trader.fetchTicker(S);
    assert.equal(t.last, 60100);
    assert.ok(t.baseVolume > 0, `baseVolume (homeNotional24h) ${t.baseVolume}`);
    assert.equal(t.quoteVolume, 100, 'quoteVolume (foreignNotional24h) = 100 USD of contracts');
    assert.equal(t.high, 60100);
    assert.equal(t.low, 60100);
    return `last ${t.last} base ${t.baseVolume} quote ${t.quoteVolume} vwap ${t.vwap}`;
});

await step('fetchTrades: the public trade (no since: reverse=true)', async () => {
    const trades = await trader.fetchTrades(S);
    const t = trades.find((x) => x.id === ids.tradeId);
    assert.ok(t, `trade ${ids.tradeId} not in ${trades.length} public trades`);
    assert.equal(t.price, 60100);
    assert.equal(t.amount, 100);
    assert.equal(t.side, 'buy');
    assert.equal(t.symbol, S);
    return `${trades.length} trades`;
});

await step('fetchTrades with since and limit', async () => {
    const trades = await trader.fetchTrades(S, t0 - 60000, 50);
    assert.ok(trades.some((x) => x.id === ids.tradeId), 'fetchTrades(since) misses the trade');
    for (const x of trades) assert.ok(x.timestamp >= t0 - 60000, `trade ${x.id} at ${x.datetime} is before since`);
    const none = await trader.fetchTrades(S, Date.now() + 3600000, 50);
    assert.equal(none.length, 0, `fetchTrades(since = in an hour) returned ${none.length} trades`);
});

await step('fetchOHLCV(1m, count 10): the candle holding the fill, open-time stamped', async () => {
    const bars = await trader.fetchOHLCV(S, '1m', undefined, 10);
    assert.ok(bars.length >= 1 && bars.length <= 10, `${bars.length} candles`);
    const open = Math.floor(ids.tradeTime / 60000) * 60000;
    const bar = bars.find((b) => b[0] === open);
    assert.ok(bar, `no candle opening at ${new Date(open).toISOString()} in ${JSON.stringify(bars)} ` +
        '(TradeBin timestamps must be bucket END times)');
    const [, o, h, l, c, v] = bar;
    assert.ok(h >= 60100 && l <= 60100, `candle high ${h} low ${l}`);
    assert.ok(o >= l && o <= h && c >= l && c <= h, `candle ${JSON.stringify(bar)}`);
    assert.ok(v >= 100, `volume ${v}`);
    for (const b of bars) assert.equal(b[0] % 60000, 0, 'candle timestamps on the minute');
    return JSON.stringify(bar);
});

await step('fetchOHLCV(1m, since): startTime = since + 1m, the same candle', async () => {
    const open = Math.floor(ids.tradeTime / 60000) * 60000;
    const bars = await trader.fetchOHLCV(S, '1m', open, 10);
    assert.ok(bars.length >= 1, 'no candles since the fill');
    assert.equal(bars[0][0], open, `first candle ${new Date(bars[0][0]).toISOString()}`);
    assert.ok(bars[0][2] >= 60100 && bars[0][3] <= 60100);
    const hourly = await trader.fetchOHLCV(S, '1h', undefined, 2);
    assert.ok(hourly.length >= 1, 'no 1h candle');
    assert.equal(hourly[hourly.length - 1][0] % 3600000, 0);
});

// ---------------------------------------------------------------- orders

await step('createOrder limit with clientOrderId: open, GTC, clOrdID echoed', async () => {
    ids.clLimit = 'e2e-limit-' + Date.now();
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 59000, { clientOrderId: ids.clLimit });
    ids.limit = o.id;
    assert.equal(o.status, 'open', `status ${o.status}`);
    assert.equal(o.clientOrderId, ids.clLimit);
    assert.equal(o.price, 59000);
    assert.equal(o.timeInForce, 'GTC');
    assert.equal(o.info.orderQty, 100);
    assert.equal(o.info.leavesQty, 100);
    assert.equal(o.info.workingIndicator, true);
    assert.equal(o.info.text, 'CCXT', 'text is echoed');
    return o.id;
});

await step('fetchOrder by id', async () => {
    const o = await trader.fetchOrder(ids.limit, S);
    assert.equal(o.id, ids.limit);
    assert.equal(o.status, 'open');
    assert.equal(o.clientOrderId, ids.clLimit);
    assert.equal(o.price, 59000);
});

await step('fetchOpenOrders: holds the resting limit, only open orders', async () => {
    const os = await trader.fetchOpenOrders(S);
    assert.ok(os.some((o) => o.id === ids.limit), 'resting limit missing');
    assert.ok(!os.some((o) => o.id === ids.market), 'the filled market order is listed as open');
    for (const o of os) assert.equal(o.status, 'open', `${o.id} ${o.info.ordStatus}`);
});

await step('editOrder: qty 100 -> 200 and price 59000 -> 59100, same order id', async () => {
    const o = await trader.editOrder(ids.limit, S, 'limit', 'buy', 200, 59100);
    assert.equal(o.id, ids.limit);
    assert.equal(o.info.orderQty, 200);
    assert.equal(o.price, 59100);
    assert.equal(o.status, 'open');
    const f = await trader.fetchOrder(ids.limit, S);
    assert.equal(f.info.orderQty, 200);
    assert.equal(f.info.leavesQty, 200);
    assert.equal(f.price, 59100);
    const ob = await trader.fetchOrderBook(S);
    assert.ok(ob.bids.some(([p, a]) => p === 59100 && a === 200), `book bids ${JSON.stringify(ob.bids)}`);
});

await step('cancelOrder by id: status canceled', async () => {
    const o = await trader.cancelOrder(ids.limit, S);
    assert.equal(o.id, ids.limit);
    assert.equal(o.status, 'canceled', `status ${o.status} (${o.info.ordStatus})`);
    const f = await trader.fetchOrder(ids.limit, S);
    assert.equal(f.status, 'canceled');
});

await step('cancelOrder of an already canceled order gives OrderNotFound or InvalidOrder', async () => {
    await expectError(() => trader.cancelOrder(ids.limit, S), [ccxt.OrderNotFound, ccxt.InvalidOrder], 'second cancel');
});

await step('cancelOrder by clientOrderId', async () => {
    const cl = 'e2e-bycl-' + Date.now();
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 58000, { clientOrderId: cl });
    assert.equal(o.status, 'open');
    const c = await trader.cancelOrder(undefined, S, { clientOrderId: cl });
    assert.equal(c.id, o.id);
    assert.equal(c.clientOrderId, cl);
    assert.equal(c.status, 'canceled');
});

await step('createOrder with a duplicate clientOrderId of an open order gives InvalidOrder', async () => {
    const cl = 'e2e-dup-' + Date.now();
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 58000, { clientOrderId: cl });
    await expectError(() => trader.createOrder(S, 'limit', 'buy', 100, 58000, { clientOrderId: cl }),
        [ccxt.InvalidOrder], 'duplicate clOrdID');
    await trader.cancelOrder(o.id, S);
});

await step('cancelOrders: two ids in one DELETE', async () => {
    const a = await trader.createOrder(S, 'limit', 'buy', 100, 58000);
    const b = await trader.createOrder(S, 'limit', 'buy', 100, 58500);
    const cs = await trader.cancelOrders([a.id, b.id], S);
    assert.equal(cs.length, 2);
    assert.deepEqual(cs.map((o) => o.id).sort(), [a.id, b.id].sort());
    for (const o of cs) assert.equal(o.status, 'canceled');
});

await step('createOrder postOnly that would cross: Canceled, nothing trades', async () => {
    let o;
    try {
        o = await trader.createOrder(S, 'limit', 'buy', 100, 60100, { postOnly: true });
    } catch (e) {
        // A client accepts an HTTP error here as long as nothing trades
        if (!(e instanceof ccxt.ExchangeError)) throw e;
    }
    if (o) {
        assert.equal(o.status, 'canceled', `status ${o.status} (${o.info.ordStatus})`);
        assert.equal(o.postOnly, true);
        assert.equal(o.info.execInst, 'ParticipateDoNotInitiate');
        assert.equal(o.info.cumQty, 0);
        assert.match(o.info.text || '', /ParticipateDoNotInitiate/, 'text explains the cancel');
    }
    const p = await position(trader);
    assert.equal(p.contracts, 100, 'the post-only order traded');
    const ob = await trader.fetchOrderBook(S);
    assert.deepEqual(ob.asks[0], [60100, 900], 'the maker ask was touched');
    return o ? `ordStatus ${o.info.ordStatus}: ${o.info.text}` : 'HTTP error';
});

await step('createOrder postOnly that rests: open with postOnly true', async () => {
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 59000, { postOnly: true });
    assert.equal(o.status, 'open');
    assert.equal(o.postOnly, true);
    await trader.cancelOrder(o.id, S);
});

await step('createOrder reduceOnly that would increase the long: nothing opens', async () => {
    let o;
    try {
        o = await trader.createOrder(S, 'market', 'buy', 100, undefined, { reduceOnly: true });
    } catch (e) {
        if (!(e instanceof ccxt.ExchangeError)) throw e;
    }
    if (o) {
        assert.ok(['canceled', 'rejected'].includes(o.status), `status ${o.status} (${o.info.ordStatus})`);
        assert.equal(o.reduceOnly, true);
        assert.equal(o.info.cumQty, 0);
    }
    const p = await position(trader);
    assert.equal(p.contracts, 100, 'the reduce-only buy increased the position');
    return o ? `ordStatus ${o.info.ordStatus}` : 'HTTP error';
});

await step('createOrder reduceOnly sell that reduces: rests with reduceOnly true', async () => {
    const o = await trader.createOrder(S, 'limit', 'sell', 100, 65000, { reduceOnly: true });
    assert.equal(o.status, 'open', `status ${o.status} (${o.info.ordStatus} ${o.info.text})`);
    assert.equal(o.reduceOnly, true);
    assert.equal(o.info.execInst, 'ReduceOnly');
    await trader.cancelOrder(o.id, S);
});

const triggerOrders = [];
await step('createOrder stop (sell, below): ordType Stop, stopPx, untriggered', async () => {
    const o = await trader.createOrder(S, 'market', 'sell', 100, undefined, { triggerPrice: 55000, triggerDirection: 'below' });
    assert.equal(o.info.ordType, 'Stop');
    assert.equal(o.triggerPrice, 55000);
    assert.equal(o.status, 'open', `status ${o.status} (${o.info.ordStatus})`);
    assert.equal(o.info.workingIndicator, false, 'an untriggered stop is not working');
    triggerOrders.push(o.id);
    return `ordStatus ${o.info.ordStatus}`;
});

await step('createOrder stop-limit (sell, below): ordType StopLimit with price', async () => {
    const o = await trader.createOrder(S, 'limit', 'sell', 100, 54500, { triggerPrice: 55000, triggerDirection: 'below' });
    assert.equal(o.info.ordType, 'StopLimit');
    assert.equal(o.triggerPrice, 55000);
    assert.equal(o.price, 54500);
    assert.equal(o.status, 'open');
    triggerOrders.push(o.id);
});

await step('createOrder market-if-touched (sell, above): ordType MarketIfTouched', async () => {
    const o = await trader.createOrder(S, 'market', 'sell', 100, undefined, { triggerPrice: 65000, triggerDirection: 'above' });
    assert.equal(o.info.ordType, 'MarketIfTouched');
    assert.equal(o.triggerPrice, 65000);
    assert.equal(o.status, 'open');
    triggerOrders.push(o.id);
});

await step('createOrder limit-if-touched (buy, below): ordType LimitIfTouched', async () => {
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 55000, { triggerPrice: 55500, triggerDirection: 'below' });
    assert.equal(o.info.ordType, 'LimitIfTouched');
    assert.equal(o.triggerPrice, 55500);
    assert.equal(o.price, 55000);
    assert.equal(o.status, 'open');
    triggerOrders.push(o.id);
});

await step('createOrder stop (buy, above): ordType Stop', async () => {
    const o = await trader.createOrder(S, 'market', 'buy', 100, undefined, { triggerPrice: 65000, triggerDirection: 'above' });
    assert.equal(o.info.ordType, 'Stop');
    assert.equal(o.triggerPrice, 65000);
    triggerOrders.push(o.id);
});

await step('createOrder trailing stop (sell, 500 below): TrailingStopPeg, pegOffsetValue -500', async () => {
    const o = await trader.createOrder(S, 'market', 'sell', 100, undefined, { trailingAmount: 500, triggerDirection: 'below' });
    assert.equal(o.info.ordType, 'Stop');
    assert.equal(o.info.pegPriceType, 'TrailingStopPeg');
    assert.equal(o.info.pegOffsetValue, -500);
    assert.equal(o.status, 'open');
    if (o.triggerPrice !== undefined) near(o.triggerPrice, 59500, 1000, 'trailing stopPx = reference - 500');
    triggerOrders.push(o.id);
    return `stopPx ${o.info.stopPx}`;
});

await step('fetchOpenOrders lists the untriggered orders', async () => {
    const os = await trader.fetchOpenOrders(S);
    for (const id of triggerOrders) assert.ok(os.some((o) => o.id === id), `trigger order ${id} not listed open`);
    return os.map((o) => `${o.info.ordType}:${o.info.ordStatus}`).join(', ');
});

await step('cancelAllOrders(symbol): cancels every trigger order', async () => {
    const cs = await trader.cancelAllOrders(S);
    assert.ok(Array.isArray(cs));
    for (const id of triggerOrders) {
        const o = cs.find((x) => x.id === id);
        assert.ok(o, `order ${id} not in the cancelAllOrders reply`);
        assert.equal(o.status, 'canceled');
    }
    const os = await trader.fetchOpenOrders(S);
    assert.equal(os.length, 0, `still open: ${os.map((o) => o.id).join(', ')}`);
    return `${cs.length} canceled`;
});

await step('stop buy triggers when the index (and so the mark) rises through stopPx', async () => {
    const o = await trader.createOrder(S, 'market', 'buy', 100, undefined, { triggerPrice: 60300, triggerDirection: 'above' });
    assert.equal(o.info.ordType, 'Stop');
    assert.equal(o.status, 'open');
    ids.stop = o.id;
    await admin('POST', '/admin/v1/index', { symbol: '.BXBT', price: 61000 });
    let f;
    try {
        f = await poll(async () => {
            const x = await trader.fetchOrder(o.id, S);
            return x.status === 'closed' ? x : undefined;
        }, 10000, `stop ${o.id} to trigger and fill`);
    } finally {
        await admin('POST', '/admin/v1/index', { symbol: '.BXBT', price: 60000 });
    }
    assert.equal(f.info.triggered, 'StopOrderTriggered');
    assert.equal(f.info.cumQty, 100);
    assert.equal(f.average, 60100, 'the triggered stop buys the maker ask');
    const p = await position(trader);
    assert.equal(p.contracts, 200);
    return `filled at ${f.average}`;
});

await step('createOrder timeInForce passthrough: ImmediateOrCancel that cannot fill is canceled', async () => {
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 59000, { timeInForce: 'ImmediateOrCancel' });
    assert.equal(o.info.timeInForce, 'ImmediateOrCancel');
    assert.equal(o.timeInForce, 'IOC');
    assert.equal(o.status, 'canceled', `status ${o.status} (${o.info.ordStatus})`);
    assert.equal(o.info.cumQty, 0);
    ids.ioc = o.id;
});

await step('createOrder timeInForce FillOrKill larger than the ask is killed, partial fills none', async () => {
    const ob = await trader.fetchOrderBook(S);
    const [px, avail] = ob.asks[0];
    const o = await trader.createOrder(S, 'limit', 'buy', avail + 100, px, { timeInForce: 'FillOrKill' });
    assert.equal(o.timeInForce, 'FOK');
    assert.equal(o.status, 'canceled', `status ${o.status} (${o.info.ordStatus})`);
    assert.equal(o.info.cumQty, 0);
    const ob2 = await trader.fetchOrderBook(S);
    assert.deepEqual(ob2.asks[0], [px, avail], 'the FOK order traded');
});

await step('fetchOrders: every order so far, oldest first', async () => {
    const os = await trader.fetchOrders(S);
    for (const id of [ids.market, ids.limit, ids.ioc, ids.stop, ...triggerOrders]) {
        assert.ok(os.some((o) => o.id === id), `order ${id} missing from fetchOrders`);
    }
    for (let i = 1; i < os.length; i++) assert.ok(os[i].timestamp >= os[i - 1].timestamp, 'not oldest first');
    assert.equal(os[0].id, ids.market, 'the oldest order (the market buy) comes first');
    const lim = await trader.fetchOrders(S, t0 - 60000, 3);
    assert.equal(lim.length, 3, `fetchOrders(since, limit 3) returned ${lim.length}`);
    return `${os.length} orders`;
});

await step('fetchClosedOrders: filled and canceled orders only', async () => {
    const os = await trader.fetchClosedOrders(S);
    assert.ok(os.length > 0);
    for (const o of os) assert.ok(['closed', 'canceled'].includes(o.status), `${o.id} is ${o.status}`);
    assert.ok(os.some((o) => o.id === ids.market && o.status === 'closed'), 'the filled market buy is missing');
    assert.ok(os.some((o) => o.id === ids.limit && o.status === 'canceled'), 'the canceled limit is missing');
    return `${os.length} closed/canceled`;
});

// ccxt 4.5.82 divides the timeout by 1000 and sends {"timeout":60} for
// cancelAllOrdersAfter(60000), while BitMEX reads `timeout` in milliseconds
// (as its API documents): a 60 ms dead man's switch. Checked as BitMEX would serve it.
await step('cancelAllOrdersAfter(60000): ccxt sends timeout 60, the switch fires after 60 ms', async () => {
    const o = await trader.createOrder(S, 'limit', 'buy', 100, 58000);
    assert.equal(o.status, 'open');
    const r = await trader.cancelAllOrdersAfter(60000);
    assert.ok(r.now && r.cancelTime, `reply ${JSON.stringify(r)}`);
    const d = Date.parse(r.cancelTime) - Date.parse(r.now);
    near(d, 60, 2, 'cancelTime - now (ms) for {"timeout":60}');
    const f = await poll(async () => {
        const x = await trader.fetchOrder(o.id, S);
        return x.status === 'canceled' ? x : undefined;
    }, 5000, 'the dead man\'s switch to cancel the order');
    return `${JSON.stringify(r)}; order canceled: ${f.info.text}`;
});

await step('cancelAllOrdersAfter(60000000): armed for 60 s, then disarmed with 0', async () => {
    const r = await trader.cancelAllOrdersAfter(60000000);
    const d = Date.parse(r.cancelTime) - Date.parse(r.now);
    near(d, 60000, 2, 'cancelTime - now (ms) for {"timeout":60000}');
    const off = await trader.cancelAllOrdersAfter(0);
    assert.ok(off && typeof off === 'object', `disarm reply ${JSON.stringify(off)}`);
    return `disarm reply ${JSON.stringify(off)}`;
});

await step('cancelAllOrders() without a symbol (DELETE /order/all, no body)', async () => {
    const a = await trader.createOrder(S, 'limit', 'buy', 100, 58000);
    const cs = await trader.cancelAllOrders();
    assert.ok(cs.some((o) => o.id === a.id && o.status === 'canceled'), 'order not canceled');
    const os = await trader.fetchOpenOrders(S);
    assert.equal(os.length, 0);
});

// ---------------------------------------------------------------- leverage

await step('setLeverage(10): isolated at 10x', async () => {
    const r = await trader.setLeverage(10, S);
    assert.equal(r.symbol, 'XBTUSD');
    assert.equal(r.leverage, 10);
    assert.equal(r.crossMargin, false);
    const p = await position(trader);
    assert.equal(p.leverage, 10);
    assert.equal(p.marginMode, 'isolated');
    assert.ok(p.liquidationPrice > 50000 && p.liquidationPrice < 60100, `10x long liquidationPrice ${p.liquidationPrice}`);
    return `liq ${p.liquidationPrice}`;
});

await step('fetchLeverages: 10 for BTC/USD:BTC', async () => {
    const ls = await trader.fetchLeverages([S]);
    assert.ok(ls[S], `no ${S} in ${JSON.stringify(Object.keys(ls))}`);
    assert.equal(ls[S].longLeverage, 10);
    assert.equal(ls[S].shortLeverage, 10);
});

await step('setMarginMode(cross) then setMarginMode(isolated)', async () => {
    const c = await trader.setMarginMode('cross', S);
    assert.equal(c.crossMargin, true);
    let p = await position(trader);
    assert.equal(p.marginMode, 'cross');
    const i = await trader.setMarginMode('isolated', S);
    assert.equal(i.crossMargin, false);
    p = await position(trader);
    assert.equal(p.marginMode, 'isolated');
    assert.ok(p.liquidationPrice > 0);
});

await step('closePosition(sell): execInst Close, the long is flat', async () => {
    const before = await position(trader);
    const o = await trader.closePosition(S, 'sell');
    assert.equal(o.status, 'closed', `status ${o.status} (${o.info.ordStatus} ${o.info.text})`);
    assert.equal(o.info.execInst, 'Close');
    assert.equal(o.reduceOnly, true);
    assert.equal(o.info.cumQty, before.contracts);
    assert.equal(o.average, 59900, 'closes into the maker bid');
    const p = await position(trader);
    assert.ok(!p || p.contracts === 0, `position after close: ${p && p.contracts}`);
    return `${o.info.cumQty} at ${o.average}`;
});

// ---------------------------------------------------------------- funding, liquidations

await step('fetchFundingRate: XBTUSD rate, next funding time, mark', async () => {
    const f = await trader.fetchFundingRate(S);
    assert.equal(f.symbol, S);
    isNum(f.fundingRate, 'fundingRate');
    isNum(f.markPrice, 'markPrice');
    assert.ok(f.fundingTimestamp > Date.now(), `fundingTimestamp ${f.fundingDatetime} is not in the future`);
    assert.ok(f.fundingTimestamp - Date.now() <= 8 * 3600000 + 60000, `fundingTimestamp ${f.fundingDatetime} more than 8 h away`);
    return `rate ${f.fundingRate} next ${f.fundingDatetime} indicative ${f.nextFundingRate}`;
});

await step('fetchFundingRates: swaps only', async () => {
    const fs = await trader.fetchFundingRates();
    assert.ok(fs[S], `no ${S} in ${Object.keys(fs).join(', ')}`);
    for (const [sym, f] of Object.entries(fs)) {
        assert.equal(trader.markets[sym].swap, true, `${sym} is not a swap`);
        isNum(f.fundingRate, `${sym} fundingRate`);
    }
    const one = await trader.fetchFundingRates([S]);
    assert.deepEqual(Object.keys(one), [S]);
    return Object.keys(fs).join(', ');
});

await step('fetchFundingRateHistory (reverse=true, then since/limit)', async () => {
    const h = await trader.fetchFundingRateHistory(S);
    assert.ok(Array.isArray(h));
    for (const r of h) {
        assert.equal(r.symbol, S);
        isNum(r.fundingRate, 'fundingRate');
        assert.ok(r.timestamp > 0);
    }
    const h2 = await trader.fetchFundingRateHistory(S, Date.now() - 7 * 86400000, 5);
    assert.ok(Array.isArray(h2) && h2.length <= 5);
    return `${h.length} rows`;
});

await step('fetchLiquidations (no since, then epoch-ms since/until and limit)', async () => {
    const l = await trader.fetchLiquidations(S);
    assert.ok(Array.isArray(l));
    for (const x of l) assert.equal(x.symbol, S);
    const l2 = await trader.fetchLiquidations(S, Date.now() - 3600000, 10, { until: Date.now() + 1000 });
    assert.ok(Array.isArray(l2) && l2.length <= 10);
    return `${l.length} rows`;
});

await step('keep-alive: a pooled connection idle for 5 s is still usable (no "other side closed")', async () => {
    // undici keeps ccxt's sockets for 4 s by default unless the server says
    // Keep-Alive: timeout=N; a server that drops idle sockets sooner without
    // Connection: close makes the next request fail.
    await trader.fetchTicker(S);
    await sleep(5000);
    const t = await trader.fetchTicker(S);
    assert.equal(t.symbol, S);
    await sleep(1000);
    await trader.fetchBalance();
});

// ---------------------------------------------------------------- wrap up

await step('maker: cancelAllOrders leaves the book empty', async () => {
    await maker.cancelAllOrders(S);
    const ob = await trader.fetchOrderBook(S);
    assert.equal(ob.bids.length + ob.asks.length, 0, `book not empty: ${JSON.stringify(ob)}`);
});

await step('liquidation: a 0.002 BTC account long 1000 at 60100 is liquidated when the index falls to 50000', async () => {
    const V = await newAccount({ XBt: 200000 });
    const victim = client(V.apiKey, V.apiSecret);
    await victim.loadMarkets();
    await maker.createOrder(S, 'limit', 'sell', 1000, 60100);
    const o = await victim.createOrder(S, 'market', 'buy', 1000);
    assert.equal(o.status, 'closed');
    const p = await position(victim);
    assert.equal(p.contracts, 1000);
    assert.ok(p.liquidationPrice > 50000 && p.liquidationPrice < 60100, `liquidationPrice ${p.liquidationPrice}`);
    ids.liqPrice = p.liquidationPrice;
    ids.bankruptPrice = p.info.bankruptPrice;
    await admin('POST', '/admin/v1/index', { symbol: '.BXBT', price: 50000 });
    try {
        await poll(async () => {
            const q = await position(victim);
            return q && q.contracts === 0;
        }, 10000, 'the position to be liquidated');
        const trades = await victim.fetchMyTrades(S);
        const close = trades.find((t) => t.info.execType === 'Liquidation');
        assert.ok(close, `no Liquidation execution in the victim's history: ${JSON.stringify(trades.map((t) => t.info))}`);
        assert.equal(close.amount, 1000);
        near(close.price, ids.bankruptPrice, 0.5, 'the long is closed at the bankruptcy price');
        // closing a long is a sell: side Sell, execCost > 0, homeNotional < 0
        assert.equal(close.side, 'sell', `the Liquidation execution closing a long has side ${close.info.side}, ` +
            `execCost ${close.info.execCost}, homeNotional ${close.info.homeNotional}, foreignNotional ${close.info.foreignNotional}`);
        assert.ok(close.info.execCost > 0 && close.info.homeNotional < 0 && close.info.foreignNotional > 0,
            `signs of a buy on the closing sell: execCost ${close.info.execCost} homeNotional ${close.info.homeNotional} ` +
            `foreignNotional ${close.info.foreignNotional}`);
        ids.liqClose = close.price;
        const b = await victim.fetchBalance();
        assert.ok(b.BTC.total >= 0, `balance below zero after liquidation: ${b.BTC.total}`);
        const l = await trader.fetchLiquidations(S);
        const row = l.find((x) => x.side === 'sell');
        assert.ok(row, `no liquidation row in ${JSON.stringify(l.map((x) => x.info))}`);
        isNum(row.price, 'liquidation price');
        ids.liqRow = row.info;
    } finally {
        await admin('POST', '/admin/v1/index', { symbol: '.BXBT', price: 60000 });
    }
    return `liq ${ids.liqPrice} bankrupt ${ids.bankruptPrice}; closed at ${ids.liqClose}; ` +
        `/liquidation row ${JSON.stringify(ids.liqRow)}`;
});

await step('fetchBalance at the end: no margin in use, total below the deposit', async () => {
    const b = await trader.fetchBalance();
    assert.ok(b.BTC.total < 1, `total ${b.BTC.total}`);
    near(b.BTC.free, b.BTC.total, 1e-8, 'free == total when flat with no orders');
    return `BTC ${b.BTC.total}`;
});

finish();
