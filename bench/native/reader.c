// Native subscriber reader for the load generator (`--client native`).
//
// gen.mjs opens and subscribes every connection in JavaScript (the upgrade, auth and each
// target's subscribe handshake stay in one place), stops reading them, and passes their file
// descriptors to this process as fds 3, 4, ... From then on this process reads the sockets with
// one epoll loop: it parses server frames, answers pings (and Engine.IO's "2"), and accounts
// latency, loss and duplicates exactly as gen.mjs does, into the same log-linear histogram
// (bench/lib/hist.mjs), so the results merge unchanged.
//
// Why: in Node, reading one small frame costs as much CPU as the server spends sending it (the
// libuv read, the C++ -> JS call, the parse). With the generator on the same two cores, that
// doubled the CPU each delivery costs the machine and put the generator's spread into the
// latency figures. Here a delivery costs the read syscall and a few hundred instructions.
//
// Commands, one per line on stdin; one JSON line answers each on stdout:
//   reset <lo>   clear the step's counters; sequence numbers below lo are counted as stale
//   progress     {"received":N,"lastUs":T}
//   snapshot     the step's counters and the sparse histogram
//   quit         exit
// Usage: reader <nfds> <proto>   (proto: ws | socketio | signalbox)
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define HSIZE (SUB + (32 - SUB_BITS) * SUB)
#define MAX_US 0x7fffffffLL
#define RBUF (256 * 1024)

typedef struct {
  int fd;
  int closed;
  long long lastSeq;
  unsigned char *pend; // bytes of a partial frame carried over to the next read
  size_t plen, pcap;
  unsigned char *frag; // fragments of a fragmented message
  size_t flen, fcap;
  int fragging;
} Conn;

static double counts[HSIZE];
static double hn, hsum;
static long long hmax;
static struct {
  double received, stale, dups, other;
  long long firstUs, lastUs, lo;
  double closedDuring;
} st;
static int sio; // Engine.IO: the text "2" is a ping, answered with "3"
static unsigned char rbuf[RBUF];

static long long now_us(void) {
  // CLOCK_MONOTONIC, the clock of process.hrtime() in every Node process on the machine.
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static void hrecord(long long us) {
  long long v = us < 0 ? 0 : us > MAX_US ? MAX_US : us;
  if (v > hmax) hmax = v;
  hn++;
  hsum += (double)v;
  int idx;
  if (v < SUB) idx = (int)v;
  else {
    int k = 31 - __builtin_clz((unsigned)v);
    int shift = k - SUB_BITS;
    idx = SUB + shift * SUB + (int)(((unsigned)v >> shift) & (SUB - 1));
  }
  counts[idx]++;
}

static void append(unsigned char **b, size_t *len, size_t *cap, const unsigned char *src, size_t n) {
  if (*len + n > *cap) {
    size_t c = *cap ? *cap : 4096;
    while (c < *len + n) c *= 2;
    unsigned char *nb = realloc(*b, c);
    if (!nb) {
      perror("reader: realloc");
      exit(2);
    }
    *b = nb;
    *cap = c;
  }
  memcpy(*b + *len, src, n);
  *len += n;
}

/** Sends one masked client frame (b0: 0x81 text, 0x8a pong, 0x88 close). Small frames only. */
static void send_frame(Conn *c, unsigned char b0, const unsigned char *p, size_t len) {
  unsigned char f[2 + 4 + 125];
  if (len > 125) len = 125;
  f[0] = b0;
  f[1] = 0x80 | (unsigned char)len;
  unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < len; i++) f[6 + i] = p[i] ^ mask[i & 3];
  // A control frame is tiny; if the socket cannot take it now the connection is lost anyway.
  ssize_t w = write(c->fd, f, 6 + len);
  (void)w;
}

static int parse_num(const unsigned char *p, const unsigned char *e, long long *out) {
  long long v = 0;
  int any = 0;
  while (p < e && *p >= '0' && *p <= '9') {
    v = v * 10 + (*p - '0');
    p++;
    any = 1;
  }
  *out = v;
  return any;
}

static void on_message(Conn *c, const unsigned char *s, size_t len) {
  const unsigned char *e = s + len;
  const unsigned char *q = memmem(s, len, "\"seq\":", 6);
  if (q) {
    long long seq, ts;
    const unsigned char *t = memmem(q + 6, (size_t)(e - q - 6), "\"ts\":", 5);
    if (t && parse_num(q + 6, e, &seq) && parse_num(t + 5, e, &ts)) {
      long long now = now_us();
      if (seq < st.lo) {
        st.stale++;
        return;
      }
      if (seq <= c->lastSeq) st.dups++;
      else c->lastSeq = seq;
      st.received++;
      if (st.firstUs == 0) st.firstUs = now;
      st.lastUs = now;
      hrecord(now - ts);
      return;
    }
  }
  if (sio && len == 1 && s[0] == '2') {
    send_frame(c, 0x81, (const unsigned char *)"3", 1);
    return;
  }
  if (memmem(s, len, "\"type\":\"heartbeat\"", 18)) return;
  st.other++;
}

static void close_conn(Conn *c, int ep) {
  if (c->closed) return;
  c->closed = 1;
  st.closedDuring++;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
}

