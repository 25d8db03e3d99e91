"""Pulling a study from a real Orthanc PACS in the browser: the form checks UIDs before
sending, shows the server's answer, and the pulled images reach everyone's list.
Only pages that may share, on a server with a PACS, offer the form."""

from __future__ import annotations

from playwright.async_api import expect

from tests.clinical_peers import PASSWORD
from tests.orthanc import STUDY_UID

from .conftest import IMAGE_SHOWN, room_url, wait_connected, wait_for

# Records what the page sends on `control` and every text the pull's status shows,
# so that the test can tell "not sent" and "Pulling…" apart from timing.
WATCH = """() => {
  const session = window.telemed.session;
  const send = session.sendData.bind(session);
  window.sentTypes = [];
  session.sendData = (m) => { window.sentTypes.push(m.type); return send(m); };
  window.statusTexts = [];
  const status = document.querySelector('.pacs-status');
  new MutationObserver(() => window.statusTexts.push(status.textContent))
    .observe(status, {childList: true, subtree: true});
}"""


async def test_pull_from_pacs_reaches_everyone(pacs_server, orthanc, people, screenshots):
    server, room = pacs_server, "pacs-pull"
    await server.create_room(room, PASSWORD)
    doctor = await (await people("doctor")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Radiology")))
    colleague = await (await people("colleague")).page(
        room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. Seat"), screen=3))
    await wait_connected(doctor)
    await wait_connected(colleague)
    await doctor.click("#ctl-clinical")
    form = doctor.locator("form.pacs-pull")
    await expect(form).to_be_visible()
    await expect(colleague.locator("form.pacs-pull")).to_be_visible()  # screen 3 offers it too
    await doctor.evaluate(WATCH)
    study, series, instance = (form.get_by_label(name) for name in (
        "Study Instance UID", "Series Instance UID", "SOP Instance UID"))
    pull, problem, status = form.get_by_role("button", name="Pull and share"), form.locator(".field-error"), form.locator(".pacs-status")

    # Bad UIDs are caught in the page, next to the field, and nothing is sent.
    await study.fill("1.2.03")
    await pull.click()
    await expect(problem).to_contain_text("Study Instance UID is not a DICOM UID")
    await expect(study).to_have_attribute("aria-invalid", "true")
    await study.fill(STUDY_UID)
    await expect(problem).to_be_hidden()  # typing clears it
    await instance.fill("1.2.3")
    await pull.click()
    await expect(problem).to_contain_text("needs the Series Instance UID")
    await expect(series).to_be_focused()
    await instance.fill("")
    await study.fill("1." + "2" * 63)
    await pull.click()
    await expect(problem).to_contain_text("at most 64")
    assert "dicom-pull" not in await doctor.evaluate("window.sentTypes")

    # An unknown study: the server's own words.
    await study.fill("1.2.3.4.5.6")
    await pull.click()
    await expect(status).to_contain_text("Not pulled: the PACS has no study with that UID")
    await expect(status).to_have_attribute("role", "alert")

    # The study: three images shared, the RT Dose refused with its reason.
    await study.fill(STUDY_UID)
    await pull.click()
    await expect(status).to_contain_text("3 images shared", timeout=20000)
    await expect(status.locator("li")).to_have_count(1)
    await expect(status.locator("li")).to_contain_text("Not shared:")
    assert "Pulling…" in await doctor.evaluate("window.statusTexts")
    await expect(pull).to_be_enabled()
    await expect(doctor.locator(".dicom-item")).to_have_count(3)
    await doctor.screenshot(path=screenshots / "clinical-pacs-pull.png")

    # The colleague's list has them, and a pulled image opens.
    ct_instance = orthanc.series["CT_small.dcm"][1]
    await expect(colleague.locator(".dicom-item")).to_have_count(3, timeout=20000)
    await colleague.locator(".dicom-item", has_text=ct_instance).click()
    await wait_for(colleague, IMAGE_SHOWN, arg="frame=0")

    # A trainee reads along but has no form.
    trainee = await (await people("trainee")).page(
        room_url(server, room, await server.token(room, PASSWORD, "viewer", "Trainee"), page="viewer.html"))
    await trainee.click("#ctl-clinical")
    await expect(trainee.locator(".dicom-item")).to_have_count(3, timeout=20000)
    await expect(trainee.locator("form.pacs-pull")).to_have_count(0)


async def test_no_pull_form_without_a_pacs(server, people):
    room = "no-pacs"
    await server.create_room(room, PASSWORD)
    doctor = await (await people("doctor")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. A")))
    await wait_connected(doctor)  # clinical-state comes right after `joined`
    await doctor.click("#ctl-clinical")
    await expect(doctor.locator(".dropzone")).to_be_visible()
    await expect(doctor.locator("form.pacs-pull")).to_be_hidden()
