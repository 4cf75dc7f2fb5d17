// ccxt_backtest.mjs - a bot on the unmodified ccxt 4.5.82 bitmex client
// driving a stepped backtest over the network: `perpsim backtest --serve`
// on three Tardis files written here (incremental_book_L2, trades,
// derivative_ticker), the clock moved with POST /admin/v1/clock/advance.
// The bot gets, at the times and amounts the data implies:
//   - fills: its 1,000 bid at 42000 joins behind 2,000 of historical size;
//     the tape sells 1,500 (nothing for it), then 1,000 (500 for it, at
//     +20 s), then 600 (its last 500, at +30 s);
//   - funding: the data announces 0.05% for 04:00 (the premium formula
//     would give 0.01%); the long pays |value(1000, mark)| x 0.05%, rounded
//     up, at 04:00:00.000, to the satoshi, and its wallet moves by exactly
//     that;
//   - a liquidation: isolated at 10x, its liquidation price lies between
//     the data's index at 04:30 (40000, nothing happens) and at 05:00
//     (37000): the position is taken over at 05:00:00.000 at its bankruptcy
//     price, whole, and the isolated margin is all it loses.
// Then the report (GET /admin/v1/report) says the same figures, and the
// money audit is exact.
//
// Environment: PERPSIM_BIN, the perpsim binary (run.sh sets it).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ccxt from 'ccxt';
import { makeSteps, ownServer } from './lib.mjs';

const BIN = process.env.PERPSIM_BIN;
if (!BIN) {
    console.error('ccxt_backtest: set PERPSIM_BIN (run.sh does)');
    process.exit(2);
}
const CCXT_VERSION = JSON.parse(readFileSync(new URL('./node_modules/ccxt/package.json', import.meta.url))).version;
assert.equal(CCXT_VERSION, '4.5.82', 'ccxt 4.5.82 is required (npm ci in tests/e2e)');

const S = 'BTC/USD:BTC';
const T0 = 1705287600000; // 2024-01-15T03:00:00Z
const FUNDING = 1705291200000; // 04:00
const us = (ms) => String(ms * 1000);
const iso = (ms) => new Date(ms).toISOString();

// ---------------------------------------------------------------- the data
const dir = mkdtempSync(join(tmpdir(), 'perpsim-ccxt-bt-'));
const tardis = (rows) => rows.map((r) => ['bitmex', 'XBTUSD', ...r].join(',')).join('\n') + '\n';
const book = join(dir, 'book.csv');
writeFileSync(book, 'exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n' + tardis([
    [us(T0), us(T0 + 1), 'true', 'bid', '42000.0', '2000'],
    [us(T0), us(T0 + 1), 'true', 'bid', '41999.5', '5000'],
    [us(T0), us(T0 + 1), 'true', 'bid', '30000.0', '1000000'],
    [us(T0), us(T0 + 1), 'true', 'ask', '42000.5', '2000'],
    [us(T0), us(T0 + 1), 'true', 'ask', '42001.0', '5000'],
]));
const trades = join(dir, 'trades.csv');
writeFileSync(trades, 'exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n' + tardis([
    [us(T0 + 10000), us(T0 + 10001), 't1', 'sell', '42000.0', '1500'],
    [us(T0 + 20000), us(T0 + 20001), 't2', 'sell', '42000.0', '1000'],
    [us(T0 + 30000), us(T0 + 30001), 't3', 'sell', '42000.0', '600'],
]));
const ticker = join(dir, 'ticker.csv');
const H = 3600000;
writeFileSync(ticker, 'exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,' +
    'predicted_funding_rate,open_interest,last_price,index_price,mark_price\n' + tardis([
    [us(T0), us(T0 + 1), us(FUNDING), '0.0005', '0.0001', '1', '42000', '42000.0', '42000'],
    [us(T0 + 1.5 * H), us(T0 + 1.5 * H + 1), us(FUNDING + 8 * H), '0.0001', '0.0001', '1', '42000', '40000.0', '40000'],
    [us(T0 + 2 * H), us(T0 + 2 * H + 1), us(FUNDING + 8 * H), '0.0001', '0.0001', '1', '42000', '37000.0', '37000'],
]));

