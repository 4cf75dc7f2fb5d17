// lib.mjs - helpers shared by the end-to-end scripts (ccxt_e2e.mjs,
// ws_e2e.mjs, ws_abuse.mjs): the step runner that prints one line per step,
// the admin API, accounts with keys, a BitMEX request signer of our own,
// a seeded PRNG, polling and quiescence.
//
// Environment (run.sh sets both):
//   PERPSIM_URL          base URL of the server, e.g. http://127.0.0.1:40123
//   PERPSIM_ADMIN_TOKEN  bearer token of the admin API
//   E2E_KEEP_GOING=1     run every step and report all failures at the end

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';

export const BASE = process.env.PERPSIM_URL;
export const TOKEN = process.env.PERPSIM_ADMIN_TOKEN;
export const KEEP_GOING = process.env.E2E_KEEP_GOING === '1';
// ws://127.0.0.1:PORT/realtime
export const WSURL = BASE ? BASE.replace(/^http/, 'ws') + '/realtime' : undefined;

export const ONE_BTC = 100000000; // XBt
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function requireEnv(script) {
    if (!BASE || !TOKEN) {
        console.error(`${script}: set PERPSIM_URL and PERPSIM_ADMIN_TOKEN (run.sh does)`);
        process.exit(2);
    }
}

// ---------------------------------------------------------------- steps

// makeSteps('ws_e2e') -> { step, finish, counts }. step(name, fn) runs fn,
// prints "ok    name - detail (N ms)" or "FAIL  name" with the message, and
// (unless E2E_KEEP_GOING=1) exits 1 at the first failure. finish() prints
// the summary and exits 1 when anything failed.
export function makeSteps(script, { onFail } = {}) {
    const counts = { passed: 0, failures: 0 };
    async function step(name, fn) {
        const t0 = Date.now();
        try {
            const detail = await fn();
            counts.passed++;
            const d = detail ? ' - ' + String(detail).replace(/\n/g, '\\n') : '';
            console.log(`ok    ${name}${d} (${Date.now() - t0} ms)`);
            return true;
        } catch (e) {
            counts.failures++;
            const msg = e instanceof assert.AssertionError ? e.message : `${e && e.constructor ? e.constructor.name : 'Error'}: ${e && e.message}`;
            console.log(`FAIL  ${name}\n      ${String(msg).split('\n').join('\n      ')}`);
            if (!KEEP_GOING) {
                console.log(`${script}: stopped at the first failure (${counts.passed} steps passed)`);
                if (onFail) {
                    try {
                        await onFail();
                    } catch {
                        // best effort
                    }
                }
                process.exit(1);
            }
            return false;
        }
    }
    function finish() {
        if (counts.failures) {
            console.log(`${script}: ${counts.failures} step(s) FAILED, ${counts.passed} passed`);
            process.exit(1);
        }
        console.log(`${script}: all ${counts.passed} steps passed`);
    }
    return { step, finish, counts };
}

// ---------------------------------------------------------------- admin API

