/* The shared media port's receive step: read a burst of datagrams with one recvmmsg,
 * and decrypt and read the header of the SRTP among them, each under the session of
 * the connection its source address belongs to.
 *
 * It runs once per readable socket, not per packet through several Python layers: a
 * received packet's Python work (the demultiplexer, the decrypt call, the header
 * parse) was most of what a packet from a publisher cost before any subscriber got it.
 * What to do with a packet stays in Python (sfu/port_receive.py hands each record on);
 * everything that is not decryptable SRTP from a known address goes to the Python
 * demultiplexer (sfu/media_port.py) exactly as it came.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* recvmmsg */
#endif
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "port_receive.h"
#include "sockaddr.h"

_Static_assert(sizeof(((struct rx_batch *)0)->records) == RX_BATCH * RX_FIELDS * sizeof(int64_t), "records");
_Static_assert(sizeof(((struct rx_batch *)0)->data[0]) == RX_MTU, "data");
_Static_assert(sizeof(((struct rx_batch *)0)->addrs[0]) == RX_ADDR, "addrs");
_Static_assert(sizeof(((struct rx_table *)0)->slots) == RX_SLOTS * sizeof(void *), "slots");
_Static_assert(RX_FIELDS == 4 + RTP_AUDIO_LEVEL + 1, "a record holds the header up to the level");

typedef int (*rx_unprotect_fn)(void *session, void *packet, int *length);

int rx_set_address(struct rx_entry *entry, const char *host, int port)
{
    return sockaddr_from_text(entry->addr, &entry->addrlen, host, port);
}

/* FNV-1a over the address as the kernel reports it (port and IP) */
static uint32_t slot_of(const uint8_t *addr, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h & (RX_SLOTS - 1);
}

static int same_address(const struct rx_entry *e, const uint8_t *addr, uint32_t len)
{
    return e->addrlen == len && memcmp(e->addr, addr, len) == 0;
}

struct rx_entry *rx_find(const struct rx_table *t, const uint8_t *addr, uint32_t len)
{
    for (uint32_t i = slot_of(addr, len), n = 0; n < RX_SLOTS; i = (i + 1) & (RX_SLOTS - 1), n++) {
        struct rx_entry *e = t->slots[i];
        if (e == NULL)
            return NULL;
        if (same_address(e, addr, len))
            return e;
    }
    return NULL;
}

int rx_add(struct rx_table *t, struct rx_entry *entry)
{
    uint32_t i = slot_of(entry->addr, entry->addrlen);
    for (uint32_t n = 0; n < RX_SLOTS; i = (i + 1) & (RX_SLOTS - 1), n++) {
        struct rx_entry *e = t->slots[i];
        if (e == NULL || same_address(e, entry->addr, entry->addrlen)) {
            if (e == NULL)
                t->count++;
            t->slots[i] = entry;  /* the latest connection from an address owns it */
            return 0;
        }
    }
    return -1;
}

/* Linear probing without tombstones: after the hole, every entry of the run moves back
 * to where its own probe would find it. */
void rx_remove(struct rx_table *t, struct rx_entry *entry)
{
    uint32_t i = slot_of(entry->addr, entry->addrlen), n = 0;
    while (t->slots[i] != entry) {
        if (t->slots[i] == NULL || ++n == RX_SLOTS)
            return;  /* not there (replaced by a later connection from its address) */
        i = (i + 1) & (RX_SLOTS - 1);
    }
    t->slots[i] = NULL;
    t->count--;
    for (uint32_t j = (i + 1) & (RX_SLOTS - 1); t->slots[j] != NULL; j = (j + 1) & (RX_SLOTS - 1)) {
        struct rx_entry *e = t->slots[j];
        uint32_t home = slot_of(e->addr, e->addrlen);
        /* e may stay at j unless the hole at i lies on its probe path (home .. j) */
        if (((j - home) & (RX_SLOTS - 1)) >= ((j - i) & (RX_SLOTS - 1))) {
            t->slots[i] = e;
            t->slots[j] = NULL;
            i = j;
        }
    }
}

