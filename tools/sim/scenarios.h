/* The scenarios dht-sim runs.  Each fills a report and prints its human
 * summary to out. */
#ifndef KM_SIM_SCENARIOS_H
#define KM_SIM_SCENARIOS_H

#include <stdio.h>

#include "report.h"
#include "sim.h"

/* Each broadcast gets this long to reach everyone before the next starts
 * (broadcast, churn and mesh alike). */
#define SCENARIO_SETTLE_MS KM_SECONDS(5)

int scenario_lookup(struct sim *s, struct report *r, FILE *out);
int scenario_broadcast(struct sim *s, struct report *r, FILE *out);
int scenario_churn(struct sim *s, struct report *r, FILE *out);
int scenario_mesh(const struct sim_options *opt, struct report *r, FILE *out);

/* Shared by the scenarios: the nodes join one after another, evenly over
 * opt.join_over_ms, each through a random earlier one, then the network
 * settles for opt.settle_ms. */
void scenario_bootstrap(struct sim *s, FILE *out);
/* Reports the heap the nodes hold, per node (allocator statistics less the
 * simulator's own structures): an upper bound on DHT state, stored peers
 * included (the simulation stores none). */
void scenario_measure_state(struct sim *s, struct report *r, FILE *out);
void scenario_run_lookups(struct sim *s, struct report *r, FILE *out);
/* Silences `fraction` of the live nodes, chosen by the world's PRNG. */
size_t scenario_kill(struct sim *s, double fraction);

#endif