/** Parses whole frames from buf[0, n); returns how many bytes were consumed. */
static size_t parse(Conn *c, const unsigned char *buf, size_t n, int ep) {
  size_t p = 0;
  while (n - p >= 2) {
    unsigned char b0 = buf[p], b1 = buf[p + 1];
    unsigned long long len = b1 & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (n - p < 4) break;
      len = ((unsigned)buf[p + 2] << 8) | buf[p + 3];
      hl = 4;
    } else if (len == 127) {
      if (n - p < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | buf[p + 2 + i];
      hl = 10;
    }
    if (b1 & 0x80) hl += 4; // servers must not mask; tolerated (payload left masked)
    if (n - p < hl + len) break;
    const unsigned char *s = buf + p + hl;
    int op = b0 & 0x0f, fin = b0 & 0x80;
    if (op == 1 || op == 2) {
      if (fin) on_message(c, s, len);
      else {
        c->flen = 0;
        c->fragging = 1;
        append(&c->frag, &c->flen, &c->fcap, s, len);
      }
    } else if (op == 0) {
      if (c->fragging) {
        append(&c->frag, &c->flen, &c->fcap, s, len);
        if (fin) {
          c->fragging = 0;
          on_message(c, c->frag, c->flen);
        }
      }
    } else if (op == 9) {
      send_frame(c, 0x8a, s, len);
    } else if (op == 8) {
      send_frame(c, 0x88, s, len >= 2 ? 2 : 0);
      close_conn(c, ep);
      return n;
    }
    p += hl + len;
  }
  return p;
}

static void on_readable(Conn *c, int ep) {
  ssize_t r = read(c->fd, rbuf, RBUF);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(c, ep);
    return;
  }
  if (r < 0) return;
  if (c->plen) {
    append(&c->pend, &c->plen, &c->pcap, rbuf, (size_t)r);
    size_t used = parse(c, c->pend, c->plen, ep);
    memmove(c->pend, c->pend + used, c->plen - used);
    c->plen -= used;
  } else {
    size_t used = parse(c, rbuf, (size_t)r, ep);
    if (used < (size_t)r && !c->closed) append(&c->pend, &c->plen, &c->pcap, rbuf + used, (size_t)r - used);
  }
}

static void reply_snapshot(void) {
  printf("{\"received\":%.0f,\"stale\":%.0f,\"dups\":%.0f,\"other\":%.0f,\"firstUs\":%lld,\"lastUs\":%lld,"
         "\"lo\":%lld,\"closedDuring\":%.0f,\"hist\":{\"n\":%.0f,\"max\":%lld,\"sum\":%.0f,\"b\":[",
         st.received, st.stale, st.dups, st.other, st.firstUs, st.lastUs, st.lo, st.closedDuring, hn, hmax, hsum);
  int first = 1;
  for (int i = 0; i < HSIZE; i++) {
    if (counts[i] == 0) continue;
    printf("%s%d,%.0f", first ? "" : ",", i, counts[i]);
    first = 0;
  }
  printf("]}}\n");
}

/** Handles the complete command lines in line[0, len); returns the bytes consumed. */
static size_t on_commands(char *line, size_t len) {
  size_t p = 0;
  for (;;) {
    char *nl = memchr(line + p, '\n', len - p);
    if (!nl) break;
    *nl = 0;
    char *cmd = line + p;
    p = (size_t)(nl - line) + 1;
    if (strncmp(cmd, "reset ", 6) == 0) {
      memset(counts, 0, sizeof counts);
      hn = hsum = 0;
      hmax = 0;
      memset(&st, 0, sizeof st); // as gen.mjs: closedDuring counts closes during this step
      st.lo = atoll(cmd + 6);
      printf("{}\n");
    } else if (strcmp(cmd, "progress") == 0) {
      printf("{\"received\":%.0f,\"lastUs\":%lld}\n", st.received, st.lastUs);
    } else if (strcmp(cmd, "snapshot") == 0) {
      reply_snapshot();
    } else if (strcmp(cmd, "quit") == 0) {
      exit(0);
    } else {
      printf("{\"error\":\"unknown command\"}\n");
    }
    fflush(stdout);
  }
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: reader <nfds> <ws|socketio|signalbox>\n");
    return 2;
  }
  int n = atoi(argv[1]);
  sio = strcmp(argv[2], "socketio") == 0;
  Conn *conns = calloc((size_t)n, sizeof(Conn));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("reader: epoll_create1");
    return 2;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev); // stdin: commands
  for (int i = 0; i < n; i++) {
    conns[i].fd = 3 + i;
    conns[i].lastSeq = -1;
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &conns[i];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) {
      fprintf(stderr, "reader: fd %d: %s\n", conns[i].fd, strerror(errno));
      return 2;
    }
  }
  printf("{\"ready\":%d}\n", n);
  fflush(stdout);
  static char cmdbuf[4096];
  size_t cmdlen = 0;
  struct epoll_event evs[256];
  for (;;) {
    int k = epoll_wait(ep, evs, 256, -1);
    if (k < 0) {
      if (errno == EINTR) continue;
      perror("reader: epoll_wait");
      return 2;
    }
    for (int i = 0; i < k; i++) {
      Conn *c = evs[i].data.ptr;
      if (!c) {
        ssize_t r = read(0, cmdbuf + cmdlen, sizeof cmdbuf - 1 - cmdlen);
        if (r <= 0) return 0; // gen.mjs went away
        cmdlen += (size_t)r;
        size_t used = on_commands(cmdbuf, cmdlen);
        memmove(cmdbuf, cmdbuf + used, cmdlen - used);
        cmdlen -= used;
        if (cmdlen == sizeof cmdbuf - 1) cmdlen = 0; // an overlong line: drop it
        continue;
      }
      if (!c->closed) on_readable(c, ep);
    }
  }
}