int rtp_parse(const uint8_t *p, int n, int level_id, int mid_id, int64_t *out)
{
    if (n < 12)
        return RTP_SHORT;
    if (p[0] >> 6 != 2)
        return RTP_VERSION;
    int pos = 12 + (p[0] & 0x0F) * 4, end = n;
    out[RTP_AUDIO_LEVEL] = -1;
    out[RTP_MID_START] = out[RTP_MID_END] = 0;
    if (p[0] & 0x10) {
        if (n < pos + 4)
            return RTP_EXTENSION_HEADER;
        int profile = p[pos] << 8 | p[pos + 1];
        int ext_end = pos + 4 + (p[pos + 2] << 8 | p[pos + 3]) * 4;
        if (ext_end > n)
            return RTP_EXTENSION_BLOCK;
        if (profile == 0xBEDE && (level_id || mid_id)) {
            for (int at = pos + 4; at < ext_end;) {
                if (p[at] == 0) {  /* padding between elements */
                    at++;
                    continue;
                }
                int id = p[at] >> 4, length = (p[at] & 0x0F) + 1;
                if (id == 15)
                    break;
                if (id == level_id && at + 1 < ext_end)
                    out[RTP_AUDIO_LEVEL] = p[at + 1];
                else if (id == mid_id) {
                    out[RTP_MID_START] = at + 1;
                    out[RTP_MID_END] = at + 1 + length < ext_end ? at + 1 + length : ext_end;
                }
                at += 1 + length;
            }
        }
        pos = ext_end;
    }
    if (p[0] & 0x20) {
        int pad = p[n - 1];
        if (pad == 0 || pos + pad > n)
            return RTP_PADDING;
        end -= pad;
    }
    if (pos > end)
        return RTP_HEADER_LONGER;
    out[RTP_PAYLOAD_TYPE] = p[1] & 0x7F;
    out[RTP_MARKER] = p[1] >> 7;
    out[RTP_SEQ] = p[2] << 8 | p[3];
    out[RTP_TIMESTAMP] = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    out[RTP_SSRC] = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    out[RTP_PAYLOAD_START] = pos;
    out[RTP_PAYLOAD_END] = end;
    return 0;
}

/* SRTP or SRTCP from `e`'s address, decrypted into `clear`: the record's kind, or
 * RX_RAW if it did not authenticate (the Python path then sees it as it came). */
static int decrypt(struct rx_entry *e, const uint8_t *data, int size, uint8_t *clear, int64_t *record)
{
    int rtcp = size > 1 && data[1] >= 192 && data[1] <= 223;
    int length = size;
    memcpy(clear, data, (size_t)size);
    rx_unprotect_fn unprotect = (rx_unprotect_fn)(rtcp ? e->unprotect_rtcp : e->unprotect);
    if (unprotect(e->session, clear, &length) != 0)
        return RX_RAW;
    e->media++;
    record[3] = length;
    if (rtcp)
        return RX_RTCP;
    int64_t header[RTP_PARSED];
    if (rtp_parse(clear, length, e->audio_level_id, 0, header) != 0)
        return RX_BAD_RTP;
    memcpy(record + 4, header, (RTP_AUDIO_LEVEL + 1) * sizeof(int64_t));
    return RX_RTP;
}

int rx_receive(int fd, struct rx_table *t, struct rx_batch *b)
{
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    for (int i = 0; i < RX_BATCH; i++) {
        iov[i] = (struct iovec){.iov_base = b->data[i], .iov_len = RX_MTU};
        msgs[i].msg_hdr = (struct msghdr){.msg_name = b->addrs[i], .msg_namelen = RX_ADDR,
                                          .msg_iov = &iov[i], .msg_iovlen = 1};
    }
    int n = recvmmsg(fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        int64_t *r = b->records[i];
        const uint8_t *data = (const uint8_t *)b->data[i];
        int size = (int)msgs[i].msg_len;
        r[0] = RX_RAW;
        r[1] = -1;
        r[2] = (int64_t)i * RX_MTU;
        r[3] = size;
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
            r[0] = RX_CUT;
            continue;
        }
        if (size < 12 || data[0] < 128 || data[0] > 191)
            continue;  /* STUN, DTLS, garbage: the Python demultiplexer's */
        struct rx_entry *e = rx_find(t, b->addrs[i], msgs[i].msg_hdr.msg_namelen);
        if (e == NULL || e->session == NULL)
            continue;
        int kind = decrypt(e, data, size, (uint8_t *)b->clear[i], r);
        if (kind != RX_RAW) {
            r[0] = kind;
            r[1] = e->owner;
        }
    }
    return n;
}
