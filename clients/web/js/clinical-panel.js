// The clinical data of a consult: live ECG, shared DICOM images and lab results.
// Shown on screen 3 of a multi-screen seat, and as a side panel of the single-window
// consult and of the trainee view (read-only there: trainees do not share files).
//
// Contract: mountClinicalPanel(section, ctx) is called once, before the session
// starts, with the <section id="clinical-panel"> element and ctx = {session, room,
// canShare, onNews(text), onClose}. The session must have been created with
// `clinical: true` (bulk and ecg channels). `onNews` hears of new items (for a badge
// while the panel is closed); `onClose`, if given, adds a Close button. Returns
// {share(files)}, for files dropped anywhere on the page. `canShare` (publish and data
// grants) adds the upload and, where the server has a PACS, the pull from it.

import { objectLinks } from './api.js';
import { DicomList } from './dicom-list.js';
import { DicomUpload } from './dicom-upload.js';
import { DicomViewer } from './dicom-viewer.js';
import { EcgMonitor } from './ecg-monitor.js';
import { icon } from './icons.js';
import { LabPanel } from './lab-panel.js';
import { ReportPanel } from './report-panel.js';
import { PacsPull } from './pacs-pull.js';
import { escapeHtml } from './util.js';

export function mountClinicalPanel(section, { session, room, canShare = true, canReport = false, replay = false, onNews = () => {}, onClose = null }) {
  section.innerHTML = `
    <div class="clinical-head">
      <h1>Clinical data · ${escapeHtml(room)}</h1>
      ${onClose ? '<button type="button" class="btn btn-link" data-role="close">Close</button>' : ''}
    </div>
    <div class="clinical-grid">
      <article class="clinical-card clinical-ecg" aria-labelledby="c-ecg">
        <h2 id="c-ecg">${icon('heart')} ECG</h2>
        <div data-role="ecg"></div>
      </article>
      <article class="clinical-card clinical-images" aria-labelledby="c-dicom">
        <h2 id="c-dicom">${icon('image')} Images (DICOM)</h2>
        <div data-role="viewer"></div>
        <div data-role="list"></div>
        ${canShare ? '<div data-role="upload"></div><div data-role="pacs"></div>' : ''}
      </article>
      <article class="clinical-card clinical-labs" aria-labelledby="c-labs">
        <h2 id="c-labs">${icon('flask')} Lab results</h2>
        <div data-role="labs"></div>
      </article>
      <article class="clinical-card clinical-reports" aria-labelledby="c-reports">
        <h2 id="c-reports">${icon('report')} Consult report</h2>
        <div data-role="reports"></div>
      </article>
    </div>`;
  const part = (role) => section.querySelector(`[data-role="${role}"]`);
  if (onClose) part('close').addEventListener('click', onClose);

  new EcgMonitor(part('ecg'), session, { onNews });
  new LabPanel(part('labs'), session, { onNews });
  new ReportPanel(part('reports'), session, room, { canWrite: canReport, live: !replay, onNews });
  const list = new DicomList(part('list'), { onOpen: (item) => viewer.open(item) });
  const viewer = new DicomViewer(part('viewer'), {
    renewLinks: async (sha256) => {
      try {
        const links = await objectLinks(room, sha256, await session.freshToken());
        Object.assign(list.get(sha256) || {}, links);
        return links;
      } catch (err) {
        throw new Error(err.status === 401 ? 'your sign-in has expired; rejoin the consult to open images' : err.message);
      }
    },
  });
  session.addEventListener('data', (e) => {
    const m = e.detail;
    if (m.type === 'dicom') {
      list.add(m);
      onNews(`${m.sender_name || 'Someone'} shared ${m.name}`);
    } else if (m.type === 'clinical-state') {
      list.reset(m.dicom || []);
      for (const item of m.dicom || []) viewer.updateLinks(item);
    }
  });
  const upload = canShare ? new DicomUpload(part('upload'), session) : null;
  if (canShare) new PacsPull(part('pacs'), session);
  return { share: (files) => upload && upload.share(files) };
}
