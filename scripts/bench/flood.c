/*
 * flood.c — the flood case of Ferry's edge-protection benchmark (scripts/bench-flood.sh). Loopback only.
 *
 *   flood flood -a 127.0.0.1:PORT -s SOURCES -d SECONDS      junk from SOURCES distinct 127.x.y.z sources
 *   flood ping  -a 127.0.0.1:PORT -d SECONDS [-r HZ]          one legitimate flow, HZ datagrams/s (1000)
 *
 * flood: one socket, sendmmsg in batches of 64 as fast as it goes; each datagram (32 zero bytes) leaves
 * from its own source address, set per message with IP_PKTINFO (any 127.0.0.0/8 address is local on lo,
 * so no bind per source). Sources are 127.1.0.0 upwards (never 127.0.0.x). Prints datagrams sent and the
 * rate.
 * ping: from 127.0.0.1, a datagram starting with ff ff ff ff, a sequence number and its send time every
 * 1/HZ s; echoes are matched by sequence. Prints sent, received, lost (no echo 200 ms after sending), p50,
 * p99 and max round trip in µs. Both modes stop by themselves after SECONDS.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in parse_addr(const char *text) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  char host[64];
  const char *colon = strrchr(text, ':');
  if (colon == NULL || colon - text >= (long)sizeof host) exit(2);
  memcpy(host, text, colon - text);
  host[colon - text] = 0;
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || (ntohl(a.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "flood: %s is not a 127.0.0.0/8 address\n", text);
    exit(2);
  }
  a.sin_port = htons(atoi(colon + 1));
  return a;
}

#define BATCH 64

static int run_flood(struct sockaddr_in to, long sources, double seconds) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  static char payload[32];
  static struct mmsghdr msgs[BATCH];
  static struct iovec iov[BATCH];
  static char ctl[BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
  static struct in_pktinfo *pk[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = payload;
    iov[i].iov_len = sizeof payload;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_control = ctl[i];
    msgs[i].msg_hdr.msg_controllen = sizeof ctl[i];
    struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    pk[i] = (struct in_pktinfo *)CMSG_DATA(c);
    memset(pk[i], 0, sizeof *pk[i]);
  }
  long sent = 0, next = 0;
  double start = now_s(), end = start + seconds;
  while (now_s() < end) {
    for (int i = 0; i < BATCH; i++) {
      pk[i]->ipi_spec_dst.s_addr = htonl((127u << 24) + (1u << 16) + (uint32_t)next);
      next = (next + 1) % sources;
    }
    int n = sendmmsg(fd, msgs, BATCH, 0);
    if (n > 0) sent += n;
  }
  double took = now_s() - start;
  printf("flood: %ld datagrams from %ld sources in %.2f s (%.0f/s)\n", sent, sources, took, sent / took);
  return 0;
}

#define MAX_PINGS 1000000
static double sent_at[MAX_PINGS];
static double rtt_us[MAX_PINGS];

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int run_ping(struct sockaddr_in to, double seconds, double hz) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0 || connect(fd, (struct sockaddr *)&to, sizeof to)) {
    perror("flood ping");
    return 1;
  }
  long sent = 0, got = 0;
  double start = now_s(), end = start + seconds, period = 1.0 / hz;
  unsigned char buf[64];
  while (now_s() < end + 0.2) {
    double t = now_s();
    if (t < end && t >= start + sent * period && sent < MAX_PINGS) {
      unsigned char out[16] = {0xff, 0xff, 0xff, 0xff};
      memcpy(out + 4, &sent, sizeof sent);
      sent_at[sent] = t;
      rtt_us[sent] = -1;
      if (send(fd, out, sizeof out, 0) == sizeof out) sent++;
    }
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) == 16) {
      long seq;
      memcpy(&seq, buf + 4, sizeof seq);
      if (seq >= 0 && seq < sent && rtt_us[seq] < 0) {
        double r = (now_s() - sent_at[seq]) * 1e6;
        if (r <= 200000) rtt_us[seq] = r, got++;
      }
    }
    usleep(50);
  }
  double *ok = malloc(sizeof(double) * (got > 0 ? got : 1));
  long k = 0;
  for (long i = 0; i < sent; i++) if (rtt_us[i] >= 0) ok[k++] = rtt_us[i];
  qsort(ok, k, sizeof *ok, cmp);
  printf("ping: sent %ld received %ld lost %ld (%.3f%%) p50 %.0f us p99 %.0f us max %.0f us\n", sent, got, sent - got,
         sent > 0 ? 100.0 * (sent - got) / sent : 0, k ? ok[k / 2] : -1, k ? ok[(long)(k * 0.99)] : -1,
         k ? ok[k - 1] : -1);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: flood flood|ping -a 127.0.0.1:PORT -d SECONDS [-s SOURCES] [-r HZ]\n");
    return 2;
  }
  struct sockaddr_in to = {0};
  double seconds = 3, hz = 1000;
  long sources = 200000;
  int c;
  optind = 2;
  while ((c = getopt(argc, argv, "a:d:s:r:")) != -1) {
    if (c == 'a') to = parse_addr(optarg);
    if (c == 'd') seconds = atof(optarg);
    if (c == 's') sources = atol(optarg);
    if (c == 'r') hz = atof(optarg);
  }
  if (to.sin_port == 0 || seconds <= 0 || seconds > 60 || sources < 1 || sources > 16000000) return 2;
  if (strcmp(argv[1], "flood") == 0) return run_flood(to, sources, seconds);
  if (strcmp(argv[1], "ping") == 0) return run_ping(to, seconds, hz);
  return 2;
}
