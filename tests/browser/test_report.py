"""The consult report in the browser: the host writes it in the clinical panel, citing a
lab shared in the consult; everyone sees it listed as signed by the host, and it downloads
as a PDF. A trainee sees it and has no form."""

from __future__ import annotations

from playwright.async_api import expect

from tests.clinical_peers import PASSWORD, close, join, potassium

from .conftest import room_url, wait_connected

ROOM = "report-consult"


async def test_host_writes_and_signs_the_report(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)
    host = await (await people("host")).page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Host")))
    trainee = await (await people("trainee")).page(
        room_url(server, ROOM, await server.token(ROOM, PASSWORD, "viewer", "Trainee"), page="viewer.html"))
    await wait_connected(host)
    lab = await join(server, ROOM, "Lab")
    try:
        await lab.send_fhir(potassium(6.4))
        await host.click("#ctl-clinical")
        form = host.locator(".report-form")
        await host.locator(".report-write summary").click()
        await form.locator("select[name=template]").select_option("stroke")
        await expect(form.locator("textarea[name=findings]")).to_have_value("Onset and NIHSS:\n\nImaging:\n\n"
                                                                             "Thrombolysis / thrombectomy decision:\n")
        await form.locator("textarea[name=findings]").fill("NIHSS 14. Hyperdense left MCA.")
        await form.locator("textarea[name=conclusion]").fill("Thrombectomy indicated.")
        cite = form.locator(".report-cite", has_text="Potassium")
        await cite.locator("input").check()
        await form.locator("button[type=submit]").click()

        item = host.locator(".report-item")
        await expect(item).to_contain_text("Stroke consult", timeout=20000)
        await expect(item).to_contain_text("signed by Dr. Host")
        notice = await lab.wait_for(lambda m: m.get("type") == "report")
        assert [r["kind"] for r in notice["references"]] == ["lab"]
        async with host.expect_download() as download_info:
            await item.locator('[data-get="pdf"]').click()
        download = await download_info.value
        assert (await download.path()).read_bytes().startswith(b"%PDF-")
        await host.screenshot(path=str(screenshots / "consult-report.png"))

        # The trainee sees it, read-only: no form.
        await trainee.click("#ctl-clinical")
        await expect(trainee.locator(".report-item")).to_contain_text("signed by Dr. Host", timeout=20000)
        await expect(trainee.locator(".report-form")).to_have_count(0)
    finally:
        await close(lab)
