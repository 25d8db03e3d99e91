/* The SFU's per-packet, per-subscriber step: rewrite the RTP header, protect with
 * the subscriber's SRTP session, send on its ICE socket.
 *
 * It runs once per delivered packet (about 5000 times a second at 30 subscribers),
 * so it is the one piece of the media path written in C. Everything that decides
 * *whether* and *to whom* to send stays in Python (sfu/fanout.py, sfu/consumer.py);
 * this file only does the bytes. libsrtp is the copy inside pylibsrtp: the Python
 * side hands us its srtp_protect and session pointers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* sendmmsg */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fanout.h"

#define FANOUT_MTU 1500
/* Packets queued for one sendmmsg: every subscriber on the shared media port shares a
 * socket, so one system call carries a packet to (up to) this many of them. */
#define FANOUT_BATCH 64

typedef int (*fanout_protect_fn)(void *session, void *rtp, int *length);

_Static_assert(sizeof(((struct fanout_wire *)0)->addr) >= sizeof(struct sockaddr_in6),
               "fanout_wire.addr must hold an IPv6 address");

/* The queued packets of one socket (the media port's, or an ICE-TCP link's), built
 * and protected, not yet sent. Per thread: cffi calls C with the GIL released. */
static __thread struct {
    uint32_t words[FANOUT_BATCH][FANOUT_MTU / 4];  /* libsrtp wants the header 32-bit aligned */
    struct mmsghdr msgs[FANOUT_BATCH];
    struct iovec iov[FANOUT_BATCH];
    struct fanout_target *owners[FANOUT_BATCH];
} batch;

/* Send the `queued` packets on `fd`; returns how many left. sendmmsg stops at the first
 * failure: that packet is counted lost and the rest go in the next call. */
static int flush(int fd, int queued, int size)
{
    int done = 0, sent = 0;
    while (done < queued) {
        int r = sendmmsg(fd, batch.msgs + done, (unsigned int)(queued - done), MSG_DONTWAIT);
        if (r <= 0) {
            batch.owners[done++]->failures++;
            continue;
        }
        for (int i = done; i < done + r; i++) {
            batch.owners[i]->packets++;
            batch.owners[i]->octets += size;
        }
        done += r;
        sent += r;
    }
    return sent;
}

int fanout_set_address(struct fanout_wire *wire, const char *host, int port)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    memset(wire->addr, 0, sizeof(wire->addr));
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        memcpy(wire->addr, &v4, sizeof(v4));
        wire->addrlen = sizeof(v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        memcpy(wire->addr, &v6, sizeof(v6));
        wire->addrlen = sizeof(v6);
        return 0;
    }
    return -1;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

/* A target whose wire is down, or whose send fails, loses this packet only: NACK
 * can recover it. */
int fanout_send(struct fanout_target **targets, int count, int marker, int seq,
                uint32_t timestamp, int audio_level, const uint8_t *payload, int size)
{
    int sent = 0, queued = 0, fd = -1;

    if (size < 0 || size > FANOUT_MAX_PAYLOAD)
        return 0;  /* the producer counted it (sfu/producer.py) */
    for (int i = 0; i < count; i++) {
        struct fanout_target *t = targets[i];
        struct fanout_wire *w = t->wire;
        if (w->session == NULL)
            continue;
        if (queued && (w->fd != fd || queued == FANOUT_BATCH)) {
            sent += flush(fd, queued, size);
            queued = 0;
        }
        uint8_t *buf = (uint8_t *)batch.words[queued];
        int n = 12;
        buf[0] = 0x80;
        if (t->audio_level_id && audio_level >= 0) {
            buf[0] = 0x90;  /* one-byte header extension (RFC 8285) with the level only */
            put16(buf + 12, 0xBEDE);
            put16(buf + 14, 1);
            buf[16] = t->audio_level_id << 4;
            buf[17] = (uint8_t)audio_level;
            buf[18] = buf[19] = 0;
            n = 20;
        }
        buf[1] = (uint8_t)((marker << 7) | t->payload_type);
        put16(buf + 2, (uint32_t)(seq + t->seq_offset) & 0xFFFF);
        put32(buf + 4, timestamp + t->ts_offset);
        put32(buf + 8, t->ssrc);
        memcpy(buf + n, payload, size);
        int length = n + size;
        if (((fanout_protect_fn)w->protect)(w->session, buf, &length) != 0) {
            t->failures++;
            continue;
        }
        batch.iov[queued] = (struct iovec){.iov_base = buf, .iov_len = (size_t)length};
        batch.msgs[queued].msg_hdr = (struct msghdr){
            .msg_name = w->addrlen ? w->addr : NULL, .msg_namelen = w->addrlen,  /* 0: connected */
            .msg_iov = &batch.iov[queued], .msg_iovlen = 1};
        batch.owners[queued++] = t;
        fd = w->fd;
    }
    if (queued)
        sent += flush(fd, queued, size);
    return sent;
}
