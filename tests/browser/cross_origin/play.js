// Watch with whip-whep's WHEPClient, as its README shows. The test reads window.outcome
// ('viewing' or 'error: ...') and then the <video>'s decoded frames.
import { WHEPClient } from './vendor/whip-whep/whep.js';

const params = new URLSearchParams(location.hash.slice(1));

window.outcome = (async () => {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  const video = document.getElementById('player');
  pc.ontrack = (event) => {
    if (event.track.kind === 'video') video.srcObject = new MediaStream([event.track]);
  };
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const whep = new WHEPClient();
  window.pc = pc;
  window.whep = whep;
  await whep.view(pc, params.get('url'), params.get('token'));
  return 'viewing';
})().catch((err) => `error: ${err.message}`);
