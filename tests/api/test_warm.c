/*
 * test_warm.c - Check suite for api/warm: the CPUs are kept busy for the
 * window after a touch and not at all once it has passed.
 *
 * The spinners run at SCHED_IDLE, so on a loaded machine they may get
 * little CPU (the suite runs alone: is_parallel false): the checks are "at
 * least 1 ms of the spinners' CPU" inside a window of 100 ms or more and
 * "under 1 ms" outside it (sleeping threads use none), never an amount
 * tied to speed.
 */
#include <check.h>
#include <stdint.h>
#include <time.h>

#include "api/warm.h"

#define MS (INT64_C(1000000))

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of every thread but this one: the spinners' (Check runs each
 * test in a forked child with no other threads). */
static int64_t cpu_ns(void)
{
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID) - clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

START_TEST(off_and_null_are_safe)
{
    ck_assert_ptr_null(warm_start(0));
    ck_assert_ptr_null(warm_start(-5));
    warm_touch(NULL);
    warm_stop(NULL);
}
END_TEST

START_TEST(spins_in_the_window_and_sleeps_after)
{
    struct warm *w = warm_start(150 * MS);
    ck_assert_ptr_nonnull(w);
    /* Started cold: no request yet, so nothing spins. */
    sleep_ms(50);
    int64_t c0 = cpu_ns();
    sleep_ms(200);
    int64_t idle_before = cpu_ns() - c0;

    warm_touch(w);
    c0 = cpu_ns();
    sleep_ms(100); /* inside the 150 ms window */
    int64_t hot = cpu_ns() - c0;

    sleep_ms(100); /* the window ends at 150 ms */
    c0 = cpu_ns();
    sleep_ms(200);
    int64_t idle_after = cpu_ns() - c0;
    warm_stop(w);

    ck_assert_msg(idle_before < MS, "cold: %lld ns of CPU in 200 ms", (long long)idle_before);
    ck_assert_msg(hot >= MS, "%lld ns of CPU inside the window", (long long)hot);
    ck_assert_msg(idle_after < MS, "after the window: %lld ns of CPU in 200 ms",
                  (long long)idle_after);
}
END_TEST

START_TEST(a_touch_wakes_sleeping_spinners_again)
{
    struct warm *w = warm_start(100 * MS);
    ck_assert_ptr_nonnull(w);
    for (int round = 0; round < 3; round++) {
        sleep_ms(150); /* asleep by now */
        warm_touch(w);
        int64_t c0 = cpu_ns();
        sleep_ms(80);
        int64_t used = cpu_ns() - c0;
        ck_assert_msg(used >= MS, "round %d: %lld ns of spinner CPU after a touch", round,
                      (long long)used);
    }
    warm_stop(w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("warm");
    TCase *t = tcase_create("warm");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, off_and_null_are_safe);
    tcase_add_test(t, spins_in_the_window_and_sleeps_after);
    tcase_add_test(t, a_touch_wakes_sleeping_spinners_again);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? 0 : 1;
}
