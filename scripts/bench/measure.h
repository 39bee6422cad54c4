/* Clocks and the latency histogram the benchmark load generators share (loadgen.c, churn.c).
 * A header of static inline functions: each tool is one file compiled with `cc -O2`, no library to link. */
#ifndef FERRY_BENCH_MEASURE_H
#define FERRY_BENCH_MEASURE_H

#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

/* Latencies are counted per microsecond up to 2 s; slower ones land in the last bucket. */
#define HIST_US 2000000

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU seconds (user + system) this process used so far */
static inline double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t *hist; /* HIST_US counters, allocated by the tool */
static uint64_t hist_n;

static inline void hist_add(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us >= HIST_US) us = HIST_US - 1;
  hist[us]++;
  hist_n++;
}

/* The latency in µs below which a fraction `p` of the samples fall. */
static inline double hist_pct(double p) {
  if (hist_n == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_n);
  if (want >= hist_n) want = hist_n - 1;
  uint64_t seen = 0;
  for (uint64_t i = 0; i < HIST_US; i++) {
    seen += hist[i];
    if (seen > want) return (double)i;
  }
  return HIST_US;
}

#endif
