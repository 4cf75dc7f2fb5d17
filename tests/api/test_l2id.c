/*
 * test_l2id.c - Check suite for api/l2id: BitMEX's orderBookL2 ids.
 *
 * Vectors are BitMEX's own numbers: its documentation's example (price
 * 10476 <-> 8798952400, XBTUSD symbolIdx 88, legacy tick 0.01) and captured
 * feed rows (22105, 22077.5, 26902 on idx 88; 8215.5 on the 2018 testnet
 * idx 156).
 */
#include <check.h>
#include <stdlib.h>

#include "api/l2id.h"

#define PX(units, cents) ((px_t)(units) * PX_SCALE + (px_t)(cents) * 1000000)

static const px_t XBTUSD_TICK = 50000000; /* 0.5: the instrument's tick today */
static px_t legacy_tick(void)
{
    return l2_formula_tick_px("XBTUSD", XBTUSD_TICK);
}

static int64_t id_of(int64_t idx, px_t price, px_t tick)
{
    int64_t id = 0;
    ck_assert_int_eq(l2_id_from_price(idx, price, tick, &id), L2_OK);
    return id;
}

static px_t price_of(int64_t idx, int64_t id, px_t tick)
{
    px_t p = 0;
    ck_assert_int_eq(l2_price_from_id(idx, id, tick, &p), L2_OK);
    return p;
}

START_TEST(legacy_ticks_override_the_instrument_tick)
{
    ck_assert_int_eq(l2_formula_tick_px("XBTUSD", XBTUSD_TICK), 1000000);
    ck_assert_int_eq(l2_formula_tick_px("XBTZ17", 50000000), 10000000);
    ck_assert_int_eq(l2_formula_tick_px("XBJZ17", 100000000), 100000000);
    ck_assert_int_eq(l2_formula_tick_px("ETHUSD", 5000000), 5000000);
    ck_assert_int_eq(l2_formula_tick_px("xbtusd", 50000000), 50000000); /* exact match only */
    ck_assert_int_eq(l2_formula_tick_px(NULL, 777), 777);
}
END_TEST

START_TEST(seed_002_example_10476_is_8798952400)
{
    ck_assert_int_eq(id_of(88, PX(10476, 0), legacy_tick()), INT64_C(8798952400));
    ck_assert_int_eq(price_of(88, INT64_C(8798952400), legacy_tick()), PX(10476, 0));
}
END_TEST

START_TEST(captured_xbtusd_rows_decode_to_their_prices)
{
    /* captured rows: the 2023 orderBookL2_25 partial */
    ck_assert_int_eq(id_of(88, PX(22105, 0), legacy_tick()), INT64_C(8797789500));
    ck_assert_int_eq(id_of(88, PX(22077, 50), legacy_tick()), INT64_C(8797792250));
    ck_assert_int_eq(id_of(88, PX(26902, 0), legacy_tick()), INT64_C(8797309800));
    ck_assert_int_eq(price_of(88, INT64_C(8797789500), legacy_tick()), PX(22105, 0));
    ck_assert_int_eq(price_of(88, INT64_C(8797792250), legacy_tick()), PX(22077, 50));
    ck_assert_int_eq(price_of(88, INT64_C(8797309800), legacy_tick()), PX(26902, 0));
    /* 2018 testnet, idx 156 */
    ck_assert_int_eq(id_of(156, PX(8215, 50), legacy_tick()), INT64_C(15599178450));
    ck_assert_int_eq(price_of(156, INT64_C(15599178450), legacy_tick()), PX(8215, 50));
}
END_TEST

START_TEST(higher_price_gives_lower_id)
{
    int64_t a = id_of(88, PX(20000, 0), legacy_tick());
    int64_t b = id_of(88, PX(20000, 50), legacy_tick());
    ck_assert_int_eq(a - b, 50); /* 0.5 apart = 50 legacy ticks */
}
END_TEST

START_TEST(instrument_tick_used_when_no_legacy_override)
{
    /* ETHUSD-like tick 0.05 at idx 3: 2000.05 / 0.05 = 40001 ticks */
    px_t tick = l2_formula_tick_px("ETHUSD", 5000000);
    ck_assert_int_eq(id_of(3, PX(2000, 5), tick), 300000000 - 40001);
    ck_assert_int_eq(price_of(3, 300000000 - 40001, tick), PX(2000, 5));
}
END_TEST

START_TEST(off_tick_and_non_positive_prices_are_rejected)
{
    int64_t id = 42;
    ck_assert_int_eq(l2_id_from_price(88, PX(100, 0) + 1, legacy_tick(), &id), L2_ERR_OFF_TICK);
    ck_assert_int_eq(l2_id_from_price(88, 0, legacy_tick(), &id), L2_ERR_OFF_TICK);
    ck_assert_int_eq(l2_id_from_price(88, -PX(1, 0), legacy_tick(), &id), L2_ERR_OFF_TICK);
    ck_assert_int_eq(l2_id_from_price(88, PX(100, 0), 0, &id), L2_ERR_TICK);
    ck_assert_int_eq(id, 42); /* untouched on error */
}
END_TEST

