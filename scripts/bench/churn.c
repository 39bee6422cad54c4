/*
 * churn.c — DNS-shaped load for Ferry's benchmark (scripts/bench.sh --only churn). Loopback only.
 *
 *   churn -a HOST:PORT [-c CONC] [-s BYTES] [-d SECS] [-W WARMUP] [-o TIMEOUT_MS] [-p same|fresh|rotate]
 *
 * CONC clients, each with exactly one request outstanding, as a stub resolver asking one question at a
 * time. The relay under test closes a flow after its reply (Ferry `responses = 1`, nginx
 * `proxy_responses 1`), so every request opens a new flow there:
 *   -p same   each client keeps its socket: the next request comes from the same port (a new flow each
 *             time because the last one closed);
 *   -p fresh  each request comes from a fresh socket (a new source port), as resolvers randomise ports;
 *             the load side then pays socket+bind+connect+epoll_ctl+close per request, which on a 2-core
 *             machine can make it, not the relay, the bottleneck;
 *   -p rotate each client cycles through ROTATE sockets opened once: every request comes from another
 *             source port than the client's last ROTATE-1 requests (to the relay, as new as a fresh one:
 *             that port's last flow closed long ago), without the per-request socket cost on the load side.
 * A request carries {magic, client, seq, send time}; a reply counts only if it comes back on the socket
 * that sent it with the current seq and the full length. A request unanswered for TIMEOUT_MS (default 200)
 * is counted lost and the client asks again (from a fresh socket in fresh mode).
 *
 * Counts and latency percentiles cover only the SECS window after WARMUP. Result: one key=value line on
 * stdout (rtps = flows/s, i.e. answered requests per second), a readable summary on stderr. One thread,
 * one epoll loop, always ends after WARMUP + SECS + one timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "measure.h"

#define MAGIC 0xD45C4A11u

struct hdr {
  uint32_t magic;
  uint32_t client;
  uint64_t seq;
  uint64_t sent_ns;
};

#define ROTATE 16

struct client {
  int fd;
  int fds[ROTATE]; /* rotate mode: the client's sockets, fds[cur] = fd */
  int cur;
  uint64_t seq;
  uint64_t sent_ns; /* 0 = nothing outstanding */
};

static int ep;
static struct sockaddr_in target;
static uint64_t sock_err;

static int open_socket(uint32_t id) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) { sock_err++; return -1; }
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&any, sizeof any) < 0 || connect(fd, (struct sockaddr *)&target, sizeof target) < 0) {
    close(fd);
    sock_err++;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return fd;
}

int main(int argc, char **argv) {
  int conc = 16, size = 64, timeout_ms = 200, fresh = 0, rotate = 0, c;
  double secs = 10, warmup = 1;
  int have_addr = 0;
  while ((c = getopt(argc, argv, "a:c:s:d:W:o:p:")) != -1) {
    switch (c) {
      case 'a': {
        char host[64];
        const char *colon = strrchr(optarg, ':');
        if (!colon || (size_t)(colon - optarg) >= sizeof host) { fprintf(stderr, "bad -a\n"); return 2; }
        memcpy(host, optarg, (size_t)(colon - optarg));
        host[colon - optarg] = 0;
        target.sin_family = AF_INET;
        target.sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &target.sin_addr) != 1) { fprintf(stderr, "bad host\n"); return 2; }
        have_addr = 1;
        break;
      }
      case 'c': conc = atoi(optarg); break;
      case 's': size = atoi(optarg); break;
      case 'd': secs = atof(optarg); break;
      case 'W': warmup = atof(optarg); break;
      case 'o': timeout_ms = atoi(optarg); break;
      case 'p':
        fresh = strcmp(optarg, "fresh") == 0;
        rotate = strcmp(optarg, "rotate") == 0;
        break;
      default: fprintf(stderr, "bad option\n"); return 2;
    }
  }
  if (!have_addr || conc < 1 || conc > 1024 || size < (int)sizeof(struct hdr) || size > 1400 || secs <= 0 ||
      secs > 600 || warmup < 0 || warmup > 60) {
    fprintf(stderr, "usage: churn -a HOST:PORT [-c 1..1024] [-s 24..1400] [-d S] [-W S] [-o MS] [-p same|fresh|rotate]\n");
    return 2;
  }
  hist = calloc(HIST_US, sizeof *hist);
  ep = epoll_create1(0);
  struct client *cl = calloc((size_t)conc, sizeof *cl);
  unsigned char tx[1400], rx[2048];
  memset(tx, 0x5a, sizeof tx);
  uint64_t sent = 0, matched = 0, lost = 0, stale = 0, bad = 0, send_err = 0;
  uint64_t t0 = now_ns(), t_meas = t0 + (uint64_t)(warmup * 1e9), t_end = t_meas + (uint64_t)(secs * 1e9);
  uint64_t timeout_ns = (uint64_t)timeout_ms * 1000000ull;
  int measuring = 0;

  /* one request from client i (a fresh socket first when asked, or when it has none) */
