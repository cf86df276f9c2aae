/* test_metrics.c - the accuracy measures (metrics.h) on hand-computed cases. */
#include <math.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

int main(void)
{
    prm_error err;
    metrics_result m;
    double y[4] = {100, 200, 0, 50}, f[4] = {110, 180, 10, 50};
    double x[8] = {10, 20, 30, 40, 12, 22, 32, 42}; /* in-sample, period 4 */

    T_OK(metrics_compute(y, f, 4, x, 8, 4, NULL, 0, &m, &err) == 0, "compute");
    T_EQ_INT(m.n, 4, "n");
    /* MAPE skips y = 0: (10/100 + 20/200 + 0/50) / 3 */
    T_NEAR(m.mape, 100.0 * (0.1 + 0.1 + 0.0) / 3, 1e-12, "MAPE over non-zero actuals");
    T_NEAR(m.wape, 100.0 * 40 / 350, 1e-12, "WAPE");
    double smape = (200.0 * 10 / 210 + 200.0 * 20 / 380 + 200.0 * 10 / 10 + 0) / 4;
    T_NEAR(m.smape, smape, 1e-12, "sMAPE (M3 definition)");
    T_NEAR(metrics_smape(y, f, 4), smape, 1e-12, "metrics_smape");
    T_NEAR(metrics_mase_scale(x, 8, 4), 2.0, 1e-12, "MASE scale: seasonal naive MAE");
    T_NEAR(m.mase, 10.0 / 2.0, 1e-12, "MASE");
    T_NEAR(m.bias, (10 - 20 + 10 + 0) / 4.0, 1e-12, "bias = mean(f - y)");
    T_NEAR(m.bias_pct, 0.0, 1e-12, "bias_pct");
    T_NEAR(m.rmse, sqrt((100 + 400 + 100) / 4.0), 1e-12, "RMSE");
    /* a short in-sample series falls back to lag 1 */
    T_NEAR(metrics_mase_scale(x, 4, 12), 10.0, 1e-12, "MASE scale with n <= period: lag 1");
    T_OK(isnan(metrics_mase_scale(NULL, 0, 4)), "MASE scale undefined without in-sample data");
    double c[5] = {3, 3, 3, 3, 3};
    T_OK(isnan(metrics_mase_scale(c, 5, 1)), "MASE scale undefined for a constant series");

    /* intervals */
    double lo[4] = {90, 150, 5, 60}, hi[4] = {120, 190, 20, 70};
    metrics_interval iv[1] = {{80, lo, hi}};
    T_OK(metrics_compute(y, f, 4, x, 8, 4, iv, 1, &m, &err) == 0, "compute with an interval");
    /* y inside: 100 yes, 200 no (above), 0 no (below), 50 no (below) */
    T_NEAR(m.coverage[0], 25.0, 1e-12, "coverage");
    double tau = 0.1;
    double pin = 0.0;
    for (int k = 0; k < 4; k++)
        pin += 0.5 * (metrics_pinball(y[k], lo[k], tau) + metrics_pinball(y[k], hi[k], 1 - tau));
    T_NEAR(m.pinball[0], pin / 4, 1e-12, "pinball");
    T_NEAR(metrics_pinball(10, 8, 0.1), 0.2, 1e-12, "pinball above the quantile");
    T_NEAR(metrics_pinball(10, 12, 0.1), 1.8, 1e-12, "pinball below the quantile");
    double is = (30) + (40 + 2 / 0.2 * 10) + (15 + 2 / 0.2 * 5) + (10 + 2 / 0.2 * 10);
    T_NEAR(m.msis[0], is / 4 / 2.0, 1e-12, "MSIS");

    /* missing points are skipped; all-zero actuals leave MAPE undefined */
    double yn[3] = {NAN, 0, 0}, fn[3] = {1, 0, 2};
    T_OK(metrics_compute(yn, fn, 3, NULL, 0, 1, NULL, 0, &m, &err) == 0, "compute with NaN");
    T_EQ_INT(m.n, 2, "NaN actual skipped");
    T_OK(isnan(m.mape) && isnan(m.wape) && isnan(m.mase), "undefined measures are NaN");
    T_NEAR(m.smape, (0 + 200.0) / 2, 1e-12, "sMAPE: 0/0 counts 0");
    /* errors */
    T_OK(metrics_compute(yn, fn, 1, NULL, 0, 1, NULL, 0, &m, &err) == -1 &&
             strstr(err.msg, "missing"), "every point missing: error");
    metrics_interval bad[1] = {{100, lo, hi}};
    T_OK(metrics_compute(y, f, 4, NULL, 0, 1, bad, 1, &m, &err) == -1, "level 100: error");
    T_OK(metrics_compute(y, f, 0, NULL, 0, 1, NULL, 0, &m, &err) == -1, "h = 0: error");
    return t_done();
}
