// From room state to what goes where on screen. Pure functions: no DOM.
//
// A tile is one video (or a person without video):
//   {key, kind: 'person'|'content', peerId, trackId, audioTrackId, source, name, role, self}
// `trackId` is the server's track id of the tile's video, used for pinning.

export const PRESETS = [
  { id: 'grid', label: 'Grid' },
  { id: 'speaker', label: 'Speaker' },
  { id: 'presentation', label: 'Presentation' },
  { id: 'surgery', label: 'Surgery' },
];

export const SOURCE_LABELS = {
  camera: 'Camera', screen: 'Screen', field: 'Surgical field', endoscope: 'Endoscope',
  overview: 'Room overview', microphone: 'Microphone',
};

// People on screen: publishers, not trainees watching, and only the first screen
// of a multi-screen seat (its other windows are the same person).
export function isPerson(p) {
  return p.role !== 'viewer' && (!p.screen || p.screen === 1);
}

export function buildTiles({ me, participants, tracks, self }) {
  const tiles = [];
  const byPeer = new Map();
  for (const t of tracks.values()) {
    if (!byPeer.has(t.peer_id)) byPeer.set(t.peer_id, []);
    byPeer.get(t.peer_id).push(t);
  }
  const people = [...participants.values()].filter((p) => p.peer_id !== (me && me.peer_id));
  for (const p of people) {
    const own = byPeer.get(p.peer_id) || [];
    if (!isPerson(p) && !own.some((t) => t.kind === 'video')) continue;
    const camera = own.find((t) => t.kind === 'video' && t.source === 'camera');
    const audio = own.find((t) => t.kind === 'audio');
    // A device (an OR camera rig, a monitor) is shown by its media, not by a name card.
    const card = p.role === 'device' ? !!(camera || audio) : isPerson(p) || camera;
    if (card) {
      tiles.push({
        key: camera ? camera.id : `peer:${p.peer_id}`, kind: 'person', peerId: p.peer_id, identity: p.identity,
        trackId: camera ? camera.id : null, audioTrackId: audio ? audio.id : null, source: 'camera',
        name: p.name || 'Guest', role: p.role, self: false, reconnecting: !!p.reconnecting,
        videoMuted: camera ? !!camera.muted : true, audioMuted: audio ? !!audio.muted : true,
      });
    }
    for (const t of own) {
      if (t.kind !== 'video' || t === camera) continue;
      tiles.push({
        key: t.id, kind: 'content', peerId: p.peer_id, identity: p.identity, trackId: t.id, audioTrackId: null,
        source: t.source, name: t.label || `${p.name || 'Guest'} · ${SOURCE_LABELS[t.source] || t.source}`,
        role: p.role, self: false, videoMuted: !!t.muted, audioMuted: true,
      });
    }
  }
  if (self) {
    tiles.unshift({
      key: 'self', kind: 'person', peerId: me ? me.peer_id : 'self', identity: me && me.identity,
      trackId: self.cameraTrackId, audioTrackId: self.micTrackId, source: 'camera',
      name: self.name, role: me && me.role, self: true, videoMuted: self.videoMuted, audioMuted: self.audioMuted,
      hasVideo: self.hasVideo,
    });
    if (self.screenTrack) {
      tiles.push({
        key: 'self:screen', kind: 'content', peerId: me ? me.peer_id : 'self', identity: me && me.identity,
        trackId: self.screenTrackId, audioTrackId: null, source: 'screen', name: 'Your shared screen',
        role: me && me.role, self: true, videoMuted: false, audioMuted: true,
      });
    }
  }
  return tiles;
}

function byTrack(tiles, trackId) {
  return trackId ? tiles.find((t) => t.trackId === trackId) || null : null;
}

function speakerTile(tiles, activePeerId) {
  const people = tiles.filter((t) => t.kind === 'person');
  return people.find((t) => t.peerId === activePeerId && !t.self)
    || people.find((t) => !t.self && !t.videoMuted)
    || people.find((t) => !t.self)
    || people[0] || tiles[0] || null;
}

// The main content of the room: what screen 2 of a seat shows, and what the
// presentation and surgery presets put large.
export function mainContent(layout, tiles) {
  const pinned = byTrack(tiles, layout.main_track);
  if (pinned) return pinned;
  const content = tiles.filter((t) => t.kind === 'content');
  const screens = content.filter((t) => t.source === 'screen');
  const clinical = content.filter((t) => t.source !== 'screen');
  if (layout.preset === 'surgery') return clinical[0] || screens[screens.length - 1] || null;
  return screens[screens.length - 1] || clinical[0] || null;
}

// {preset, main, pips, strip, grid}: tiles per region.
export function arrange(layout, tiles, activePeerId) {
  const preset = layout.preset || 'grid';
  const out = { preset, main: null, pips: [], strip: [], grid: [] };
  if (preset === 'grid') {
    out.grid = [...tiles.filter((t) => t.kind === 'person'), ...tiles.filter((t) => t.kind === 'content')];
    return out;
  }
  if (preset === 'speaker') {
    out.main = byTrack(tiles, layout.main_track) || speakerTile(tiles, activePeerId);
  } else {
    out.main = mainContent(layout, tiles) || speakerTile(tiles, activePeerId);
  }
  const rest = tiles.filter((t) => t !== out.main);
  if (preset === 'surgery') {
    const named = (layout.pip_tracks || []).map((id) => byTrack(rest, id)).filter(Boolean);
    const others = [...rest.filter((t) => t.kind === 'content'), ...rest.filter((t) => t.kind === 'person' && !t.self)];
    out.pips = (named.length ? named : others).slice(0, 3);
  }
  out.strip = rest.filter((t) => !out.pips.includes(t));
  return out;
}

// Columns for an even grid that makes tiles as large as the area allows.
export function gridColumns(count, width, height, gap = 10, aspect = 16 / 9) {
  let best = { cols: 1, tileW: 0 };
  for (let cols = 1; cols <= Math.max(1, count); cols++) {
    const rows = Math.ceil(count / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * aspect);
    if (w > best.tileW) best = { cols, tileW: Math.floor(w) };
  }
  return best;
}
