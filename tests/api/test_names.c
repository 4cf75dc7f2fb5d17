/*
 * test_names.c - Check suite for api/names: every table prints and parses
 * its names both ways, prints what the renderers printed before the tables
 * moved to names.c (the same text for every value 0..255, "" for a value
 * without a name), and accepts exactly the texts the routes accepted
 * (BitMEX's spellings, case-sensitive, nothing else).
 */
#include <check.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/names.h"
#include "core/keys.h"
#include "core/store.h"
#include "engine/engine.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct name_table *const all[] = {
    &names_side,       &names_ord_type,   &names_tif,      &names_peg,
    &names_contingency, &names_ord_status, &names_exec_type, &names_tick,
    &names_liquidity,  &names_money_kind, &names_bin_size, &names_exec_inst,
    &names_permission,
};

/* ---- what render.c printed before: arrays indexed by value ------------------------------- */

static const char *const was_side[] = {"", "Buy", "Sell"};
static const char *const was_ord_type[] = {"", "Limit", "Market", "Stop", "StopLimit", "MarketIfTouched",
                                          "LimitIfTouched", "Pegged"};
static const char *const was_tif[] = {"", "GoodTillCancel", "ImmediateOrCancel", "FillOrKill", "Day"};
static const char *const was_peg[] = {"", "PrimaryPeg", "MarketPeg", "TrailingStopPeg"};
static const char *const was_cont[] = {"", "OneCancelsTheOther", "OneTriggersTheOther"};
static const char *const was_status[] = {"New", "PartiallyFilled", "Filled", "Canceled", "Rejected"};
static const char *const was_exec[] = {"New", "Trade", "Canceled", "Replaced", "Restated",
                                       "TriggeredOrActivatedBySystem", "Rejected", "Funding",
                                       "Settlement", "Liquidation", "Bankruptcy"};
static const char *const was_tick[] = {"PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"};
static const char *const was_liq[] = {"", "AddedLiquidity", "RemovedLiquidity"};
static const char *const was_money[] = {"", "Deposit", "Withdrawal", "Funding", "Settlement",
                                        "Liquidation", "Deleverage", "Insurance", "Transfer"};

static const struct {
    const struct name_table *t;
    const char *const *names;
    size_t n; /* a value >= n printed "" */
} printed[] = {
    {&names_side, was_side, COUNT(was_side)},
    {&names_ord_type, was_ord_type, COUNT(was_ord_type)},
    {&names_tif, was_tif, COUNT(was_tif)},
    {&names_peg, was_peg, COUNT(was_peg)},
    {&names_contingency, was_cont, COUNT(was_cont)},
    {&names_ord_status, was_status, COUNT(was_status)},
    {&names_exec_type, was_exec, COUNT(was_exec)},
    {&names_tick, was_tick, COUNT(was_tick)},
    {&names_liquidity, was_liq, COUNT(was_liq)},
    {&names_money_kind, was_money, COUNT(was_money)},
};

/* ---- what routes.c accepted before: name -> value, NULL-ended ------------------------------ */

struct accepted {
    const char *name;
    unsigned value;
};

static const struct accepted took_side[] = {{"Buy", SIDE_BUY}, {"Sell", SIDE_SELL}, {NULL, 0}};
static const struct accepted took_ord_type[] = {
    {"Limit", ORD_LIMIT}, {"Market", ORD_MARKET}, {"Stop", ORD_STOP}, {"StopLimit", ORD_STOP_LIMIT},
    {"MarketIfTouched", ORD_MARKET_IF_TOUCHED}, {"LimitIfTouched", ORD_LIMIT_IF_TOUCHED},
    {"Pegged", ORD_PEGGED}, {NULL, 0}};
static const struct accepted took_tif[] = {{"GoodTillCancel", TIF_GTC}, {"ImmediateOrCancel", TIF_IOC},
                                           {"FillOrKill", TIF_FOK}, {"Day", TIF_DAY}, {NULL, 0}};
static const struct accepted took_peg[] = {{"PrimaryPeg", PEG_PRIMARY}, {"MarketPeg", PEG_MARKET},
                                           {"TrailingStopPeg", PEG_TRAILING_STOP}, {NULL, 0}};
static const struct accepted took_cont[] = {{"OneCancelsTheOther", CONT_OCO},
                                            {"OneTriggersTheOther", CONT_OTO}, {NULL, 0}};
