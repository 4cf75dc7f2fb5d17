// ws_abuse.mjs - the realtime WebSocket API (/realtime) message by message,
// with the raw `ws` package: the welcome, both heartbeats, subscribing in the
// URL and with op subscribe (args as a string and as an array: one ack per
// topic, then its partial), unsubscribe, BitMEX's error replies
// ({"status","error","meta","request"}), the three ways to authenticate (URL
// query, handshake headers, authKeyExpires with seconds or milliseconds) and
// their failures, cancelAllAfter over the socket; then abuse: an oversized
// frame, a binary frame and floods of 10,000 messages. After each abuse a
// fresh connection must still work, a connection opened before it must still
// answer, and GET /api/v1/instrument must still answer. One line per step;
// exit 1 on failure (E2E_KEEP_GOING=1 runs every step).
//
// Environment: PERPSIM_URL, PERPSIM_ADMIN_TOKEN (run.sh sets them).

import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
    ONE_BTC, WSURL, api, hmacHex, makeSteps, newAccount, poll, publicGet, requireEnv, sleep,
} from './lib.mjs';

requireEnv('ws_abuse');
const { step, finish } = makeSteps('ws_abuse');
const SYM = 'XBTUSD';
const J = (x) => JSON.stringify(x);
const WAIT = 8000; // a partial of orderBookL2/instrument may take ~2.5 s on BitMEX

const WATCHDOG_MS = Number(process.env.E2E_WS_TIMEOUT_MS || 300000);
setTimeout(() => {
    console.log(`FAIL  ws_abuse did not finish within ${WATCHDOG_MS} ms`);
    process.exit(1);
}, WATCHDOG_MS).unref();

// ---------------------------------------------------------------- a raw connection

// conn(url, {headers}) resolves once open, with:
//   msgs: [{m (parsed JSON or the raw string), raw, binary}], pongs, closed ({code, reason} once closed)
//   next(pred, ms, what): the first message from the cursor on that matches
//     (the cursor moves past it); throws on timeout or close
//   send(obj or string), close()
// It rejects with err.status / err.body when the upgrade is answered with HTTP.
const conns = [];
function conn(url = WSURL, { headers, maxPayload } = {}) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { headers, maxPayload: maxPayload || 512 * 1024 * 1024 });
        const c = { ws, msgs: [], pongs: [], closed: undefined, cursor: 0, waiters: new Set(), errors: [] };
        const wake = () => c.waiters.forEach((w) => w());
        ws.on('message', (data, binary) => {
            const raw = binary ? data : data.toString();
            let m = raw;
            if (!binary) {
                try {
                    m = JSON.parse(raw);
                } catch {
                    // a text frame that is not JSON ("pong")
                }
            }
            c.msgs.push({ m, raw, binary });
            wake();
        });
        ws.on('pong', (d) => {
            c.pongs.push(d.toString());
            wake();
        });
        let opened = false;
        ws.on('close', (code, reason) => {
            c.closed = { code, reason: reason.toString() };
            if (!opened) reject(new Error(`closed before the upgrade completed (${code} ${reason}); ${J(c.errors)}`));
            wake();
        });
        ws.on('unexpected-response', (req, res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => {
                req.destroy();
                const e = new Error(`upgrade answered HTTP ${res.statusCode}: ${body.slice(0, 300)}`);
                e.status = res.statusCode;
                e.body = body;
                reject(e);
            });
        });
        ws.on('error', (e) => {
            c.errors.push(e.message);
            if (!opened) reject(e);
            wake();
        });
        ws.on('open', () => {
            opened = true;
            resolve(c);
        });
        c.send = (x) => ws.send(typeof x === 'string' ? x : J(x));
        c.close = () => {
            try {
                ws.terminate();
            } catch {
                // already gone
            }
        };
        c.next = (pred, ms = WAIT, what = 'a message') => new Promise((res, rej) => {
            let timer;
            const check = () => {
                for (; c.cursor < c.msgs.length; c.cursor++) {
                    const x = c.msgs[c.cursor];
                    if (pred(x.m, x)) {
                        c.cursor++;
                        done();
                        res(x.m);
                        return;
                    }
                }
                if (c.closed) {
                    done();
                    rej(new Error(`connection closed (${c.closed.code} ${c.closed.reason}) while waiting for ${what}; got ${recent(c)}`));
                }
            };
            const done = () => {
                clearTimeout(timer);
                c.waiters.delete(check);
            };
            timer = setTimeout(() => {
                done();
                rej(new Error(`no ${what} within ${ms} ms; got ${recent(c)}`));
            }, ms);
            c.waiters.add(check);
            check();
        });
        // waits for the close and returns {code, reason}
        c.waitClose = (ms = WAIT) => poll(() => c.closed, ms, 'the close');
        conns.push(c);
    });
}
const recent = (c) => J(c.msgs.slice(-4).map((x) => (x.binary ? '<binary>' : String(x.raw).slice(0, 300))));

