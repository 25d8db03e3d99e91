// A recording at any moment: what its layout was, who was there with which
// tracks (muted or not), what clinical data had been shared, and the markers of
// its timeline. Pure functions over the manifest and the session-log entries
// (docs/signaling.md, "Recordings"); no DOM.
//
// All times are seconds from the recording's start.

const DEFAULT_LAYOUT = { preset: 'grid', main_track: null, pip_tracks: [] };

export function duration(manifest) {
  const ends = (manifest.tracks || []).map((t) => t.end ?? t.start ?? 0);
  const events = (manifest.events || []).map((e) => e.t || 0);
  let wall = 0;
  if (manifest.started_at && manifest.stopped_at) {
    wall = (Date.parse(manifest.stopped_at) - Date.parse(manifest.started_at)) / 1000;
  }
  return Math.max(0, wall || 0, ...ends, ...events);
}

// Events name live tracks; a recording carried on after a failover records a live
// track again in a later segment, as an entry of its own (`id`, with `track_id` the
// live one). The entry that covers `t` stands for its live track there.
function entryIdAt(manifest, liveId, t) {
  const entry = (manifest.tracks || []).find((tr) => (tr.track_id ?? tr.id) === liveId && trackCovers(tr, t));
  return entry ? entry.id : liveId;
}

export function layoutAt(manifest, t) {
  let layout = DEFAULT_LAYOUT;
  for (const e of manifest.events || []) {
    if (e.t > t) break;
    if (e.type === 'layout' && e.layout) layout = { ...DEFAULT_LAYOUT, ...e.layout };
  }
  return {
    ...layout,
    main_track: layout.main_track && entryIdAt(manifest, layout.main_track, t),
    pip_tracks: (layout.pip_tracks || []).map((id) => entryIdAt(manifest, id, t)),
  };
}

// Track ids muted at `t`, from `mute` events ({track_id, muted}).
function mutedAt(manifest, t) {
  const muted = new Set();
  for (const e of manifest.events || []) {
    if (e.t > t) break;
    if (e.type === 'mute') (e.muted ? muted.add(e.track_id) : muted.delete(e.track_id));
  }
  return muted;
}

export function trackCovers(track, t) {
  return t >= (track.start || 0) && (track.end == null || t < track.end);
}

// The room at `t` in the shapes layout.buildTiles takes: participants by peer id
// and tracks by id. People are there while their tracks are, or between their
// join and leave events; trainees (viewers) and a seat's extra screens are not
// shown, as in the room.
export function roomAt(manifest, t) {
  const participants = new Map();
  const joined = new Map();
  for (const e of manifest.events || []) {
    if (e.t > t) break;
    // `participant` lists who was there at the start, `join` who came later.
    if (e.type === 'participant' || e.type === 'join') joined.set(e.peer_id, e);
    if (e.type === 'leave') joined.delete(e.peer_id);
  }
  for (const p of joined.values()) {
    participants.set(p.peer_id, { peer_id: p.peer_id, identity: p.identity, name: p.name, role: p.role || 'participant', screen: p.screen });
  }
  const muted = mutedAt(manifest, t);
  const tracks = new Map();
  for (const track of manifest.tracks || []) {
    if (!trackCovers(track, t)) continue;
    tracks.set(track.id, {
      id: track.id, peer_id: track.peer_id, kind: track.kind, source: track.source || 'camera',
      label: track.label || '', muted: muted.has(track.track_id ?? track.id),
    });
    if (!participants.has(track.peer_id)) {
      participants.set(track.peer_id, {
        peer_id: track.peer_id, identity: track.identity, name: track.name, role: 'participant',
      });
    }
  }
  return { participants, tracks };
}