static const struct accepted took_exec_inst[] = {
    {"ParticipateDoNotInitiate", EXEC_POST_ONLY}, {"ReduceOnly", EXEC_REDUCE_ONLY}, {"Close", EXEC_CLOSE},
    {"MarkPrice", EXEC_MARK_PRICE}, {"LastPrice", EXEC_LAST_PRICE}, {"IndexPrice", EXEC_INDEX_PRICE},
    {"Fixed", EXEC_FIXED}, {"LastWithinMark", EXEC_LAST_WITHIN_MARK}, {"AllOrNone", EXEC_ALL_OR_NONE},
    {NULL, 0}};
static const struct accepted took_bin[] = {{"1m", BIN_1M}, {"5m", BIN_5M}, {"1h", BIN_1H}, {"1d", BIN_1D},
                                           {NULL, 0}};
static const struct accepted took_perm[] = {{"order", PERM_ORDER}, {"orderCancel", PERM_CANCEL},
                                            {"withdraw", PERM_WITHDRAW}, {"read", 0}, {NULL, 0}};

static const struct {
    const struct name_table *t;
    const struct accepted *took;
} parsed[] = {
    {&names_side, took_side},       {&names_ord_type, took_ord_type}, {&names_tif, took_tif},
    {&names_peg, took_peg},         {&names_contingency, took_cont},  {&names_exec_inst, took_exec_inst},
    {&names_bin_size, took_bin},    {&names_permission, took_perm},
};

/* ---- every table ------------------------------------------------------------------------------ */

START_TEST(every_name_round_trips)
{
    for (size_t k = 0; k < COUNT(all); k++) {
        const struct name_table *t = all[k];
        ck_assert_msg(t->count > 0 && t->field && *t->field, "table %zu", k);
        for (size_t i = 0; i < t->count; i++) {
            const struct name_entry *e = &t->entries[i];
            ck_assert_msg(e->name && *e->name, "%s: entry %zu has no name", t->field, i);
            ck_assert_str_eq(name_of(t, e->value), e->name);
            unsigned v = 12345;
            ck_assert_msg(name_parse(t, e->name, &v), "%s: %s does not parse", t->field, e->name);
            ck_assert_uint_eq(v, e->value);
            for (size_t j = i + 1; j < t->count; j++) {
                ck_assert_msg(strcmp(e->name, t->entries[j].name) != 0, "%s: %s twice", t->field, e->name);
                ck_assert_msg(e->value != t->entries[j].value, "%s: value %u twice", t->field, e->value);
            }
        }
    }
}
END_TEST

START_TEST(printing_is_what_render_printed)
{
    for (size_t k = 0; k < COUNT(printed); k++)
        for (unsigned v = 0; v < 256; v++) {
            const char *want = v < printed[k].n ? printed[k].names[v] : "";
            ck_assert_msg(strcmp(name_of(printed[k].t, v), want) == 0, "%s %u: '%s', was '%s'",
                          printed[k].t->field, v, name_of(printed[k].t, v), want);
        }
}
END_TEST

START_TEST(values_without_a_name_print_empty)
{
    static const unsigned far[] = {1000, 65535, 65536, UINT_MAX}; /* 256 is AllOrNone */
    for (size_t k = 0; k < COUNT(all); k++)
        for (size_t i = 0; i < COUNT(far); i++)
            ck_assert_str_eq(name_of(all[k], far[i]), "");
    ck_assert_str_eq(name_of(&names_side, SIDE_NONE), "");
    ck_assert_str_eq(name_of(&names_ord_type, ORD_NONE), "");
    ck_assert_str_eq(name_of(&names_tif, TIF_NONE), "");
    ck_assert_str_eq(name_of(&names_peg, PEG_NONE), "");
    ck_assert_str_eq(name_of(&names_contingency, CONT_NONE), "");
    ck_assert_str_eq(name_of(&names_ord_status, ST_REJECTED + 1), "");
    ck_assert_str_eq(name_of(&names_exec_type, EX_COUNT), "");
    ck_assert_str_eq(name_of(&names_tick, 4), "");
    ck_assert_str_eq(name_of(&names_liquidity, 0), "");
    ck_assert_str_eq(name_of(&names_money_kind, 0), "");
    ck_assert_str_eq(name_of(&names_money_kind, MK_TRANSFER + 1), "");
    ck_assert_str_eq(name_of(&names_bin_size, BIN_COUNT), "");
}
END_TEST

/* Texts to try on every table: every name of every table, and each in
 * other cases, with spaces, cut short and run on. */
