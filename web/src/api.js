// REST: public reads, and requests signed as BitMEX documents
// (HMAC-SHA256 over verb + path + expires + body), signed here in the
// browser with WebCrypto: the secret never leaves the page.

const enc = new TextEncoder();

export async function hmacHex(secret, message) {
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
  const sig = await crypto.subtle.sign('HMAC', key, enc.encode(message));
  return [...new Uint8Array(sig)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function parse(res) {
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: { message: text } };
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

export async function get(path, params) {
  const q = params ? '?' + new URLSearchParams(params).toString() : '';
  return parse(await fetch('/api/v1/' + path + q));
}

// The exchange's engine time (ms): what api-expires is checked against
// (a stepped clock may stand far from the wall clock).
let skew = 0;
export async function syncTime() {
  const root = await parse(await fetch('/api/v1'));
  skew = root.timestamp - Date.now();
  return root.timestamp;
}
export function engineNow() {
  return Date.now() + skew;
}

// Each signature counts from the exchange's time of the moment: on an
// accelerated clock (say 1000x) engine time runs far from the page's.
export async function signed(creds, verb, path, body, params) {
  const q = params ? '?' + new URLSearchParams(params).toString() : '';
  const target = '/api/v1/' + path + q;
  const data = body ? JSON.stringify(body) : '';
  const expires = String(Math.floor((await syncTime()) / 1000) + 60);
  const sig = await hmacHex(creds.secret, verb + target + expires + data);
  const headers = { 'api-key': creds.key, 'api-expires': expires, 'api-signature': sig };
  if (data) headers['Content-Type'] = 'application/json';
  return parse(await fetch(target, { method: verb, headers, body: data || undefined }));
}

// The WebSocket's auth message: authKeyExpires over "GET/realtime" + expires.
export async function wsAuthArgs(creds) {
  const expires = Math.floor((await syncTime()) / 1000) + 60;
  return [creds.key, expires, await hmacHex(creds.secret, 'GET/realtime' + expires)];
}

// The admin API (an instructor's): the token as a bearer, never stored
// beyond the tab's session.
export async function admin(token, verb, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body) headers['Content-Type'] = 'application/json';
  return parse(await fetch('/admin/v1/' + path, { method: verb, headers, body: body ? JSON.stringify(body) : undefined }));
}