// a connection past its welcome message
async function welcomed(url, opts) {
    const c = await conn(url, opts);
    c.welcome = await c.next((m) => m && m.info !== undefined, WAIT, 'the welcome message');
    return c;
}

const isAck = (topic, verb = 'subscribe') => (m) => Boolean(m && typeof m === 'object' && m[verb] === topic && 'success' in m);
const isPartial = (table) => (m) => m && m.table === table && m.action === 'partial';
const isErr = (m) => m && typeof m === 'object' && 'error' in m && 'status' in m;

// {"status":S,"error":E,"meta":{...},"request":R}, the shape every error has
function errShape(m, status, what) {
    assert.ok(isErr(m), `${what}: not an error reply: ${J(m)}`);
    assert.equal(m.status, status, `${what}: status ${m.status} (want ${status}): ${J(m)}`);
    assert.equal(typeof m.error, 'string', `${what}: error is not a string: ${J(m)}`);
    assert.ok(m.meta && typeof m.meta === 'object' && !Array.isArray(m.meta), `${what}: meta is not an object: ${J(m)}`);
    assert.ok('request' in m, `${what}: no request: ${J(m)}`);
}

// subscribe in one message; one ack per topic, each before its partial.
async function subscribe(c, args, topics = Array.isArray(args) ? args : [args]) {
    const req = { op: 'subscribe', args };
    const from = c.cursor;
    c.send(req);
    const out = {};
    for (const t of topics) {
        c.cursor = from;
        const ack = await c.next(isAck(t), WAIT, `the ack of ${t}`);
        const ackAt = c.cursor - 1;
        assert.equal(ack.success, true, `ack of ${t}: ${J(ack)}`);
        assert.deepEqual(ack.request, req, `ack of ${t}: request is not the request as sent`);
        const table = t.split(':')[0];
        c.cursor = from;
        const partial = await c.next((m) => isPartial(table)(m) && (!t.includes(':') || (m.filter && m.filter.symbol === t.split(':')[1])), WAIT, `the partial of ${t}`);
        const partialAt = c.cursor - 1;
        assert.ok(ackAt < partialAt, `${t}: the partial (message ${partialAt}) came before its ack (message ${ackAt})`);
        out[t] = { ack, partial };
    }
    c.cursor = c.msgs.length;
    return out;
}

// the partial's envelope as BitMEX sends it
function partialShape(p, keys, filter, what) {
    for (const k of ['table', 'action', 'keys', 'types', 'foreignKeys', 'attributes', 'filter', 'data']) {
        assert.ok(k in p, `${what} partial has no "${k}": ${J(p).slice(0, 400)}`);
    }
    assert.deepEqual(p.keys, keys, `${what} partial keys`);
    for (const k of ['types', 'foreignKeys', 'attributes', 'filter']) {
        assert.ok(p[k] && typeof p[k] === 'object' && !Array.isArray(p[k]), `${what} partial ${k} is not an object: ${J(p[k])}`);
    }
    assert.deepEqual(p.filter, filter, `${what} partial filter`);
    assert.ok(Array.isArray(p.data), `${what} partial data is not an array`);
    for (const k of keys) assert.ok(k in p.types, `${what} partial types has no key field ${k}: ${J(p.types)}`);
    // BitMEX declares every field of the table in types; gaps are collected
    // here and failed in one step at the end, table by table
    const gaps = (typeGaps[p.table] = typeGaps[p.table] || new Set());
    for (const r of p.data) for (const f of Object.keys(r)) if (!(f in p.types)) gaps.add(f);
}
const typeGaps = {}; // table -> fields seen in partial rows but missing from types

const wsAuth = (acct, expires) => ({ op: 'authKeyExpires', args: [acct.apiKey, expires, hmacHex(acct.apiSecret, 'GET/realtime' + expires)] });
const nowS = () => Math.floor(Date.now() / 1000);

// the server still serves: a fresh connection, the bystander, REST
let bystander;
async function healthy() {
    const c = await welcomed();
    c.send('ping');
    await c.next((m) => m === 'pong', WAIT, '"pong" on a fresh connection');
    await subscribe(c, ['instrument:XBTUSD']);
    c.close();
    if (bystander) {
        assert.equal(bystander.closed, undefined, `the bystander connection was closed: ${J(bystander.closed)}`);
        bystander.send('ping');
        await bystander.next((m) => m === 'pong', WAIT, '"pong" on the bystander connection');
    }
    const inst = await publicGet('/api/v1/instrument?symbol=XBTUSD');
    assert.equal(inst[0].symbol, SYM);
    return 'fresh connection, bystander and REST fine';
}

