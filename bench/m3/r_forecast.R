# r_forecast.R - the R side of the M3 benchmark (bench/m3/run.sh).
#
#   Rscript r_forecast.R M3_DIR SUBSET OUTDIR [STEP [METHODS]]
#
# Fits forecast::ets, forecast::thetaf and forecast::auto.arima (METHODS, a
# comma-separated subset of "ets,thetaf,arima"; default all three) to every
# STEP-th series of m3_SUBSET_train.csv.gz and writes, per method,
# OUTDIR/r_SUBSET_METHOD.csv (one row per series and horizon step: mean and
# the 80/95% bounds) and OUTDIR/r_SUBSET_METHOD_time.csv (wall and CPU
# seconds); for ets also OUTDIR/r_SUBSET_ets_models.csv (the chosen model
# and its log-likelihood, for the optimiser comparison).  Scoring is done by the C side (m3bench.c) with
# engine/metrics.c, so both sides are scored by the same code; the mean of
# the three (R's "EAT") is formed there too.
suppressMessages(library(forecast))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; subset <- args[2]; out <- args[3]
step <- if (length(args) >= 4) as.integer(args[4]) else 1L
methods <- if (length(args) >= 5) strsplit(args[5], ",")[[1]] else c("ets", "thetaf", "arima")
tr <- read.csv(gzfile(file.path(dir, sprintf("m3_%s_train.csv.gz", subset))),
               stringsAsFactors = FALSE)
idx <- seq(1L, nrow(tr), by = step)
ycols <- grep("^y[0-9]+$", names(tr))
series <- lapply(idx, function(i) {
  v <- as.numeric(tr[i, ycols]); v <- v[!is.na(v)]
  ts(v, frequency = tr$freq[i], start = c(tr$start_year[i], tr$start_period[i]))
})
h <- tr$h[idx]
put <- function(name, id, fc) {
  data.frame(series = id, method = name, k = seq_along(fc$mean),
             mean = as.numeric(fc$mean),
             lo80 = as.numeric(fc$lower[, 1]), hi80 = as.numeric(fc$upper[, 1]),
             lo95 = as.numeric(fc$lower[, 2]), hi95 = as.numeric(fc$upper[, 2]))
}
for (meth in methods) {
  name <- paste0("R_", if (meth == "arima") "auto.arima" else meth)
  res <- vector("list", length(idx))
  models <- vector("list", length(idx))
  t0 <- proc.time()
  for (j in seq_along(idx)) {
    y <- series[[j]]
    fc <- switch(meth,
                 ets = {
                   fit <- ets(y)
                   models[[j]] <- data.frame(series = tr$series[idx[j]], model = fit$method,
                                             loglik = fit$loglik)
                   forecast(fit, h = h[j], level = c(80, 95))
                 },
                 thetaf = thetaf(y, h = h[j], level = c(80, 95)),
                 arima = forecast(auto.arima(y), h = h[j], level = c(80, 95)))
    res[[j]] <- put(name, tr$series[idx[j]], fc)
  }
  t1 <- proc.time() - t0
  times <- data.frame(method = name, wall = t1[["elapsed"]],
                      cpu = t1[["user.self"]] + t1[["sys.self"]], nseries = length(idx))
  write.csv(do.call(rbind, res), file.path(out, sprintf("r_%s_%s.csv", subset, meth)),
            row.names = FALSE, quote = FALSE)
  if (meth == "ets")
    write.csv(do.call(rbind, models), file.path(out, sprintf("r_%s_ets_models.csv", subset)),
              row.names = FALSE, quote = FALSE)
  write.csv(times, file.path(out, sprintf("r_%s_%s_time.csv", subset, meth)),
            row.names = FALSE, quote = FALSE)
}