// ---------------------------------------------------------------- the server
const server = await ownServer(BIN, ['backtest', '--serve', '--data', book, trades, ticker, '--no-demo',
    '--rate-limit', 'off'], { cleanup: () => rmSync(dir, { recursive: true, force: true }) });
const BASE = server.base;
const { admin, stop } = server;
const advance = async (ms) => {
    const c = await admin('POST', 'clock/advance', { to: iso(T0 + ms) });
    assert.equal(c.time, iso(T0 + ms));
};

// value(qty, px) of an inverse contract in XBt, half away from zero, and
// the payer's funding rounded up: BigInt, from the integer 1e-8 price.
const px8 = (x) => BigInt(Math.round(x * 1e8));
const inverseValue = (qty, p8) => {
    const num = BigInt(qty) * 100000000n * 100000000n;
    return (2n * num + p8) / (2n * p8);
};
const fundingPaid = (value, rateE8) => (value * rateE8 + 99999999n) / 100000000n;

const { step, finish } = makeSteps('ccxt_backtest', { onFail: stop });
const acct = await admin('POST', 'accounts', { deposits: { XBt: 1000000 } });
const bot = new ccxt.bitmex({ apiKey: acct.apiKey, secret: acct.apiSecret, timeout: 15000, enableRateLimit: false });
bot.urls.api = { public: BASE, private: BASE };
const mine = {};

await step('the clock starts at the data\'s first row, stepped', async () => {
    const c = await admin('GET', 'clock');
    assert.equal(c.mode, 'stepped');
    assert.equal(c.time, iso(T0));
    await bot.loadMarkets();
});

await step('setLeverage 10 (isolated), then a 1,000 bid at 42000 behind 2,000 of history', async () => {
    await advance(1000);
    await bot.setLeverage(10, S);
    const ob = await bot.fetchOrderBook(S, 5);
    assert.deepEqual(ob.bids[0], [42000, 2000], `the historical bid: ${JSON.stringify(ob.bids)}`);
    const o = await bot.createOrder(S, 'limit', 'buy', 1000, 42000);
    assert.equal(o.status, 'open');
    mine.order = o.id;
});

const fills = async () => (await bot.fetchMyTrades(S)).filter((t) => t.info.execType === 'Trade');

await step('fills when the tape reaches it: 500 at +20 s, 500 at +30 s, at 42000', async () => {
    await advance(15000);
    assert.deepEqual(await fills(), [], 'the 1,500 sold at +10 s were all ahead of it');
    await advance(25000);
    let f = await fills();
    assert.equal(f.length, 1, JSON.stringify(f.map((t) => t.info)));
    assert.equal(f[0].amount, 500);
    assert.equal(f[0].price, 42000);
    assert.equal(f[0].timestamp, T0 + 20000);
    await advance(40000);
    f = await fills();
    assert.deepEqual(f.map((t) => [t.amount, t.price, t.timestamp]), [[500, 42000, T0 + 20000], [500, 42000, T0 + 30000]]);
    const p = (await bot.fetchPositions([S]))[0];
    assert.equal(p.contracts, 1000);
    assert.equal(p.side, 'long');
    mine.liq = p.liquidationPrice;
    assert.ok(mine.liq > 37000 && mine.liq < 40000, `liquidationPrice ${mine.liq} between the data's 37000 and 40000`);
    return `liq ${mine.liq}, bankrupt ${p.info.bankruptPrice}`;
});

await step('the data\'s funding rate is announced: 0.05% for 04:00, 0.01% indicative', async () => {
    const f = await bot.fetchFundingRate(S);
    assert.equal(f.fundingRate, 0.0005);
    assert.equal(f.fundingTimestamp, FUNDING);
    assert.equal(f.nextFundingRate, 0.0001);
});

