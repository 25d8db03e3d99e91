// Publish the (fake) camera and microphone with whip-whep's WHIPClient, as its README
// shows. The test reads window.outcome: 'published' or 'error: ...'.
import { WHIPClient } from './vendor/whip-whep/whip.js';

const params = new URLSearchParams(location.hash.slice(1));

window.outcome = (async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  document.getElementById('preview').srcObject = stream;
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
  const whip = new WHIPClient();
  window.pc = pc;
  window.whip = whip;
  await whip.publish(pc, params.get('url'), params.get('token'));
  return 'published';
})().catch((err) => `error: ${err.message}`);
