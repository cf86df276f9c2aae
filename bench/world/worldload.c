/* bench/world/worldload.c - the CPU of a score run's world load alone:
 * world_load_as_of(T) then feat_prepare(T), timed with getrusage, RUNS
 * times, on an existing store (bench/world/run.sh builds it against the
 * engine's objects, this tree's and a peer tree's).
 *
 *   worldload DB AS_OF_DATE [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "feat.h"
#include "store.h"
#include "timeutil.h"
#include "world.h"

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: worldload DB AS_OF_DATE [RUNS]\n");
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 1;
    prm_error err = { 0 };
    int64_t t;
    if (date_parse(argv[2], DATE_ISO, &t, &err) < 0) {
        fprintf(stderr, "worldload: %s\n", err.msg);
        return 1;
    }
    t += 86399;   /* the end of the day, as score takes an as-of date */
    store *s;
    if (store_open(argv[1], &s, &err) < 0) {
        fprintf(stderr, "worldload: %s\n", err.msg);
        return 1;
    }
    for (int r = 0; r < runs; r++) {
        double c0 = cpu_now();
        world *w;
        if (world_load_as_of(s, t, &w, &err) < 0) {
            fprintf(stderr, "worldload: %s\n", err.msg);
            return 1;
        }
        double c1 = cpu_now();
        if (feat_prepare(w, t, &err) < 0) {
            fprintf(stderr, "worldload: %s\n", err.msg);
            return 1;
        }
        double c2 = cpu_now();
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("load %.3f s CPU, feat_prepare %.3f s CPU, world %.3f s; %zu deals; peak RSS %ld MB\n",
               c1 - c0, c2 - c1, c2 - c0, world_n_deals(w), ru.ru_maxrss / 1024);
        world_free(w);
    }
    store_close(s);
    return 0;
}
