/* The SFU's per-packet, per-subscriber step: rewrite the RTP header, protect with
 * the subscriber's SRTP session, send on its ICE socket.
 *
 * It runs once per delivered packet (about 5000 times a second at 30 subscribers),
 * so it is the one piece of the media path written in C, together with each
 * consumer's sequence manager, which it steps for every packet it sends. Everything that decides
 * *whether* and *to whom* to send stays in Python (sfu/fanout.py, sfu/consumer.py);
 * this file only does the bytes. libsrtp is the copy inside pylibsrtp: the Python
 * side hands us its srtp_protect and session pointers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* sendmmsg */
#endif
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "fanout.h"
#include "sockaddr.h"

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
    return sockaddr_from_text(wire->addr, &wire->addrlen, host, port);
}

const uint64_t fanout_time_bounds_ns[FANOUT_TIME_BOUNDS] = {
    2000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
uint64_t fanout_time_counts[FANOUT_TIME_BOUNDS + 1];
uint64_t fanout_time_sum_ns;

static uint64_t now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Atomic: cffi calls C with the GIL released, so event loops in other threads (a test's
 * second server, say) may time their steps at the same moment. */
static void time_step(uint64_t began)
{
    uint64_t took = now_ns() - began;
    int bucket = 0;
    while (bucket < FANOUT_TIME_BOUNDS && took > fanout_time_bounds_ns[bucket])
        bucket++;
    __atomic_fetch_add(&fanout_time_counts[bucket], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&fanout_time_sum_ns, took, __ATOMIC_RELAXED);
}

static void put16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static int seq_newer(uint16_t a, uint16_t b) { return (int16_t)(a - b) > 0; }

/* abs-send-time: the send time in 6.18 fixed-point seconds, 24 bits; any steady clock
 * will do, the receiver only compares differences. Never 0 (0 means not read yet). */
static uint32_t abs_send_time(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t fraction = ((uint64_t)now.tv_nsec << 18) / 1000000000u;
    return (uint32_t)((((uint64_t)now.tv_sec << 18) | fraction) & 0xFFFFFF) | 0x1000000;
}

/* Forget the oldest dropped input. The outputs of later inputs stay as they were;
 * earlier ones would shift by one, so they are no longer mapped at all. */
static void seq_fold_oldest(struct fanout_seq *s)
{
    s->floor = (uint16_t)(s->dropped[0] + 1);
    s->recent = 1;
    s->base--;
    s->ndropped--;
    memmove(s->dropped, s->dropped + 1, s->ndropped * sizeof(s->dropped[0]));
}

static void seq_forget_old(struct fanout_seq *s, uint16_t newest)
{
    while (s->ndropped && (uint16_t)(newest - s->dropped[0]) > FANOUT_SEQ_WINDOW)
        seq_fold_oldest(s);
}

/* How many dropped inputs come before `input` (or are it, with `inclusive`). */
static int seq_dropped_before(const struct fanout_seq *s, uint16_t input, int inclusive)
{
    int n = 0;
    while (n < s->ndropped && (int16_t)(s->dropped[n] - input) < inclusive)
        n++;
    return n;
}

/* True for an input older than the floor: from before the last sync (another
 * source, another consumer on this m-line) or behind a forgotten drop. It has no
 * output number: sending or retransmitting it could repeat one already used. */
static int seq_before_floor(const struct fanout_seq *s, uint16_t input)
{
    return s->recent && (uint16_t)(s->max_input - input) > (uint16_t)(s->max_input - s->floor);
}

void fanout_seq_reset(struct fanout_seq *s, int next_output)
{
    memset(s, 0, sizeof(*s));
    s->max_output = (uint16_t)(next_output - 1);
}

void fanout_seq_sync(struct fanout_seq *s, int input)
{
    s->base = (uint16_t)(s->max_output + 1 - input);
    s->max_input = (uint16_t)(input - 1);
    s->floor = (uint16_t)input;
    s->recent = 1;
    s->ndropped = 0;
}

void fanout_seq_drop(struct fanout_seq *s, int input)
{
    uint16_t in = (uint16_t)input;
    if (!seq_newer(in, s->max_input))
        return;  /* late: the numbers after it are out already, so it stays a hole */
    seq_forget_old(s, in);
    if (s->ndropped == FANOUT_SEQ_DROPPED)
        seq_fold_oldest(s);
    s->dropped[s->ndropped++] = in;
    s->max_input = in;
}

int fanout_seq_input(struct fanout_seq *s, int input)
{
    uint16_t in = (uint16_t)input;
    if (seq_newer(in, s->max_input)) {
        if (s->ndropped)
            seq_forget_old(s, in);
        if (s->recent && (uint16_t)(in - s->floor) > FANOUT_SEQ_WINDOW)
            s->recent = 0;
        s->max_input = in;
        s->max_output = (uint16_t)(in + s->base - seq_dropped_before(s, in, 0));
        return s->max_output;
    }
    if (seq_before_floor(s, in))
        return -1;
    return (uint16_t)(in + s->base - seq_dropped_before(s, in, 0));
}

/* The input behind an output number (to answer a NACK), or -1 if there is none. */
int fanout_seq_original(const struct fanout_seq *s, int output)
{
    uint16_t out = (uint16_t)output;
    uint16_t in = (uint16_t)(out - s->base);
    /* output = input + base - dropped_before(input). Stepping up from the input that
     * has no drops before it reaches the least fixpoint, which is never a dropped
     * input (at most one step per dropped entry). */
    for (int i = 0; i <= s->ndropped; i++) {
        uint16_t next = (uint16_t)(out - s->base + seq_dropped_before(s, in, 1));
        if (next == in)
            break;
        in = next;
    }
    if (seq_newer(in, s->max_input) || seq_before_floor(s, in))
        return -1;
    return in;
}

/* RFC 7741 payload descriptor, read once per packet. */
struct vp8_desc {
    int frame_start;  /* S bit and partition 0: the first packet of a frame */
    int picture_id;   /* 15-bit picture id; -1: none, or only 7 bits */
    int tid;          /* temporal layer; -1: no T bit */
    int sync;         /* Y: the frame depends on the base layer only */
};

static struct vp8_desc vp8_parse(const uint8_t *p, int size)
{
    struct vp8_desc d = {.frame_start = 0, .picture_id = -1, .tid = -1, .sync = 0};
    if (size < 1)
        return d;
    d.frame_start = (p[0] & 0x10) && !(p[0] & 0x07);
    if (size < 3 || !(p[0] & 0x80))
        return d;
    int pos = 2;
    if (p[1] & 0x80) {
        if (p[2] & 0x80) {
            if (size < 5)
                return d;
            d.picture_id = ((p[2] & 0x7F) << 8) | p[3];
            pos = 4;
        } else {
            pos = 3;
        }
    }
    if (p[1] & 0x40)
        pos++;
    if ((p[1] & 0x20) && pos < size) {
        d.tid = p[pos] >> 6;
        d.sync = (p[pos] >> 5) & 1;
    }
    return d;
}

static uint16_t pid_after(uint16_t a, uint16_t b) { return (uint16_t)((a - b) & 0x7FFF); }
static int pid_newer(uint16_t a, uint16_t b) { uint16_t d = pid_after(a, b); return d && d < 0x4000; }

/* Forget the oldest dropped picture id: the outputs of later ids stay as they were. */
static void pid_fold_oldest(struct fanout_target *t)
{
    t->picture_id_offset = (uint16_t)((t->picture_id_offset - 1) & 0x7FFF);
    t->npid_dropped--;
    memmove(t->pid_dropped, t->pid_dropped + 1, t->npid_dropped * sizeof(t->pid_dropped[0]));
}

static void pid_drop(struct fanout_target *t, uint16_t id)
{
    if (t->npid_dropped && !pid_newer(id, t->pid_dropped[t->npid_dropped - 1]))
        return;  /* another packet of a frame already dropped (or a late one) */
    while (t->npid_dropped && (t->npid_dropped == FANOUT_PID_DROPPED
                               || pid_after(id, t->pid_dropped[0]) > FANOUT_PID_WINDOW))
        pid_fold_oldest(t);
    t->pid_dropped[t->npid_dropped++] = id;
}

/* output id = input id + offset - (dropped ids before it) */
static uint16_t pid_map(const struct fanout_target *t, uint16_t id)
{
    int n = t->npid_dropped;
    if (n && !pid_newer(id, t->pid_dropped[n - 1])) {  /* rare: from before the last drop */
        n = 0;
        while (n < t->npid_dropped && pid_newer(id, t->pid_dropped[n]))
            n++;
    }
    return (uint16_t)((id + t->picture_id_offset - n) & 0x7FFF);
}

/* Whether `t` leaves this packet out for its temporal layer (then it closes up both
 * the sequence number and the picture id behind it). */
static int vp8_temporal_drop(struct fanout_target *t, const struct vp8_desc *d, int seq)
{
    if (d->tid < 0 || d->picture_id < 0)
        return 0;
    if (t->max_tid == 255 || d->tid > t->max_tid)
        t->max_tid = (uint8_t)d->tid;
    if (d->frame_start && seq_newer((uint16_t)seq, t->seq.max_input)) {
        if (t->tid_target < t->tid_current)
            t->tid_current = t->tid_target;  /* down: any frame start will do */
        else if (d->sync && d->tid > t->tid_current && d->tid <= t->tid_target)
            t->tid_current = (uint8_t)d->tid;  /* up: a frame that needs only the base */
    }
    if (d->tid <= t->tid_current)
        return 0;
    fanout_seq_drop(&t->seq, seq);
    pid_drop(t, (uint16_t)d->picture_id);
    t->temporal_dropped++;
    return 1;
}

/* Picture id and TL0PICIDX, rewritten in place so that a layer switch (and a dropped
 * temporal layer) looks like one stream to the decoder. */
static void vp8_rewrite(uint8_t *p, int size, struct fanout_target *t, int newest)
{
    if (size < 3 || !(p[0] & 0x80))
        return;
    int pos = 2;
    if (p[1] & 0x80) {
        if (p[2] & 0x80) {
            if (size < 5)
                return;
            uint16_t id = pid_map(t, (uint16_t)(((p[2] & 0x7F) << 8) | p[3]));
            p[2] = 0x80 | (uint8_t)(id >> 8);
            p[3] = (uint8_t)id;
            if (newest)
                t->max_picture_id = id;
            pos = 4;
        } else {
            uint8_t id = (uint8_t)(p[2] + t->picture_id_offset) & 0x7F;
            p[2] = id;
            if (newest)
                t->max_picture_id = id;
            pos = 3;
        }
    }
    if ((p[1] & 0x40) && pos < size) {
        p[pos] = (uint8_t)(p[pos] + t->tl0_offset);
        if (newest)
            t->max_tl0 = p[pos];
    }
}

void fanout_vp8_rewrite(uint8_t *payload, int size, struct fanout_target *target)
{
    vp8_rewrite(payload, size, target, 0);
}

void fanout_drop(struct fanout_target **targets, int count, int seq)
{
    for (int i = 0; i < count; i++)
        fanout_seq_drop(&targets[i]->seq, seq);
}

/* A target whose wire is down, or whose send fails, loses this packet only: NACK
 * can recover it. */
int fanout_send(struct fanout_target **targets, int count, int marker, int seq,
                uint32_t timestamp, int audio_level, const uint8_t *payload, int size)
{
    int sent = 0, queued = 0, fd = -1;
    struct vp8_desc vp8 = {.tid = -1};
    int vp8_parsed = 0;
    uint32_t send_time = 0;

    if (size < 0 || size > FANOUT_MAX_PAYLOAD)
        return 0;  /* the producer counted it (sfu/producer.py) */
    uint64_t began = now_ns();
    for (int i = 0; i < count; i++) {
        struct fanout_target *t = targets[i];
        struct fanout_wire *w = t->wire;
        if (w->session == NULL)
            continue;
        if (t->vp8) {
            if (!vp8_parsed) {
                vp8 = vp8_parse(payload, size);
                vp8_parsed = 1;
            }
            if (vp8_temporal_drop(t, &vp8, seq))
                continue;
        }
        int out = fanout_seq_input(&t->seq, seq);
        if (out < 0)
            continue;
        uint32_t ts = timestamp + t->ts_offset;
        if (out == t->seq.max_output)
            t->max_timestamp = ts;
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
        } else if (t->abs_send_time_id) {
            if (!send_time)
                send_time = abs_send_time();
            buf[0] = 0x90;  /* abs-send-time alone: 24 bits, 6.18 fixed-point seconds */
            put16(buf + 12, 0xBEDE);
            put16(buf + 14, 1);
            buf[16] = (uint8_t)(t->abs_send_time_id << 4 | 2);
            buf[17] = (uint8_t)(send_time >> 16);
            buf[18] = (uint8_t)(send_time >> 8);
            buf[19] = (uint8_t)send_time;
            n = 20;
        }
        buf[1] = (uint8_t)((marker << 7) | t->payload_type);
        put16(buf + 2, (uint32_t)out);
        put32(buf + 4, ts);
        put32(buf + 8, t->ssrc);
        memcpy(buf + n, payload, size);
        if (t->vp8)
            vp8_rewrite(buf + n, size, t, out == t->seq.max_output);
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
    time_step(began);
    return sent;
}
