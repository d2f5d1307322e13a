// The machine's floor for one fan-out round: no WebSocket, no JavaScript, no server logic.
// A writer process (1 or more threads) writes one SIZE-byte message to each of N connected
// loopback TCP sockets per round, `rate` rounds per second on absolute deadlines; a reader process
// reads every socket with epoll (like bench/native/reader.c) and measures each message's latency
// from the round's due time. What a gateway adds to a round is what it measures above this.
//
//   floor N rate threads seconds size   -> one JSON line on stdout
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int N = 1000, RATE = 20, THREADS = 1, SECONDS = 5, SIZE = 100;
static int *srv, *cli;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

struct job { int from, to; int64_t due; };

static void *write_range(void *arg) {
  struct job *j = arg;
  char buf[4096];
  memset(buf, 'x', (size_t)SIZE);
  memcpy(buf, &j->due, sizeof j->due);
  for (int i = j->from; i < j->to; i++) {
    if (write(srv[i], buf, (size_t)SIZE) != SIZE) { perror("floor: write"); exit(1); }
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int reader(int64_t total) {
  int ep = epoll_create1(0);
  for (int i = 0; i < N; i++) {
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    fcntl(cli[i], F_SETFL, O_NONBLOCK);
    epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &e);
  }
  int64_t *lat = malloc(sizeof(int64_t) * (size_t)total), got = 0;
  static char buf[1 << 16];
  struct epoll_event ev[1024];
  // Partial messages carry over per socket (a message can straddle two reads).
  int *have = calloc((size_t)N, sizeof(int));
  char *part = malloc((size_t)N * (size_t)SIZE);
  while (got < total) {
    int n = epoll_wait(ep, ev, 1024, 10000);
    if (n <= 0) { fprintf(stderr, "floor: reader timed out with %lld of %lld\n", (long long)got, (long long)total); break; }
    for (int k = 0; k < n; k++) {
      int i = (int)ev[k].data.u32;
      ssize_t r = read(cli[i], buf, sizeof buf);
      if (r <= 0) continue;
      int64_t t = now_ns();
      for (ssize_t o = 0; o < r; o++) {
        part[(size_t)i * (size_t)SIZE + (size_t)have[i]++] = buf[o];
        if (have[i] == SIZE) {
          int64_t due;
          memcpy(&due, part + (size_t)i * (size_t)SIZE, sizeof due);
          if (got < total) lat[got++] = t - due;
          have[i] = 0;
        }
      }
    }
  }
  qsort(lat, (size_t)got, sizeof(int64_t), cmp);
  double ms = 1e6;
  printf("{\"subs\":%d,\"rate\":%d,\"threads\":%d,\"size\":%d,\"messages\":%lld,\"p50Ms\":%.3f,\"p95Ms\":%.3f,\"p99Ms\":%.3f,\"maxMs\":%.3f",
         N, RATE, THREADS, SIZE, (long long)got, lat[got / 2] / ms, lat[got * 95 / 100] / ms, lat[got * 99 / 100] / ms, lat[got - 1] / ms);
  fflush(stdout);
  return got == total ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 1) N = atoi(argv[1]);
  if (argc > 2) RATE = atoi(argv[2]);
  if (argc > 3) THREADS = atoi(argv[3]);
  if (argc > 4) SECONDS = atoi(argv[4]);
  if (argc > 5) SIZE = atoi(argv[5]);
  if (N < 1 || RATE < 1 || THREADS < 1 || THREADS > 16 || SECONDS < 1 || SIZE < 8 || SIZE > 4096) {
    fprintf(stderr, "usage: floor subs rate threads seconds size\n");
    return 2;
  }
  srv = calloc((size_t)N, sizeof(int));
  cli = calloc((size_t)N, sizeof(int));
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
  socklen_t al = sizeof a;
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (struct sockaddr *)&a, &al)) { perror("floor: listen"); return 1; }
  for (int i = 0; i < N; i++) {
    int one = 1;
    cli[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cli[i], (struct sockaddr *)&a, sizeof a)) { perror("floor: connect"); return 1; }
    srv[i] = accept(l, NULL, NULL);
    if (srv[i] < 0) { perror("floor: accept"); return 1; }
    setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int rounds = RATE * SECONDS;
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < N; i++) close(srv[i]);
    return reader((int64_t)rounds * N);
  }
  for (int i = 0; i < N; i++) close(cli[i]);
  struct timespec pause = { 0, 200 * 1000 * 1000 };
  nanosleep(&pause, NULL);
  int64_t start = now_ns() + 10 * 1000 * 1000, spent = 0;
  for (int r = 0; r < rounds; r++) {
    int64_t due = start + (int64_t)r * 1000000000 / RATE;
    struct timespec ts = { (time_t)(due / 1000000000), (long)(due % 1000000000) };
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    pthread_t th[16];
    struct job j[16];
    for (int k = 0; k < THREADS; k++) j[k] = (struct job){ N * k / THREADS, N * (k + 1) / THREADS, due };
    int64_t t0 = now_ns();
    for (int k = 1; k < THREADS; k++) pthread_create(&th[k], NULL, write_range, &j[k]);
    write_range(&j[0]);
    for (int k = 1; k < THREADS; k++) pthread_join(th[k], NULL);
    spent += now_ns() - t0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  // The reader printed the start of the JSON object; the writer adds its own figure.
  printf(",\"roundMs\":%.3f,\"roundUsPerSocket\":%.3f}\n", spent / 1e6 / rounds, spent / 1e3 / rounds / N);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
