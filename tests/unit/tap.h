/* tap.h - the unit tests' assertions, printed as TAP.
 *
 * Each check prints "ok N - name" or "not ok N - name" with the file and
 * line of a failure; tests/run.sh counts these lines across every suite to
 * print the closing "N passed, N failed". A test binary exits non-zero when
 * any of its checks failed. Header-only: each test file is one program.
 *
 *   int main(void) {
 *       T_OK(1 + 1 == 2, "arithmetic");
 *       T_NEAR(0.1 + 0.2, 0.3, 1e-12, "floating point");
 *       return t_done();
 *   }
 */
#ifndef PRM_TAP_H
#define PRM_TAP_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int t_run, t_fail;

static inline int t_check(int cond, const char *name, const char *file, int line,
                          const char *detail)
{
    t_run++;
    if (cond) {
        printf("ok %d - %s\n", t_run, name);
    } else {
        t_fail++;
        printf("not ok %d - %s\n#   at %s:%d%s%s\n", t_run, name, file, line,
               detail ? ": " : "", detail ? detail : "");
    }
    fflush(stdout);
    return cond;
}

#define T_OK(cond, name) t_check(!!(cond), (name), __FILE__, __LINE__, NULL)

#define T_NEAR(got, want, tol, name) do { \
    double g_ = (got), w_ = (want); char d_[160]; \
    snprintf(d_, sizeof d_, "got %.10g, want %.10g (tol %.3g)", g_, w_, (double)(tol)); \
    t_check(isfinite(g_) && fabs(g_ - w_) <= (tol), (name), __FILE__, __LINE__, d_); \
} while (0)

#define T_EQ_INT(got, want, name) do { \
    long long g_ = (long long)(got), w_ = (long long)(want); char d_[120]; \
    snprintf(d_, sizeof d_, "got %lld, want %lld", g_, w_); \
    t_check(g_ == w_, (name), __FILE__, __LINE__, d_); \
} while (0)

#define T_EQ_STR(got, want, name) do { \
    const char *g_ = (got), *w_ = (want); char d_[400]; \
    snprintf(d_, sizeof d_, "got \"%.180s\", want \"%.180s\"", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    t_check(g_ && w_ && strcmp(g_, w_) == 0, (name), __FILE__, __LINE__, d_); \
} while (0)

static inline int t_done(void)
{
    printf("1..%d\n", t_run);
    return t_fail ? 1 : 0;
}

#endif