export async function admin(method, path, body) {
    const r = await fetch(BASE + path, {
        method,
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`admin ${method} ${path} -> HTTP ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
}

// {account, apiKey, apiSecret, permissions}
export async function newAccount(deposits, extra = {}) {
    const a = await admin('POST', '/admin/v1/accounts', { deposits, ...extra });
    assert.ok(Number.isInteger(a.account), `admin account id: ${JSON.stringify(a)}`);
    assert.ok(a.apiKey && a.apiSecret, `admin key/secret: ${JSON.stringify(a)}`);
    return a;
}

export const setIndex = (price, symbol = '.BXBT') => admin('POST', '/admin/v1/index', { symbol, price });

// ---------------------------------------------------------------- signing

export const hmacHex = (secret, message) => createHmac('sha256', secret).update(message).digest('hex');

// One signed REST request as BitMEX documents it: signature = hex
// HMAC_SHA256(secret, VERB + path-with-query + expires + body), headers
// api-key, api-expires (Unix seconds), api-signature. GET parameters go in the
// query string (objects such as filter as JSON), others in a JSON body.
// Returns {status, body} (body parsed as JSON when it is JSON).
export async function signed(acct, method, path, params = {}) {
    let target = '/api/v1' + path;
    let body = '';
    if (method === 'GET') {
        const q = new URLSearchParams();
        for (const [k, v] of Object.entries(params)) {
            if (v !== undefined) q.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
        }
        const qs = q.toString();
        if (qs) target += '?' + qs;
    } else if (Object.keys(params).length) {
        body = JSON.stringify(params);
    }
    const expires = String(Math.floor(Date.now() / 1000) + 60);
    const headers = {
        'api-key': acct.apiKey,
        'api-expires': expires,
        'api-signature': hmacHex(acct.apiSecret, method + target + expires + body),
    };
    if (body) headers['Content-Type'] = 'application/json';
    const r = await fetch(BASE + target, { method, headers, body: body || undefined });
    const text = await r.text();
    let parsed = text;
    try {
        parsed = JSON.parse(text);
    } catch {
        // leave it as text
    }
    return { status: r.status, body: parsed };
}

// signed() that throws unless the reply is 2xx
export async function api(acct, method, path, params = {}) {
    const r = await signed(acct, method, path, params);
    if (r.status < 200 || r.status > 299) {
        throw new Error(`${method} /api/v1${path} ${JSON.stringify(params)} -> HTTP ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.body;
}

// Every row of a table endpoint, oldest first, 500 at a time.
export async function allRows(acct, path, params = {}) {
    const out = [];
    for (let start = 0; ; start += 500) {
        const rows = await api(acct, 'GET', path, { ...params, count: 500, start });
        assert.ok(Array.isArray(rows), `GET ${path}: not an array: ${JSON.stringify(rows).slice(0, 200)}`);
        out.push(...rows);
        if (rows.length < 500) return out;
    }
}

export async function publicGet(path) {
    const r = await fetch(BASE + path);
    const text = await r.text();
    if (!r.ok) throw new Error(`GET ${path} -> HTTP ${r.status} ${text.slice(0, 300)}`);
    return JSON.parse(text);
}

// ---------------------------------------------------------------- misc

// mulberry32: a small seeded PRNG, so a storm is the same on every run
export function prng(seed) {
    let a = seed >>> 0;
    const next = () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return {
        next,
        int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // [lo, hi]
        pick: (xs) => xs[Math.floor(next() * xs.length)],
        chance: (p) => next() < p,
    };
}

export async function poll(fn, ms, what, every = 200) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(every);
    }
}

// Waits until GET /admin/v1/state shows the same seq `polls` times in a row
// (`every` ms apart); returns that state. With the clock running the engine
// applies a timer command every 200 ms when idle, so this settles only on a
// stepped (frozen) clock or within a quiet gap of fewer than every*polls ms.
export async function quiesce({ polls = 4, every = 250, timeoutMs = 20000 } = {}) {
    const end = Date.now() + timeoutMs;
    let last = await admin('GET', '/admin/v1/state');
    let same = 0;
    for (;;) {
        await sleep(every);
        const s = await admin('GET', '/admin/v1/state');
        if (s.seq === last.seq) {
            if (++same >= polls) return s;
        } else {
            same = 0;
        }
        last = s;
        if (Date.now() > end) throw new Error(`seq still moving after ${timeoutMs} ms (last ${JSON.stringify(s)})`);
    }
}

// ---------------------------------------------------------------- a server of a script's own

// Spawns `bin args... --listen 127.0.0.1:0 --admin-token <random>` and
// resolves when it listens (within 30 s): { base, token, log(), admin(method,
// path under /admin/v1/, body), stop() } where stop() sends SIGTERM, waits,
// runs cleanup and resolves with the exit status (once; later calls give 0).
export async function ownServer(bin, args, { cleanup } = {}) {
    const token = randomBytes(16).toString('hex');
    const srv = spawn(bin, [...args, '--listen', '127.0.0.1:0', '--admin-token', token],
        { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const base = await new Promise((ok, fail) => {
        const on = (d) => {
            log += d;
            const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
            if (m) ok(m[1]);
        };
        srv.stdout.on('data', on);
        srv.stderr.on('data', on);
        srv.on('exit', (code) => fail(new Error(`${bin} ${args[0] || ''} exited (${code}): ${log}`)));
        setTimeout(() => fail(new Error(`no "listening on" line in 30 s: ${log}`)), 30000);
    });
    let stopped = false;
    async function stop() {
        if (stopped) return 0;
        stopped = true;
        const done = new Promise((r) => srv.on('exit', (code, sig) => r(code ?? sig)));
        srv.kill('SIGTERM');
        const rc = await done;
        if (cleanup) cleanup();
        return rc;
    }
    async function admin(method, path, body) {
        const r = await fetch(base + '/admin/v1/' + path, {
            method,
            headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await r.text();
        if (!r.ok) throw new Error(`admin ${method} ${path} -> HTTP ${r.status} ${text}`);
        return JSON.parse(text);
    }
    return { base, token, log: () => log, admin, stop };
}
