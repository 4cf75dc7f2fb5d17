/*
 * auth.h - BitMEX API-key request signing: sign, verify, name the outcome,
 * and make new keys.
 *
 * No I/O and no clock: the caller passes the received header values, the
 * stored secret and the server's time. No globals; every function is safe to
 * call from several threads at once (OpenSSL 3 is thread-safe without
 * set-up, and each call uses its own MAC context).
 *
 * ---------------------------------------------------------------------------
 * THE SIGNATURE (BitMEX's documented API-key scheme)
 * ---------------------------------------------------------------------------
 *   api-signature = lowercase hex( HMAC-SHA256( secret,
 *                       VERB + TARGET + EXPIRES + BODY ) )
 *   VERB     upper-case method as received ("GET", "POST", ...).
 *   TARGET   the request target exactly as it was on the request line: path
 *            plus '?' plus the raw query when there is one, byte for byte,
 *            never re-encoded or re-ordered ("/api/v1/instrument?filter=
 *            %7B%22symbol%22%3A+%22XBTM15%22%7D").
 *   EXPIRES  the api-expires header text exactly as received.
 *   BODY     the raw body bytes ("" when there is none).
 * The secret is used as the HMAC key as its ASCII bytes (BitMEX secrets are
 * not base64-decoded before use).
 *
 * ---------------------------------------------------------------------------
 * VERIFYING (auth_verify), in this order; the first failure is the outcome
 * ---------------------------------------------------------------------------
 * 1. Headers. None of api-key, api-expires, api-signature present:
 *    AUTH_ANONYMOUS (not a signed request; the caller serves public routes
 *    and answers private ones with AUTH_ANONYMOUS's 401). Some but not all:
 *    AUTH_MISSING_HEADERS. (The legacy api-nonce header is not handled here.)
 * 2. api-expires must be 1..19 ASCII digits with no sign, space or fraction,
 *    value <= INT64_MAX, else AUTH_EXPIRES_MALFORMED. Leading zeros are
 *    allowed; the signature covers the text as sent.
 * 3. Expiry. With now_s = floor((now_ms - skew_ms) / 1000):
 *    expired  <=>  expires < now_s                      -> AUTH_EXPIRED
 *    That is BitMEX's rule ("`expires` is in the past", compared in whole
 *    seconds) moved back by the allowed clock skew: a request stays good
 *    through the whole second its api-expires names, plus skew_ms. A request
 *    replayed after that is refused, which is what bounds replays.
 *    Default skew 5000 ms (AUTH_DEFAULT_SKEW_MS): BitMEX itself allows none,
 *    but ccxt signs with now + 5 s, so a client whose clock is a few seconds
 *    behind would otherwise fail every request.
 * 4. Too far ahead. When max_future_s > 0:
 *    expires * 1000 > now_ms + max_future_s * 1000     -> AUTH_EXPIRES_TOO_FAR
 *    Default two days (AUTH_DEFAULT_MAX_FUTURE_S): a captured request is
 *    replayable for at most that long, and ccxt's documented work-around
 *    (api-expires a day ahead) still works. 0 (AUTH_NO_MAX_FUTURE) = no
 *    bound. ccxt pro's authKeyExpires in MILLISECONDS is the WebSocket's
 *    to read as such (api/ws.c), never this rule's. The server calls this
 *    with engine time and widens the bound by how far the wall clock is
 *    ahead of it, so a bot signing with its own clock against a backtest
 *    of last year is not refused.
 * 5. Key. secret == NULL means the caller found no such key:
 *    AUTH_INVALID_KEY. (Checked after the expiry so that the cheap header
 *    checks come first; either order refuses the same requests.)
 * 6. api-signature must be exactly 64 hex digits (either case), else
 *    AUTH_SIGNATURE_MALFORMED.
 * 7. The expected signature is computed and compared with CRYPTO_memcmp
 *    (constant time) after folding the received hex to lower case:
 *    mismatch AUTH_SIGNATURE_INVALID, match AUTH_OK. Upper-case hex is
 *    accepted as the same signature (a documented leniency; BitMEX's own
 *    clients all send lower case). An OpenSSL failure is AUTH_INTERNAL.
 *
 * ---------------------------------------------------------------------------
 * WHAT THE CLIENT SEES (auth_http_status, auth_error_message)
 * ---------------------------------------------------------------------------
 * Body {"error":{"message":<message>,"name":"HTTPError"}} in every case.
 *   AUTH_ANONYMOUS, AUTH_MISSING_HEADERS
 *        401 "Authorization Required"   (BitMEX's answer to an unsigned call
 *                                        of a private route, api-connectors
 *                                        issue #339)
 *   AUTH_EXPIRES_MALFORMED, AUTH_SIGNATURE_MALFORMED, AUTH_SIGNATURE_INVALID
 *        401 "Signature not valid."      (BitMEX's text; ccxt maps it to
 *                                        AuthenticationError; BitMEX has
 *                                        no separate text for malformed ones)
 *   AUTH_INVALID_KEY
 *        401 "Invalid API Key."          (exact, with the full stop)
 *   AUTH_EXPIRED
 *        400 "This request has expired - `expires` is in the past. Current
 *             time: <now_s>"             (the text and the 400 status are in
 *                                        every captured BitMEX response, e.g.
 *                                        sample-market-maker #49,
 *                                        api-connectors #202; a 401 for it
 *                                        is only a guess, never observed)
 *   AUTH_EXPIRES_TOO_FAR (only with a configured bound; perpsim's own text)
 *        400 "This request's `expires` is too far in the future. Current
 *             time: <now_s>"
 *   AUTH_INTERNAL
 *        500 "Internal error"            (perpsim's own text)
 * <now_s> is floor(now_ms / 1000), the server's clock without the skew.
 * auth_error_message gives the fixed text (for the two "Current time" cases
 * the part before " Current time: ..."); auth_format_error writes the full
 * text.
 *
 * ---------------------------------------------------------------------------
 * NEW KEYS (auth_generate_key)
 * ---------------------------------------------------------------------------
 * Shapes as BitMEX's: key id 24 characters (APIKey.id maxLength 24), secret
 * 48 characters (APIKey.secret). Both use the base64url alphabet
 * A-Z a-z 0-9 '-' '_': the example secret "chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO"
 * has '_', ids and secrets quoted in client issues have '-'. Made as the
 * unpadded base64url text of 18 (id) and 36 (secret) bytes from OpenSSL's
 * RAND_bytes, so every character is uniform over the 64 symbols.
 */