// ---------------------------------------------------------------- accounts

let X; // authenticates
let Y; // makes trades against X
await step('admin: two accounts with keys', async () => {
    X = await newAccount({ XBt: ONE_BTC });
    Y = await newAccount({ XBt: ONE_BTC });
    // a two-sided book and a trade, so the partials have rows
    await api(Y, 'POST', '/order', { symbol: SYM, side: 'Sell', orderQty: 300, price: 61000, ordType: 'Limit' });
    await api(Y, 'POST', '/order', { symbol: SYM, side: 'Buy', orderQty: 300, price: 59000, ordType: 'Limit' });
    await api(X, 'POST', '/order', { symbol: SYM, side: 'Buy', orderQty: 100, price: 61000, ordType: 'Limit' });
    return `X=${X.account} Y=${Y.account}`;
});
if (!Y) process.exit(1);

// ---------------------------------------------------------------- connection level

await step('welcome: info, version, timestamp, docs, limit.remaining', async () => {
    const c = await welcomed();
    const w = c.welcome;
    assert.equal(w.info, 'Welcome to the BitMEX Realtime API.');
    assert.equal(typeof w.version, 'string', `version ${J(w.version)}`);
    assert.match(String(w.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'timestamp is ISO-8601 with ms');
    assert.ok(Math.abs(Date.parse(w.timestamp) - Date.now()) < 24 * 3600000, `timestamp ${w.timestamp} is not today`);
    assert.equal(typeof w.docs, 'string', `docs ${J(w.docs)}`);
    assert.ok(w.limit && Number.isInteger(w.limit.remaining) && w.limit.remaining >= 0, `limit ${J(w.limit)}`);
    assert.equal(c.cursor, 1, 'the welcome is the first message');
    bystander = c; // kept open through the abuse below
    await subscribe(bystander, ['instrument:XBTUSD']);
    return J(w);
});

await step('heartbeat: text "ping" -> text "pong"', async () => {
    const c = await welcomed();
    c.send('ping');
    const m = await c.next((x, raw) => !raw.binary && raw.raw === 'pong', WAIT, 'the text "pong"');
    assert.equal(m, 'pong');
    c.close();
});

await step('heartbeat: a ping frame -> a pong frame with the same payload', async () => {
    const c = await welcomed();
    c.ws.ping('perpsim-1');
    await poll(() => c.pongs.length > 0, WAIT, 'a pong frame');
    assert.equal(c.pongs[0], 'perpsim-1');
    c.close();
});

// ---------------------------------------------------------------- subscribe

await step('URL ?subscribe=trade:XBTUSD,instrument: an ack and a partial for each', async () => {
    const c = await conn(`${WSURL}?subscribe=trade:XBTUSD,instrument`);
    const w = await c.next((m) => m && m.info !== undefined, WAIT, 'the welcome');
    const out = [];
    for (const [t, table, filter, keys] of [['trade:XBTUSD', 'trade', { symbol: SYM }, []], ['instrument', 'instrument', {}, ['symbol']]]) {
        c.cursor = 0;
        const ack = await c.next(isAck(t), WAIT, `the ack of ${t}`);
        assert.equal(ack.success, true, J(ack));
        c.cursor = 0;
        const p = await c.next(isPartial(table), WAIT, `the ${table} partial`);
        partialShape(p, keys, filter, table);
        out.push(`${t}: ack ${J(ack)}, partial ${p.data.length} rows`);
    }
    c.cursor = 0;
    const inst = (await c.next(isPartial('instrument'))).data;
    assert.ok(inst.some((r) => r.symbol === SYM), 'the instrument partial (no symbol) has no XBTUSD');
    assert.ok(w.info);
    c.close();
    return out.join('; ');
});

await step('op subscribe, args a string: {"success":true,"subscribe":T,"request":<as sent>} then the partial (keys, types, foreignKeys, attributes, filter, data)', async () => {
    const c = await welcomed();
    const { ack, partial } = (await subscribe(c, 'orderBookL2_25:XBTUSD'))['orderBookL2_25:XBTUSD'];
    const extra = Object.keys(ack).filter((k) => !['success', 'subscribe', 'request'].includes(k));
    partialShape(partial, ['symbol', 'id', 'side'], { symbol: SYM }, 'orderBookL2_25');
    assert.ok(partial.data.length >= 2, `orderBookL2_25 partial has ${partial.data.length} rows`);
    for (const r of partial.data) for (const f of ['symbol', 'id', 'side', 'size', 'price']) assert.ok(f in r, `row without ${f}: ${J(r)}`);
    c.close();
    return `ack ${J(ack)}${extra.length ? ' (extra keys ' + extra.join(',') + ')' : ''}; ${partial.data.length} rows`;
});

await step('op subscribe, args an array of three topics: three acks with the request as sent, each before its partial', async () => {
    const c = await welcomed();
    const topics = ['trade:XBTUSD', 'instrument:XBTUSD', 'orderBookL2:XBTUSD'];
    const out = await subscribe(c, topics);
    partialShape(out['trade:XBTUSD'].partial, [], { symbol: SYM }, 'trade');
    assert.ok(out['trade:XBTUSD'].partial.data.length > 0, 'the trade partial is empty though XBTUSD traded');
    partialShape(out['instrument:XBTUSD'].partial, ['symbol'], { symbol: SYM }, 'instrument');
    partialShape(out['orderBookL2:XBTUSD'].partial, ['symbol', 'id', 'side'], { symbol: SYM }, 'orderBookL2');
    const rest = await publicGet(`/api/v1/orderBook/L2?symbol=${SYM}&depth=0`);
    const ids = (rows) => rows.map((r) => `${r.id}/${r.side}/${r.size}/${r.price}`).sort();
    assert.deepEqual(ids(out['orderBookL2:XBTUSD'].partial.data), ids(rest), 'the orderBookL2 partial is not the REST book');
    c.close();
    return topics.map((t) => `${t} ${out[t].partial.data.length} rows`).join(', ');
});

await step('op unsubscribe: {"success":true,"unsubscribe":T,"request":<as sent>}, then no more rows of T', async () => {
    const c = await welcomed();
    const d = await welcomed();
    await subscribe(c, ['trade:XBTUSD']);
    await subscribe(d, ['trade:XBTUSD']);
    const req = { op: 'unsubscribe', args: ['trade:XBTUSD'] };
    c.send(req);
    const ack = await c.next(isAck('trade:XBTUSD', 'unsubscribe'), WAIT, 'the unsubscribe ack');
    assert.equal(ack.success, true, J(ack));
    assert.deepEqual(ack.request, req);
    const mark = c.msgs.length;
    await api(X, 'POST', '/order', { symbol: SYM, side: 'Buy', orderQty: 100, price: 61000, ordType: 'Limit' });
    await d.next((m) => m && m.table === 'trade' && m.action === 'insert', WAIT, 'the trade on the still subscribed connection');
    await sleep(1000);
    const late = c.msgs.slice(mark).filter((x) => x.m && x.m.table === 'trade');
    assert.equal(late.length, 0, `trade rows after unsubscribe: ${J(late.map((x) => x.m))}`);
    c.close();
    d.close();
    return J(ack);
});

await step('subscribing twice to one topic (BitMEX: a 400 error; noted, not failed)', async () => {
    const c = await welcomed();
    await subscribe(c, ['trade:XBTUSD']);
    c.send({ op: 'subscribe', args: ['trade:XBTUSD'] });
    const m = await c.next((x) => isErr(x) || isAck('trade:XBTUSD')(x), WAIT, 'an error or an ack');
    c.close();
    return `got ${J(m)}`;
});

// ---------------------------------------------------------------- errors

await step('error: unknown table -> {"status":400,"error":"Unknown table: nope","meta":{},"request":<as sent>}', async () => {
    const c = await welcomed();
    const req = { op: 'subscribe', args: ['nope'] };
    c.send(req);
    const m = await c.next(isErr, WAIT, 'the error');
    assert.deepEqual(m, { status: 400, error: 'Unknown table: nope', meta: {}, request: req });
    c.close();
});

await step('error: unknown symbol -> status 400 with meta and the request', async () => {
    const c = await welcomed();
    const req = { op: 'subscribe', args: ['trade:NOPEUSD'] };
    c.send(req);
    const m = await c.next((x) => isErr(x) || isAck('trade:NOPEUSD')(x), WAIT, 'the error');
    errShape(m, 400, 'trade:NOPEUSD');
    assert.deepEqual(m.request, req);
    c.close();
    return J(m);
});

await step('error: a long symbol is quoted without cutting a character (valid UTF-8 on the wire)', async () => {
    // Found by tests/fuzz/fuzz_wsmsg.c: the error quoted 40 bytes of the
    // symbol, which cut the 2-byte É in half; the client then closes 1007.
    const c = await welcomed();
    const topic = 'orderBookL2:a' + '\u00c9'.repeat(30);
    const req = { op: 'subscribe', args: [topic] };
    c.send(req);
    const m = await c.next(isErr, WAIT, 'the error');
    assert.equal(c.closed, undefined, `the connection closed: ${J(c.closed)}`);
    assert.equal(m.error, 'Unknown or expired symbol: a' + '\u00c9'.repeat(19));
    assert.deepEqual(m.request, req);
    c.send('ping');
    await c.next((x) => x === 'pong', WAIT, '"pong" after the error');
    c.close();
    return J(m);
});

await step('error: malformed JSON -> status 400, the connection stays usable', async () => {
    const c = await welcomed();
    c.send('{"op": "subscribe", "args": [');
    const m = await c.next(isErr, WAIT, 'the error');
    errShape(m, 400, 'malformed JSON');
    c.send('ping');
    await c.next((x) => x === 'pong', WAIT, '"pong" after the bad message');
    c.close();
    return J(m);
});

await step('error: unknown op -> status 400 "Unrecognized request..." with the request', async () => {
    const c = await welcomed();
    const req = { op: 'frobnicate', args: ['x'] };
    c.send(req);
    const m = await c.next(isErr, WAIT, 'the error');
    errShape(m, 400, 'unknown op');
    assert.match(m.error, /^Unrecognized request/);
    assert.deepEqual(m.request, req);
    c.close();
    return m.error;
});

const LOCKED = 'User requested an account-locked subscription but no authorization was provided.';
await step('error: a private table without auth -> 401 "User requested an account-locked subscription but no authorization was provided."', async () => {
    const c = await welcomed();
    const out = [];
    for (const req of [{ op: 'subscribe', args: 'position' }, { op: 'subscribe', args: ['order:XBTUSD'] }]) {
        c.send(req);
        const m = await c.next((x) => isErr(x) || (x && typeof x === 'object' && 'success' in x), WAIT, `the error for ${J(req.args)}`);
        errShape(m, 401, J(req.args));
        assert.equal(m.error, LOCKED);
        assert.deepEqual(m.request, req);
        out.push(J(m.meta));
    }
    c.close();
    return `meta ${out.join(', ')}`;
});

// ---------------------------------------------------------------- auth

await step('authKeyExpires with a bad signature -> 401 "Signature not valid.", the connection stays usable', async () => {
    const c = await welcomed();
    const req = { op: 'authKeyExpires', args: [X.apiKey, nowS() + 60, 'ab'.repeat(32)] };
    c.send(req);
    const m = await c.next((x) => isErr(x) || (x && x.success !== undefined), WAIT, 'the auth reply');
    errShape(m, 401, 'bad signature');
    assert.equal(m.error, 'Signature not valid.');
    assert.deepEqual(m.request, req);
    await subscribe(c, ['trade:XBTUSD']);
    c.send({ op: 'subscribe', args: ['position'] });
    const p = await c.next(isErr, WAIT, 'the refusal of position');
    assert.equal(p.status, 401, `a private table after a failed auth: ${J(p)}`);
    c.close();
    return J(m);
});

await step('authKeyExpires with expires in the past -> an error, no auth', async () => {
    const c = await welcomed();
    const req = wsAuth(X, nowS() - 3600);
    c.send(req);
    const m = await c.next((x) => isErr(x) || (x && x.success !== undefined), WAIT, 'the auth reply');
    assert.ok(isErr(m) && (m.status === 401 || m.status === 400), `expired authKeyExpires: ${J(m)}`);
    errShape(m, m.status, 'expired');
    assert.deepEqual(m.request, req);
    c.send({ op: 'subscribe', args: ['position'] });
    const p = await c.next(isErr, WAIT, 'the refusal of position');
    assert.equal(p.status, 401);
    c.close();
    return J(m);
});

await step('authKeyExpires with an unknown key -> 401', async () => {
    const c = await welcomed();
    const e = nowS() + 60;
    const req = { op: 'authKeyExpires', args: ['no-such-key-000000000000', e, hmacHex('x', 'GET/realtime' + e)] };
    c.send(req);
    const m = await c.next((x) => isErr(x) || (x && x.success !== undefined), WAIT, 'the auth reply');
    errShape(m, 401, 'unknown key');
    c.close();
    return J(m);
});

await step('authKeyExpires with a millisecond expiry (ccxt pro) -> {"success":true,"request":<as sent>}; position, order, margin partials of that account', async () => {
    const c = await welcomed();
    const req = wsAuth(X, Date.now() + 60000);
    c.send(req);
    const m = await c.next((x) => isErr(x) || (x && x.success !== undefined), WAIT, 'the auth reply');
    assert.deepEqual(m, { success: true, request: req });
    const out = await subscribe(c, ['position', 'order', 'margin']);
    const pos = out.position.partial;
    partialShape(pos, pos.keys, pos.filter, 'position');
    assert.equal(pos.filter.account, X.account, `position partial filter ${J(pos.filter)}`);
    assert.ok(pos.data.some((r) => r.symbol === SYM && r.account === X.account), `no XBTUSD position row: ${J(pos.data).slice(0, 300)}`);
    for (const r of pos.data) assert.equal(r.account, X.account, 'a position row of another account');
    const ord = out.order.partial;
    assert.deepEqual(ord.keys, ['orderID']);
    for (const r of ord.data) assert.equal(r.account, X.account, 'an order row of another account');
    const mar = out.margin.partial;
    assert.ok(mar.data.some((r) => r.currency === 'XBt' && r.account === X.account), `margin partial ${J(mar.data).slice(0, 300)}`);
    c.close();
    return `position keys ${J(pos.keys)}, margin keys ${J(mar.keys)}`;
});

await step('authKeyExpires with a seconds expiry (BitMEX docs) -> success; execution subscribes', async () => {
    const c = await welcomed();
    const req = wsAuth(X, nowS() + 60);
    c.send(req);
    const m = await c.next((x) => isErr(x) || (x && x.success !== undefined), WAIT, 'the auth reply');
    assert.deepEqual(m, { success: true, request: req });
    const out = await subscribe(c, ['execution:XBTUSD']);
    assert.deepEqual(out['execution:XBTUSD'].partial.keys, ['execID']);
    c.close();
});

const urlAuth = (acct, expires, sig) => `${WSURL}?api-expires=${expires}&api-key=${encodeURIComponent(acct.apiKey)}&api-signature=${sig || hmacHex(acct.apiSecret, 'GET/realtime' + expires)}`;

await step('auth in the URL (the official adapter): a private table subscribes', async () => {
    const c = await welcomed(urlAuth(X, nowS() + 5));
    const out = await subscribe(c, ['position:XBTUSD']);
    assert.equal(out['position:XBTUSD'].partial.filter.account, X.account, J(out['position:XBTUSD'].partial.filter));
    c.close();
});

await step('auth in the URL with a bad signature: the upgrade is refused with HTTP 401', async () => {
    let err;
    try {
        const c = await conn(urlAuth(X, nowS() + 5, 'cd'.repeat(32)));
        c.close();
    } catch (e) {
        err = e;
    }
    assert.ok(err && err.status === 401, `bad URL signature: ${err ? err.message : 'the upgrade succeeded'}`);
    return err.message;
});

await step('auth in the URL with an expired api-expires: the upgrade is refused (HTTP 4xx)', async () => {
    let err;
    try {
        const c = await conn(urlAuth(X, nowS() - 3600));
        c.close();
    } catch (e) {
        err = e;
    }
    assert.ok(err && err.status >= 400 && err.status < 500, `expired URL auth: ${err ? err.message : 'the upgrade succeeded'}`);
    return err.message;
});

await step('auth in the URL with odd expires (INT64_MAX, 20 digits, signs, spaces) and a wrong signature: refused, never a crash', async () => {
    const seen = [];
    for (const e of ['9223372036854775807', '99999999999999999999', '+1796616961', '-5', '%201796616961', '1e12']) {
        let err;
        try {
            const c = await conn(urlAuth(X, e, 'ab'.repeat(32)));
            c.close();
        } catch (x) {
            err = x;
        }
        assert.ok(err && err.status >= 400 && err.status < 500, `expires ${e}: ${err ? err.message : 'the upgrade succeeded'}`);
        seen.push(`${e} -> ${err.status}`);
    }
    const c = await welcomed(); /* the server is still there */
    c.close();
    return seen.join(', ');
});

await step('auth in the handshake headers (api-expires, api-key, api-signature): a private table subscribes', async () => {
    const e = nowS() + 5;
    const c = await welcomed(WSURL, { headers: { 'api-expires': String(e), 'api-key': X.apiKey, 'api-signature': hmacHex(X.apiSecret, 'GET/realtime' + e) } });
    const out = await subscribe(c, ['margin']);
    assert.ok(out.margin.partial.data.some((r) => r.account === X.account), J(out.margin.partial.data).slice(0, 300));
    c.close();
});

// ---------------------------------------------------------------- cancelAllAfter

await step('cancelAllAfter over the socket: armed for 60 s ({now, cancelTime, request}), fires at 500 ms, disarmed with 0', async () => {
    const c = await welcomed();
    c.send(wsAuth(X, Date.now() + 60000));
    await c.next((x) => x && x.success === true, WAIT, 'the auth reply');
    const o = await api(X, 'POST', '/order', { symbol: SYM, side: 'Buy', orderQty: 100, price: 50000, ordType: 'Limit' });
    const req = { op: 'cancelAllAfter', args: 60000 };
    c.send(req);
    const r = await c.next((x) => x && (x.cancelTime !== undefined || isErr(x)), WAIT, 'the cancelAllAfter reply');
    assert.ok(!isErr(r), `cancelAllAfter 60000: ${J(r)}`);
    assert.ok(r.now && r.cancelTime, `reply ${J(r)}`);
    const d = Date.parse(r.cancelTime) - Date.parse(r.now);
    assert.ok(Math.abs(d - 60000) <= 1000, `cancelTime - now = ${d} ms for 60000`);
    assert.deepEqual(r.request, req, 'request as sent');
    c.send({ op: 'cancelAllAfter', args: 500 });
    await c.next((x) => x && (x.cancelTime !== undefined || isErr(x)), WAIT, 'the reply to 500');
    const f = await poll(async () => {
        const rows = await api(X, 'GET', '/order', { filter: { orderID: o.orderID } });
        return rows[0] && rows[0].ordStatus === 'Canceled' ? rows[0] : undefined;
    }, 10000, 'the switch to cancel the order');
    const off = { op: 'cancelAllAfter', args: 0 };
    c.send(off);
    const z = await c.next((x) => x && x.request && x.request.op === 'cancelAllAfter' && x.request.args === 0, WAIT, 'the reply to 0');
    assert.ok(!isErr(z), `disarm: ${J(z)}`);
    c.close();
    return `${J(r)}; fired: ${J(f.text)}; disarm ${J(z)}`;
});

await step('cancelAllAfter without auth -> an error (401)', async () => {
    const c = await welcomed();
    const req = { op: 'cancelAllAfter', args: 60000 };
    c.send(req);
    const m = await c.next((x) => isErr(x) || (x && x.cancelTime !== undefined), WAIT, 'the reply');
    errShape(m, 401, 'cancelAllAfter without auth');
    c.close();
    return J(m);
});

// ---------------------------------------------------------------- abuse

// Runs an abuse (which returns what happened or throws), then checks the
// server goes on (healthy()) whatever the abuse's verdict was.
async function abuse(fn) {
    let verdict;
    let err;
    try {
        verdict = await fn();
    } catch (e) {
        err = e;
    }
    const h = await healthy();
    if (err) {
        err.message += `\nafterwards: ${h}`;
        throw err;
    }
    return `${verdict}; ${h}`;
}

// Outcome of an abuse on connection c: a close (code, reason) or an error
// message. A close without a close frame (1006) is a failure: the server
// dropped the socket instead of closing it.
async function outcome(c, what, { codes, ms = 10000 }) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (c.closed) break;
        const e = c.msgs.slice(c.cursor).find((x) => isErr(x.m));
        if (e) return `error message ${J(e.m).slice(0, 300)}`;
        await sleep(50);
    }
    assert.ok(c.closed, `${what}: neither a close nor an error message within ${ms} ms (got ${recent(c)})`);
    assert.notEqual(c.closed.code, 1006, `${what}: the connection dropped without a close frame (1006); client errors ${J(c.errors)}`);
    const note = codes.includes(c.closed.code) ? '' : ` (not ${codes.join('/')})`;
    assert.ok(codes.includes(c.closed.code) || (c.closed.code >= 1000 && c.closed.code < 5000),
        `${what}: close code ${c.closed.code}`);
    return `closed ${c.closed.code} "${c.closed.reason}"${note}`;
}

