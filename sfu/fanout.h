/* What Python (sfu/fanout.py, through cffi) and fanout.c share. cffi reads this file
 * as declarations, so it holds no macros and only types cffi knows. */

/* The largest RTP payload forwarded: the rewritten packet (header of 12 bytes, or 20
 * with the audio-level extension) plus the largest SRTP tag we negotiate (16; no MKI)
 * must fit a 1500-byte Ethernet MTU as one IPv6 UDP datagram (1452 bytes). GStreamer's
 * and most encoders' 1400-byte packets fit; bigger ones are counted, not forwarded. */
enum { FANOUT_MAX_PAYLOAD = 1500 - 40 - 8 - 16 - 20 };

/* One subscriber connection: where its packets go and the key they go under. */
struct fanout_wire {
    void *session;  /* srtp_t; NULL while the transport is not connected */
    void *protect;  /* libsrtp's srtp_protect */
    int fd;
    uint32_t addrlen;
    uint8_t addr[28];  /* a struct sockaddr_in or sockaddr_in6 */
};

/* One consumer: its rewrite of the producer's stream, and what it has sent. */
struct fanout_target {
    struct fanout_wire *wire;
    uint32_t ssrc;
    uint32_t ts_offset;
    uint16_t seq_offset;
    uint8_t payload_type;
    uint8_t audio_level_id;  /* 0: no audio-level extension on this m-line */
    uint64_t packets;
    uint64_t octets;
    uint64_t failures;  /* refused by libsrtp or the socket (full send buffer, say) */
};

int fanout_set_address(struct fanout_wire *wire, const char *host, int port);

/* Send one packet to `count` targets; returns how many got it. `audio_level` < 0
 * means the packet carried none. */
int fanout_send(struct fanout_target **targets, int count, int marker, int seq,
                uint32_t timestamp, int audio_level, const uint8_t *payload, int size);