#define ASK(I, NOW, NEWSOCK)                                                              \
  do {                                                                                    \
    struct client *k_ = &cl[(I)];                                                         \
    if (rotate) {                                                                         \
      k_->cur = (k_->cur + 1) % ROTATE;                                                   \
      if (k_->fds[k_->cur] <= 0) k_->fds[k_->cur] = open_socket((uint32_t)((I) * ROTATE + k_->cur)); \
      k_->fd = k_->fds[k_->cur];                                                          \
    } else if ((NEWSOCK) || k_->fd <= 0) {                                                \
      if (k_->fd > 0) close(k_->fd);                                                      \
      k_->fd = open_socket((uint32_t)(I));                                                \
    }                                                                                     \
    k_->sent_ns = (NOW);                                                                  \
    if (k_->fd <= 0) break;                                                               \
    struct hdr h_ = {MAGIC, (uint32_t)(I), ++k_->seq, (NOW)};                             \
    memcpy(tx, &h_, sizeof h_);                                                           \
    if (send(k_->fd, tx, (size_t)size, 0) != size) send_err++;                            \
    else if (measuring) sent++;                                                           \
  } while (0)

  for (int i = 0; i < conc; i++) ASK(i, t0, 1);
  uint64_t next_scan = t0 + 10000000ull;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 1);
    uint64_t now = now_ns();
    if (now >= t_end + timeout_ns) break;
    int stopping = now >= t_end;
    if (!measuring && !stopping && now >= t_meas) measuring = 1;
    if (stopping) measuring = 0;
    for (int e = 0; e < n; e++) {
      uint32_t id = evs[e].data.u32, i = rotate ? id / ROTATE : id;
      struct client *k = &cl[i];
      int fd = rotate ? k->fds[id % ROTATE] : k->fd;
      int current = fd == k->fd;
      for (;;) {
        ssize_t r = recv(fd, rx, sizeof rx, MSG_DONTWAIT);
        if (r < 0) break;
        struct hdr h;
        if (r != size) { bad++; continue; }
        memcpy(&h, rx, sizeof h);
        if (h.magic != MAGIC || h.client != i) { bad++; continue; }
        if (!current || k->sent_ns == 0 || h.seq != k->seq) { stale++; continue; }
        uint64_t trx = now_ns();
        if (measuring) {
          hist_add(trx - h.sent_ns);
          matched++;
        }
        k->sent_ns = 0;
        if (!stopping) ASK(i, trx, fresh);
        break;
      }
    }
    if (now >= next_scan) {
      now = now_ns(); /* requests sent above carry later times than the `now` read before them */
      next_scan = now + 10000000ull;
      for (int i = 0; i < conc; i++) {
        if (cl[i].sent_ns == 0 && !stopping) ASK(i, now, fresh); /* a failed socket: try again */
        else if (cl[i].sent_ns && now > cl[i].sent_ns && now - cl[i].sent_ns > timeout_ns) {
          if (measuring) lost++;
          cl[i].sent_ns = 0;
          if (!stopping) ASK(i, now, fresh);
        }
      }
    }
  }
  printf("rtps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f sent=%llu matched=%llu lost=%llu stale=%llu bad=%llu "
         "send_err=%llu sock_err=%llu cpu_s=%.2f\n",
         (double)matched / secs, hist_pct(0.5), hist_pct(0.99), hist_pct(0.999), (unsigned long long)sent,
         (unsigned long long)matched, (unsigned long long)lost, (unsigned long long)stale, (unsigned long long)bad,
         (unsigned long long)send_err, (unsigned long long)sock_err, cpu_s());
  fprintf(stderr, "churn %d clients, %s ports, %d B, %.1f s: %.0f flows/s, p50 %.0f us, p99 %.0f us, lost %llu of %llu\n",
          conc, rotate ? "rotating" : fresh ? "fresh" : "same", size, secs, (double)matched / secs, hist_pct(0.5), hist_pct(0.99),
          (unsigned long long)lost, (unsigned long long)sent);
  return matched > 0 ? 0 : 1;
}