await step('abuse: a 2 MiB text frame gets a close (1009) or an error, and the server goes on', () => abuse(async () => {
    const c = await welcomed();
    c.send('{"op":"subscribe","args":["' + 'x'.repeat(2 * 1024 * 1024) + '"]}');
    try {
        return await outcome(c, '2 MiB frame', { codes: [1009] });
    } finally {
        c.close();
    }
}));

await step('abuse: a binary frame gets a close (1003) or an error, and the server goes on', () => abuse(async () => {
    const c = await welcomed();
    c.ws.send(Buffer.from(J({ op: 'subscribe', args: ['trade:XBTUSD'] })), { binary: true });
    try {
        return await outcome(c, 'binary frame', { codes: [1003] });
    } finally {
        c.close();
    }
}));

await step('abuse: a text frame that is not UTF-8 gets a close (1007), and the server goes on', () => abuse(async () => {
    const c = await welcomed();
    c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    try {
        return await outcome(c, 'text frame not UTF-8', { codes: [1007] });
    } finally {
        c.close();
    }
}));

// Sends n messages at once; waits until the connection closes, or replies
// stop for 2 s, or 30 s pass. Returns what came back.
async function flood(c, n, make) {
    const mark = c.msgs.length;
    for (let i = 0; i < n; i++) c.send(make(i));
    let last = c.msgs.length;
    let quietSince = Date.now();
    const end = Date.now() + 30000;
    while (!c.closed && Date.now() < end) {
        await sleep(100);
        if (c.msgs.length !== last) {
            last = c.msgs.length;
            quietSince = Date.now();
        } else if (Date.now() - quietSince > 2000) break;
    }
    const got = c.msgs.slice(mark).map((x) => x.m);
    const limited = got.filter((m) => isErr(m) && m.status === 429);
    return { got, limited, closed: c.closed };
}

