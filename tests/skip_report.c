/* Linked into every unit test: a Criterion test that skips itself passes
 * silently, so each skip is printed in the form ./tools/test collects
 * (KM-SKIP-CHECK: what: why) and, under CI, fails on unless allowed. */
#include <stdio.h>

#include <criterion/criterion.h>
#include <criterion/hooks.h>

ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
	if (stats->test_status != CR_STATUS_SKIPPED)
		return;
	printf("KM-SKIP-CHECK: %s/%s: %s\n", stats->test->category,
	       stats->test->name, stats->message ? stats->message : "skipped");
	fflush(stdout);
}
