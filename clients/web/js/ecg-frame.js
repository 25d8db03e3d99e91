// One binary frame of the `ecg` data channel (docs/signaling.md, "Binary formats";
// clinical/ecg.py on the server). Little-endian throughout.

const HEADER = 24;

// {leadCount, streamId, seq, firstSample, sampleRate, count, samples}, or null if
// the bytes are not a version 1 frame. `samples` is sample-major: s0.L0 s0.L1 …
export function parseEcgFrame(buffer) {
  if (buffer.byteLength < HEADER) return null;
  const v = new DataView(buffer);
  if (v.getUint8(0) !== 0x45 || v.getUint8(1) !== 0x43 || v.getUint8(2) !== 1) return null;
  const leadCount = v.getUint8(3);
  const count = v.getUint16(22, true);
  if (buffer.byteLength !== HEADER + 2 * leadCount * count) return null;
  return {
    leadCount,
    streamId: v.getUint32(4, true),
    seq: v.getUint32(8, true),
    firstSample: Number(v.getBigUint64(12, true)),
    sampleRate: v.getUint16(20, true),
    count,
    // Typed arrays use the platform's byte order, little-endian on every browser platform.
    samples: new Int16Array(buffer, HEADER, leadCount * count),
  };
}