function floodVerdict(what, n, r, answered) {
    if (r.limited.length) {
        const e = r.limited[0];
        errShape(e, 429, what);
        assert.match(e.error, /Rate limit exceeded/, `${what}: 429 error text`);
        return `rate limited: ${r.limited.length} x ${J(e)}`;
    }
    if (r.closed) {
        assert.notEqual(r.closed.code, 1006, `${what}: dropped without a close frame (1006) after ${r.got.length} replies ` +
            '(a server that closes its socket with client data still unread makes TCP reset it, losing the close frame and the replies sent before it)');
        return `closed ${r.closed.code} "${r.closed.reason}" after ${r.got.length} replies`;
    }
    assert.equal(answered, n, `${what}: ${answered} of ${n} answered, no rate-limit error, no close; errors ${J(r.got.filter(isErr).slice(0, 3))}`);
    return `all ${n} answered, no limit applied (the server runs with --rate-limit off)`;
}

await step('abuse: a flood of 10,000 "ping" gets BitMEX\'s rate-limit error, a close, or every pong; never a crash', () => abuse(async () => {
    const c = await welcomed();
    try {
        const r = await flood(c, 10000, () => 'ping');
        return floodVerdict('ping flood', 10000, r, r.got.filter((m) => m === 'pong').length);
    } finally {
        c.close();
    }
}));

