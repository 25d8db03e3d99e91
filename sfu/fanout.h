/* What Python (sfu/fanout.py, sfu/seq_manager.py, through cffi) and fanout.c share.
 * cffi reads this file as declarations, so it holds no macros and only types cffi knows. */

/* The largest RTP payload forwarded: the rewritten packet (header of 12 bytes, or 20
 * with the audio-level or the abs-send-time extension, never both) plus the largest SRTP tag we negotiate (16; no MKI)
 * must fit a 1500-byte Ethernet MTU as one IPv6 UDP datagram (1452 bytes). GStreamer's
 * and most encoders' 1400-byte packets fit; bigger ones are counted, not forwarded. */
enum { FANOUT_MAX_PAYLOAD = 1500 - 40 - 8 - 16 - 20 };

/* How many dropped input sequence numbers a SeqManager remembers, and how far behind
 * the newest input it keeps them: as far back as the retransmission buffer reaches
 * (sfu/retransmission_buffer.py). Inputs older than a forgotten drop are no longer
 * mapped (neither sent nor retransmitted), never mapped wrong. */
enum { FANOUT_SEQ_DROPPED = 128, FANOUT_SEQ_WINDOW = 1024 };

/* VP8 frames a target left out (temporal layers above its target) whose picture ids
 * it remembers, so later ids close up behind them; and how many ids behind the newest
 * a drop is kept. An input older than a forgotten drop maps one id off: only a
 * retransmission that late (seconds) could carry one. */
enum { FANOUT_PID_DROPPED = 64, FANOUT_PID_WINDOW = 256 };

/* One consumer's sequence manager (mediasoup's SeqManager is the model): maps the
 * input numbering to an output numbering without holes. Packets the producer drops
 * (padding-only probes, stray payload types) are closed up; sync() makes the next
 * input follow the last output, so a switch of source or of m-line continues. */
struct fanout_seq {
    uint16_t base;        /* output = input + base - (dropped inputs before it) */
    uint16_t max_input;
    uint16_t max_output;
    uint16_t floor;       /* the oldest input mapped: since the last sync or fold */
    uint8_t recent;       /* floor is still within the window behind max_input */
    uint16_t ndropped;
    uint16_t dropped[FANOUT_SEQ_DROPPED];  /* oldest first, all newer than max_input - WINDOW */
};

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
    struct fanout_seq seq;
    uint32_t ssrc;
    uint32_t ts_offset;      /* the timestamp mapper's offset (sfu/timestamp_mapper.py) */
    uint32_t max_timestamp;  /* output timestamp of the newest packet sent */
    uint8_t payload_type;
    uint8_t audio_level_id;  /* 0: no audio-level extension on this m-line */
    /* 0: none; else every packet without an audio level carries abs-send-time (our send
     * time), which the subscriber's receive-side estimate (its REMB) needs */
    uint8_t abs_send_time_id;
    /* VP8 simulcast: picture id and TL0PICIDX continue across layer switches */
    uint8_t vp8;             /* rewrite the VP8 payload descriptor */
    uint8_t tl0_offset;
    uint8_t max_tl0;         /* output TL0PICIDX of the newest packet sent */
    uint16_t picture_id_offset;
    uint16_t max_picture_id; /* output picture id of the newest packet sent */
    /* VP8 temporal layers (15-bit picture ids only): frames whose TID is above
     * tid_current are not sent; tid_current follows tid_target down at a frame start
     * and up at a layer-sync (Y) frame. Their picture ids are closed up. */
    uint8_t tid_target;      /* set by Python; 255: every layer */
    uint8_t tid_current;
    uint8_t max_tid;         /* highest TID seen (255: no temporal layers seen) */
    uint16_t npid_dropped;
    uint16_t pid_dropped[FANOUT_PID_DROPPED];  /* input picture ids, oldest first */
    uint64_t temporal_dropped;  /* packets left out for their temporal layer */
    uint64_t packets;
    uint64_t octets;
    uint64_t failures;  /* refused by libsrtp or the socket (full send buffer, say) */
};

int fanout_set_address(struct fanout_wire *wire, const char *host, int port);

/* How long each fan-out step took, for the metrics (sfu/batch_times.py): counts by
 * upper bound (ns; the last count is above every bound), and the sum. */
enum { FANOUT_TIME_BOUNDS = 11 };
extern const uint64_t fanout_time_bounds_ns[11];
extern uint64_t fanout_time_counts[12];
extern uint64_t fanout_time_sum_ns;

/* Send one packet to `count` targets; returns how many got it. `audio_level` < 0
 * means the packet carried none. Timed (above). */
int fanout_send(struct fanout_target **targets, int count, int marker, int seq,
                uint32_t timestamp, int audio_level, const uint8_t *payload, int size);

/* A VP8 payload as `target` sends it (retransmissions go out from Python). */
void fanout_vp8_rewrite(uint8_t *payload, int size, struct fanout_target *target);

/* The producer dropped input `seq`: every target closes up behind it. */
void fanout_drop(struct fanout_target **targets, int count, int seq);

/* The sequence manager on its own (the fan-out step calls the same code). */
void fanout_seq_reset(struct fanout_seq *s, int next_output);
void fanout_seq_sync(struct fanout_seq *s, int input);
void fanout_seq_drop(struct fanout_seq *s, int input);
int fanout_seq_input(struct fanout_seq *s, int input);
int fanout_seq_original(const struct fanout_seq *s, int output);