await step('funding at 04:00:00.000: the long pays 0.05% of its value at the mark, rounded up, to the satoshi', async () => {
    const b0 = await bot.fetchBalance();
    await advance(FUNDING - T0 + 1000);
    const rows = (await bot.fetchMyTrades(S)).filter((t) => t.info.execType === 'Funding');
    assert.equal(rows.length, 1, JSON.stringify(rows.map((t) => t.info)));
    const r = rows[0].info;
    assert.equal(Date.parse(r.timestamp), FUNDING);
    assert.equal(r.commission, 0.0005);
    const mark = r.lastPx;
    assert.ok(mark >= 42000 && mark <= 42000 * 1.0005, `the mark at funding ${mark}: the index 42000 with the basis`);
    const pay = fundingPaid(inverseValue(1000, px8(mark)), 50000n);
    assert.equal(BigInt(r.execComm), pay, `execComm ${r.execComm} vs ${pay} from mark ${mark}`);
    const b1 = await bot.fetchBalance();
    const w0 = BigInt(b0.info[0].walletBalance), w1 = BigInt(b1.info[0].walletBalance);
    assert.equal(w0 - w1, pay, `the wallet moves by the payment: ${w0} -> ${w1}`);
    mine.wallet = w1;
    mine.pay = pay;
    return `paid ${pay} XBt at mark ${mark}`;
});

await step('no liquidation at 04:30 (index 40000); at 05:00:00.000 (index 37000) taken over whole at the bankruptcy price', async () => {
    await advance(1.75 * H);
    let p = (await bot.fetchPositions([S]))[0];
    assert.equal(p.contracts, 1000, 'still long at index 40000');
    mine.margin = BigInt(p.info.posMargin);
    mine.bankrupt = p.info.bankruptPrice; // the funding paid came out of the isolated margin: higher now
    await advance(2 * H + 1000);
    p = (await bot.fetchPositions([S]))[0];
    assert.ok(!p || !p.contracts, `closed: ${JSON.stringify(p && p.info)}`);
    const liq = (await bot.fetchMyTrades(S)).filter((t) => t.info.execType === 'Liquidation');
    assert.equal(liq.length, 1, JSON.stringify(liq.map((t) => t.info)));
    assert.equal(liq[0].timestamp, T0 + 2 * H, 'at the data\'s index row');
    assert.equal(liq[0].amount, 1000);
    assert.equal(liq[0].side, 'sell');
    assert.equal(liq[0].price, mine.bankrupt, 'at the bankruptcy price shown at 04:30');
    const w = BigInt((await bot.fetchBalance()).info[0].walletBalance);
    assert.equal(mine.wallet - w, mine.margin, `the isolated margin ${mine.margin} is all it loses: ${mine.wallet} -> ${w}`);
    return `closed at ${liq[0].price}, lost ${mine.margin} XBt`;
});

await step('the report says the same: 2 fills, 1,000 contracts, the funding paid, 1 liquidation, the wallet; the audit is exact', async () => {
    const rep = await admin('GET', 'report');
    const a = rep.accounts.find((x) => x.account === acct.account);
    assert.ok(a, JSON.stringify(rep));
    assert.equal(a.trades, 2);
    assert.equal(a.volume, 1000);
    assert.equal(a.liquidations, 1);
    assert.equal(BigInt(a.fundingPaid), mine.pay);
    assert.equal(BigInt(a.walletBalance), mine.wallet - mine.margin);
    assert.deepEqual(a.positions, {});
    const audit = await admin('GET', 'audit');
    assert.equal(audit.ok, true, JSON.stringify(audit));
});

await step('SIGTERM: exits 0', async () => {
    const rc = await stop();
    assert.equal(rc, 0, server.log().slice(-2000));
});

finish();