await step('abuse: a flood of 10,000 subscribe/unsubscribe messages gets the rate-limit error, a close, or every ack; never a crash', () => abuse(async () => {
    const c = await welcomed();
    try {
        const r = await flood(c, 10000, (i) => ({ op: i % 2 ? 'unsubscribe' : 'subscribe', args: ['instrument:XBTUSD'] }));
        // one reply per message: an ack, or an error naming it
        const replies = r.got.filter((m) => m && typeof m === 'object' && ('success' in m || isErr(m)));
        const v = floodVerdict('subscribe flood', 10000, r, replies.length);
        const errs = replies.filter(isErr);
        return `${v}${errs.length ? `; ${errs.length} error replies, e.g. ${J(errs[0])}` : ''}`;
    } finally {
        c.close();
    }
}));

await step('abuse: 50 connections at once each get a welcome; the server goes on', async () => {
    const cs = await Promise.allSettled(Array.from({ length: 50 }, () => welcomed()));
    const ok = cs.filter((x) => x.status === 'fulfilled').map((x) => x.value);
    const refused = cs.filter((x) => x.status === 'rejected').map((x) => x.reason.status || x.reason.message);
    for (const c of ok) c.close();
    for (const r of refused) assert.ok(r === 429, `a connection failed with ${r} (BitMEX refuses with 429 at most)`);
    const rem = ok.map((c) => c.welcome.limit && c.welcome.limit.remaining);
    return `${ok.length} welcomed, ${refused.length} refused (429); limit.remaining ${Math.min(...rem)}..${Math.max(...rem)}; ${await healthy()}`;
});

await step('partials: every field of their rows is declared in types', async () => {
    const bad = Object.entries(typeGaps).filter(([, g]) => g.size).map(([t, g]) => `${t}: ${g.size} fields missing from types: ${[...g].join(', ')}`);
    assert.equal(bad.length, 0, bad.join('\n'));
    return `tables checked: ${Object.keys(typeGaps).join(', ')}`;
});

await step('the bystander connection saw instrument updates and is still open', async () => {
    assert.equal(bystander.closed, undefined, J(bystander.closed));
    const ups = bystander.msgs.filter((x) => x.m && x.m.table === 'instrument' && x.m.action === 'update');
    bystander.close();
    return `${ups.length} instrument updates`;
});

for (const c of conns) c.close();
finish();
process.exit(0);
