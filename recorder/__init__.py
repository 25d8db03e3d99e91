"""Per-track recording without transcoding: RTP depacketizers, muxers, the manifest."""