START_TEST(tick_count_and_symbol_index_ranges)
{
    int64_t id = 0;
    px_t tick = legacy_tick();
    /* 1e8 ticks (1,000,000.00) is the largest count: id = 1e8 * 87 */
    ck_assert_int_eq(l2_id_from_price(88, PX(1000000, 0), tick, &id), L2_OK);
    ck_assert_int_eq(id, INT64_C(8700000000));
    ck_assert_int_eq(l2_id_from_price(88, PX(1000000, 1), tick, &id), L2_ERR_RANGE);
    ck_assert_int_eq(l2_id_from_price(-1, PX(1, 0), tick, &id), L2_ERR_RANGE);
    ck_assert_int_eq(l2_id_from_price(L2_IDX_MAX, PX(1, 0), tick, &id), L2_OK);
    ck_assert_int_eq(id, L2_IDX_MAX * L2_IDX_STRIDE - 100);
    ck_assert_int_eq(l2_id_from_price(L2_IDX_MAX + 1, PX(1, 0), tick, &id), L2_ERR_RANGE);
    /* symbol 0: negative ids, as the formula gives */
    ck_assert_int_eq(l2_id_from_price(0, PX(1, 0), tick, &id), L2_OK);
    ck_assert_int_eq(id, -100);
}
END_TEST

START_TEST(ids_of_another_symbol_do_not_decode)
{
    px_t p = 0;
    px_t tick = legacy_tick();
    /* idx 87's ids end at 1e8*87 - 1; 1e8*87 itself is idx 88's 1e8 ticks */
    ck_assert_int_eq(l2_price_from_id(88, INT64_C(8700000000), tick, &p), L2_OK);
    ck_assert_int_eq(p, PX(1000000, 0));
    ck_assert_int_eq(l2_price_from_id(88, INT64_C(8699999999), tick, &p), L2_ERR_RANGE);
    ck_assert_int_eq(l2_price_from_id(88, INT64_C(8800000000), tick, &p), L2_ERR_RANGE);
    ck_assert_int_eq(l2_price_from_id(88, INT64_MAX, tick, &p), L2_ERR_RANGE);
    ck_assert_int_eq(l2_price_from_id(88, INT64_MIN, tick, &p), L2_ERR_RANGE);
    ck_assert_int_eq(l2_price_from_id(88, INT64_C(8799999999), 0, &p), L2_ERR_TICK);
}
END_TEST

START_TEST(split_recovers_symbol_and_ticks)
{
    int64_t idx = 0, ticks = 0;
    ck_assert_int_eq(l2_split_id(INT64_C(8798952400), &idx, &ticks), L2_OK);
    ck_assert_int_eq(idx, 88);
    ck_assert_int_eq(ticks, 1047600);
    ck_assert_int_eq(l2_split_id(INT64_C(8700000000), &idx, &ticks), L2_OK);
    ck_assert_int_eq(idx, 88);
    ck_assert_int_eq(ticks, 100000000);
    ck_assert_int_eq(l2_split_id(INT64_C(8799999999), &idx, &ticks), L2_OK);
    ck_assert_int_eq(idx, 88);
    ck_assert_int_eq(ticks, 1);
    ck_assert_int_eq(l2_split_id(-1, &idx, &ticks), L2_OK);
    ck_assert_int_eq(idx, 0);
    ck_assert_int_eq(ticks, 1);
    ck_assert_int_eq(l2_split_id(-100000000, &idx, &ticks), L2_OK);
    ck_assert_int_eq(idx, 0);
    ck_assert_int_eq(ticks, 100000000);
    ck_assert_int_eq(l2_split_id(-100000001, &idx, &ticks), L2_ERR_RANGE);
    ck_assert_int_eq(l2_split_id(INT64_MAX, &idx, &ticks), L2_ERR_RANGE);
}
END_TEST

START_TEST(round_trip_over_every_tick_of_a_range)
{
    px_t tick = legacy_tick();
    for (int64_t t = 1; t <= 200000; t += 7) {
        int64_t id = id_of(5, t * tick, tick);
        ck_assert_int_eq(price_of(5, id, tick), t * tick);
        int64_t idx = 0, ticks = 0;
        ck_assert_int_eq(l2_split_id(id, &idx, &ticks), L2_OK);
        ck_assert_int_eq(idx, 5);
        ck_assert_int_eq(ticks, t);
    }
}
END_TEST

static Suite *l2id_suite(void)
{
    Suite *s = suite_create("api_l2id");
    TCase *t = tcase_create("l2id");
    tcase_add_test(t, legacy_ticks_override_the_instrument_tick);
    tcase_add_test(t, seed_002_example_10476_is_8798952400);
    tcase_add_test(t, captured_xbtusd_rows_decode_to_their_prices);
    tcase_add_test(t, higher_price_gives_lower_id);
    tcase_add_test(t, instrument_tick_used_when_no_legacy_override);
    tcase_add_test(t, off_tick_and_non_positive_prices_are_rejected);
    tcase_add_test(t, tick_count_and_symbol_index_ranges);
    tcase_add_test(t, ids_of_another_symbol_do_not_decode);
    tcase_add_test(t, split_recovers_symbol_and_ticks);
    tcase_add_test(t, round_trip_over_every_tick_of_a_range);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(l2id_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