#ifndef PERPSIM_API_AUTH_H
#define PERPSIM_API_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/units.h"

#define AUTH_SIG_HEX_LEN 64
#define AUTH_KEY_ID_LEN 24
#define AUTH_SECRET_LEN 48

#define AUTH_DEFAULT_SKEW_MS INT64_C(5000)
#define AUTH_NO_MAX_FUTURE INT64_C(0)
#define AUTH_DEFAULT_MAX_FUTURE_S INT64_C(172800)

/* Outcome of auth_verify. */
enum auth_verdict {
    AUTH_OK = 0,
    AUTH_ANONYMOUS,           /* no auth header at all */
    AUTH_MISSING_HEADERS,     /* some of the three headers, not all */
    AUTH_EXPIRES_MALFORMED,   /* api-expires not 1..19 digits / > INT64_MAX */
    AUTH_EXPIRED,             /* api-expires in the past (beyond the skew) */
    AUTH_EXPIRES_TOO_FAR,     /* api-expires beyond the configured bound */
    AUTH_INVALID_KEY,         /* no stored secret for this api-key */
    AUTH_SIGNATURE_MALFORMED, /* api-signature not 64 hex digits */
    AUTH_SIGNATURE_INVALID,   /* well-formed but not the right HMAC */
    AUTH_INTERNAL,            /* OpenSSL failed */
};

/* Errors of auth_sign and auth_generate_key. */
enum auth_err {
    AUTH_E_OK = 0,
    AUTH_E_ARG,    /* NULL pointer where text is required, empty secret, negative expires */
    AUTH_E_CRYPTO, /* OpenSSL failed (HMAC or RAND) */
};

/* The verifier's settings. */
struct auth_policy {
    int64_t skew_ms;      /* >= 0; see rule 3 */
    int64_t max_future_s; /* 0 = no bound; else see rule 4 */
};

/* Received header values; NULL = header absent. Values are NUL-terminated
 * strings as the HTTP layer hands them over. */
struct auth_headers {
    const char *api_key;
    const char *api_expires;
    const char *api_signature;
};

/* One request as received. */
struct auth_request {
    const char *verb;   /* NUL-terminated */
    const char *target; /* raw request target, target_len bytes */
    size_t target_len;
    const char *body; /* raw body, body_len bytes; may be NULL when body_len is 0 */
    size_t body_len;
};

/* {AUTH_DEFAULT_SKEW_MS, AUTH_DEFAULT_MAX_FUTURE_S}. */
void auth_policy_default(struct auth_policy *p);

/* Signs with expires given as a number (written in decimal, no leading
 * zeros). out_hex receives 64 lowercase hex digits and a NUL. */
enum auth_err auth_sign(const char *secret, size_t secret_len, const struct auth_request *req,
                        int64_t expires_s, char out_hex[AUTH_SIG_HEX_LEN + 1]);

/* Signs with the api-expires text exactly as given (what auth_verify uses). */
enum auth_err auth_sign_text(const char *secret, size_t secret_len, const struct auth_request *req,
                             const char *expires_text, size_t expires_len,
                             char out_hex[AUTH_SIG_HEX_LEN + 1]);

/* Checks one request; rules 1-7 above. pol NULL = auth_policy_default.
 * secret is the stored secret of h->api_key, or NULL when that key is
 * unknown (or when h->api_key is NULL). */
enum auth_verdict auth_verify(const struct auth_policy *pol, const struct auth_headers *h,
                              const char *secret, size_t secret_len,
                              const struct auth_request *req, ms_t now_ms);

/* HTTP status for a verdict (200 for AUTH_OK). */
int auth_http_status(enum auth_verdict v);

/* Fixed message text for a verdict (NULL for AUTH_OK). */
const char *auth_error_message(enum auth_verdict v);

/* Full message text into buf (with " Current time: <now_s>" where BitMEX
 * adds it). Returns the length written (excluding the NUL), or -1 when cap
 * is too small or v is AUTH_OK. */
int auth_format_error(enum auth_verdict v, ms_t now_ms, char *buf, size_t cap);

/* Constant name for logs and tests ("AUTH_EXPIRED"). */
const char *auth_verdict_name(enum auth_verdict v);

/* New key id (24 chars + NUL) and secret (48 chars + NUL). */
enum auth_err auth_generate_key(char key_id[AUTH_KEY_ID_LEN + 1],
                                char secret[AUTH_SECRET_LEN + 1]);

#endif