// Where each session-log entry sits on the timeline. The manifest's clinical events
// carry (seq, t); the log's own monotonic `t` shifted by the same offset places
// entries the manifest does not list, and wall time is the fallback. Entries from
// before the recording started sit before zero: the state it opened with.
export function placeEntries(manifest, entries) {
  const bySeq = new Map();
  for (const e of manifest.events || []) if (e.type === 'clinical' && e.seq != null) bySeq.set(e.seq, e.t);
  const offsets = entries.filter((x) => bySeq.has(x.seq)).map((x) => bySeq.get(x.seq) - x.t).sort((a, b) => a - b);
  const offset = offsets.length ? offsets[Math.floor(offsets.length / 2)] : null;
  const started = Date.parse(manifest.started_at || '');
  const from = manifest.session_log?.from_seq ?? 0;
  return entries.map((x) => {
    let at;
    if (bySeq.has(x.seq)) at = bySeq.get(x.seq);
    else if (x.seq < from) at = -1;
    else if (offset != null) at = x.t + offset;
    else at = (Date.parse(x.wall) - started) / 1000;
    return { ...x, at: Number.isFinite(at) ? at : -1 };
  }).sort((a, b) => a.seq - b.seq);
}

const EPSILON = 0.05; // a seek to a marker lands on it, not a hair before

// What the clinical panel showed at `t`, as the server's `clinical-state` message,
// so the room's own panels take it unchanged.
export function clinicalStateAt(entries, t) {
  const dicom = new Map();
  const labs = new Map();
  const ecg = new Map();
  const reports = [];
  let seq = 0;
  for (const x of entries) {
    if (x.at > t + EPSILON) continue;
    const stamp = { seq: x.seq, t: x.t, sender: x.sender };
    seq = Math.max(seq, x.seq);
    if (x.kind === 'dicom') {
      if (!dicom.has(x.body.sha256)) dicom.set(x.body.sha256, { ...x.body, ...stamp });
    } else if (x.kind === 'lab') {
      for (const r of x.body.results || []) {
        const key = `${r.patient || ''}|${r.loinc}`;
        const current = labs.get(key);
        if (!current || notOlder(r.effective, current.effective)) {
          labs.delete(key);
          labs.set(key, { ...r, ...stamp });
        }
      }
    } else if (x.kind === 'ecg-announce') {
      ecg.set(`${x.sender}|${x.body.stream_id}`, { ...x.body, ...stamp, at: x.at });
    } else if (x.kind === 'ecg-end') {
      ecg.delete(`${x.sender}|${x.body.stream_id}`);
    } else if (x.kind === 'report') {
      reports.push({ ...x.body, ...stamp });
    }
  }
  return { type: 'clinical-state', seq, dicom: [...dicom.values()], labs: [...labs.values()], ecg_streams: [...ecg.values()], reports, pacs: false };
}

function notOlder(a, b) {
  const x = Date.parse(a || '');
  const y = Date.parse(b || '');
  return Number.isNaN(x) || Number.isNaN(y) || x >= y;
}

// Timeline markers: {t, kind: 'dicom'|'lab'|'ecg'|'layout', label, seq?}.
export function markers(manifest, entries) {
  const out = [];
  for (const x of entries) {
    if (x.at < 0) continue;
    const who = x.body.sender_name ? ` · ${x.body.sender_name}` : '';
    if (x.kind === 'dicom') out.push({ t: x.at, kind: 'dicom', seq: x.seq, sha256: x.body.sha256, label: `Image: ${x.body.name}${who}` });
    else if (x.kind === 'lab') {
      const names = (x.body.results || []).map((r) => r.display || r.loinc).join(', ');
      out.push({ t: x.at, kind: 'lab', seq: x.seq, label: `Lab: ${names}${who}` });
    } else if (x.kind === 'ecg-announce') out.push({ t: x.at, kind: 'ecg', seq: x.seq, label: `ECG${who}` });
  }
  let previous = null; // the layout the recording starts with is no change
  for (const e of manifest.events || []) {
    if (e.type !== 'layout' || !e.layout) continue;
    const now = JSON.stringify([e.layout.preset, e.layout.main_track || null, e.layout.pip_tracks || []]);
    if (previous !== null && now !== previous) {
      out.push({ t: e.t, kind: 'layout', label: `Layout: ${e.layout.preset}${e.layout.main_track ? ' · pinned' : ''}` });
    }
    previous = now;
  }
  return out.sort((a, b) => a.t - b.t);
}

export function formatTime(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