static size_t candidates(char out[][64], size_t cap)
{
    size_t n = 0;
    static const char *const extra[] = {"", " ", ",", "Buy,Sell", "buy", "SELL", "gtc", "GTC",
                                        "1M", "READ", "Order", "limit"};
    for (size_t i = 0; i < COUNT(extra) && n < cap; i++)
        snprintf(out[n++], 64, "%s", extra[i]);
    for (size_t k = 0; k < COUNT(all); k++)
        for (size_t i = 0; i < all[k]->count && n + 7 <= cap; i++) {
            const char *s = all[k]->entries[i].name;
            size_t len = strlen(s);
            snprintf(out[n++], 64, "%s", s);
            snprintf(out[n++], 64, " %s", s);
            snprintf(out[n++], 64, "%s ", s);
            snprintf(out[n++], 64, "%.*s", (int)(len - 1), s);
            snprintf(out[n++], 64, "%sX", s);
            snprintf(out[n], 64, "%s", s);
            for (char *p = out[n]; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            n++;
            snprintf(out[n], 64, "%s", s);
            for (char *p = out[n]; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            n++;
        }
    ck_assert_uint_lt(n, cap);
    return n;
}

START_TEST(parsing_accepts_what_the_routes_accepted)
{
    static char c[1024][64];
    size_t nc = candidates(c, COUNT(c));
    for (size_t k = 0; k < COUNT(parsed); k++)
        for (size_t i = 0; i < nc; i++) {
            const struct accepted *a = parsed[k].took;
            while (a->name && strcmp(a->name, c[i]) != 0)
                a++;
            unsigned v = 777;
            bool ok = name_parse(parsed[k].t, c[i], &v);
            ck_assert_msg(ok == (a->name != NULL), "%s: '%s' %s", parsed[k].t->field, c[i],
                          ok ? "now accepted" : "now refused");
            ck_assert_uint_eq(v, ok ? a->value : 777); /* unchanged when refused */
        }
}
END_TEST

START_TEST(parsing_is_case_sensitive_and_exact)
{
    unsigned v = 9;
    ck_assert(!name_parse(&names_side, NULL, &v));
    ck_assert(!name_parse(&names_side, "", &v));
    ck_assert(!name_parse(&names_side, "buy", &v));
    ck_assert(!name_parse(&names_side, "BUY", &v));
    ck_assert(!name_parse(&names_side, "Buy ", &v));
    ck_assert(!name_parse(&names_side, " Sell", &v));
    ck_assert(!name_parse(&names_ord_type, "limit", &v));
    ck_assert(!name_parse(&names_ord_type, "LIMIT", &v));
    ck_assert(!name_parse(&names_ord_type, "Limit\n", &v));
    ck_assert(!name_parse(&names_tif, "GTC", &v));
    ck_assert(!name_parse(&names_bin_size, "1M", &v));
    ck_assert(!name_parse(&names_bin_size, "7m", &v));
    ck_assert(!name_parse(&names_exec_type, "new", &v));
    ck_assert(!name_parse(&names_permission, "Read", &v));
    ck_assert_uint_eq(v, 9);
    ck_assert(name_parse(&names_side, "Sell", &v));
    ck_assert_uint_eq(v, SIDE_SELL);
    ck_assert(name_parse(&names_permission, "read", &v));
    ck_assert_uint_eq(v, 0);
}
END_TEST

/* ---- bit sets ----------------------------------------------------------------------------------- */

START_TEST(exec_inst_set_prints_in_bitmex_order)
{
    char b[160];
    ck_assert_uint_eq(name_format_set(&names_exec_inst, 0, b, sizeof(b)), 0);
    ck_assert_str_eq(b, "");
    name_format_set(&names_exec_inst, EXEC_REDUCE_ONLY | EXEC_POST_ONLY, b, sizeof(b));
    ck_assert_str_eq(b, "ParticipateDoNotInitiate,ReduceOnly");
    name_format_set(&names_exec_inst, EXEC_CLOSE | EXEC_LAST_PRICE, b, sizeof(b));
    ck_assert_str_eq(b, "LastPrice,Close");
    size_t n = name_format_set(&names_exec_inst, 0x1ffu | 0xfe00u, b, sizeof(b));
    ck_assert_str_eq(b, "ParticipateDoNotInitiate,AllOrNone,MarkPrice,IndexPrice,LastPrice,Close,ReduceOnly,"
                        "Fixed,LastWithinMark");
    ck_assert_uint_eq(n, strlen(b));
    name_format_set(&names_exec_inst, 1u << 9, b, sizeof(b)); /* no name */
    ck_assert_str_eq(b, "");
    /* A name that does not fit ends the text; no part of it is written. */
    char s[30];
    n = name_format_set(&names_exec_inst, EXEC_POST_ONLY | EXEC_ALL_OR_NONE, s, sizeof(s));
    ck_assert_str_eq(s, "ParticipateDoNotInitiate");
    ck_assert_uint_eq(n, 24);
}
END_TEST

START_TEST(exec_inst_set_round_trips)
{
    char b[160];
    for (unsigned bits = 0; bits < 512; bits++) {
        name_format_set(&names_exec_inst, bits, b, sizeof(b));
        unsigned back = 0xdead;
        ck_assert_msg(name_parse_set(&names_exec_inst, b, &back), "'%s'", b);
        ck_assert_uint_eq(back, bits);
    }
}
END_TEST

START_TEST(exec_inst_set_parsing_rules)
{
    unsigned v = 0;
    ck_assert(name_parse_set(&names_exec_inst, "ReduceOnly, Close", &v)); /* spaces before a name */
    ck_assert_uint_eq(v, EXEC_REDUCE_ONLY | EXEC_CLOSE);
    ck_assert(name_parse_set(&names_exec_inst, ",,Close,,", &v)); /* empty items */
    ck_assert_uint_eq(v, EXEC_CLOSE);
    ck_assert(name_parse_set(&names_exec_inst, "Close,Close", &v));
    ck_assert_uint_eq(v, EXEC_CLOSE);
    ck_assert(name_parse_set(&names_exec_inst, "", &v));
    ck_assert_uint_eq(v, 0);
    ck_assert(name_parse_set(&names_exec_inst, NULL, &v));
    ck_assert_uint_eq(v, 0);
    v = 42;
    ck_assert(!name_parse_set(&names_exec_inst, "ReduceOnly ,Close", &v)); /* a space after */
    ck_assert(!name_parse_set(&names_exec_inst, "close", &v));
    ck_assert(!name_parse_set(&names_exec_inst, "Close,reduceonly", &v));
    ck_assert(!name_parse_set(&names_exec_inst, "Close, ", &v)); /* an item of spaces */
    ck_assert(!name_parse_set(&names_exec_inst, "Close;Fixed", &v));
    ck_assert(!name_parse_set(&names_exec_inst, "Buy", &v));
    ck_assert_uint_eq(v, 42); /* unchanged when refused */
    /* Reads NAME_SET_TEXT_MAX characters: 42 "Close," are 252, then "Fix" of "Fixed". */
    char t[400] = "";
    for (int i = 0; i < 42; i++)
        strcat(t, "Close,");
    strcat(t, "Fixed");
    ck_assert(!name_parse_set(&names_exec_inst, t, &v));
    t[252] = 0;
    strcat(t, ",,,Bogus"); /* "Bogus" is past the end: not read */
    ck_assert(name_parse_set(&names_exec_inst, t, &v));
    ck_assert_uint_eq(v, EXEC_CLOSE);
}
END_TEST

START_TEST(permissions_set)
{
    char b[64];
    name_format_set(&names_permission, PERM_ORDER | PERM_CANCEL | PERM_WITHDRAW, b, sizeof(b));
    ck_assert_str_eq(b, "order,orderCancel,withdraw");
    name_format_set(&names_permission, PERM_WITHDRAW, b, sizeof(b));
    ck_assert_str_eq(b, "withdraw");
    name_format_set(&names_permission, 0, b, sizeof(b)); /* "read" is never printed in a set */
    ck_assert_str_eq(b, "");
    unsigned v = 0;
    ck_assert(name_parse_set(&names_permission, "read,orderCancel", &v));
    ck_assert_uint_eq(v, PERM_CANCEL);
}
END_TEST

static Suite *names_suite(void)
{
    Suite *s = suite_create("api_names");
    TCase *t = tcase_create("names");
    tcase_add_test(t, every_name_round_trips);
    tcase_add_test(t, printing_is_what_render_printed);
    tcase_add_test(t, values_without_a_name_print_empty);
    tcase_add_test(t, parsing_accepts_what_the_routes_accepted);
    tcase_add_test(t, parsing_is_case_sensitive_and_exact);
    tcase_add_test(t, exec_inst_set_prints_in_bitmex_order);
    tcase_add_test(t, exec_inst_set_round_trips);
    tcase_add_test(t, exec_inst_set_parsing_rules);
    tcase_add_test(t, permissions_set);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(names_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
