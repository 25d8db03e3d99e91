"""The consult report in the page: the host picks a template, writes findings and a
conclusion, cites the lab result and image discussed, and signs; a colleague and a
trainee see the signed report; the trainee has no form."""

from __future__ import annotations

from playwright.async_api import expect

from tests.clinical_peers import PASSWORD, bundled, close, join, potassium

from .conftest import room_url, wait_connected


async def test_host_signs_the_report_and_everyone_sees_it(server, people, screenshots):
    room = "report-ui"
    await server.create_room(room, PASSWORD)
    host = await (await people("host")).page(room_url(server, room, await server.token(room, PASSWORD, "host", "Dr. Neuro")))
    colleague = await (await people("colleague")).page(room_url(server, room, await server.token(room, PASSWORD, "participant", "Dr. County")))
    trainee = await (await people("trainee")).page(room_url(server, room, await server.token(room, PASSWORD, "viewer", "Trainee"), page="viewer.html"))
    await wait_connected(host)
    await wait_connected(colleague)
    device = await join(server, room, "Ambulance", role="device")
    try:
        await device.send_fhir(potassium(6.2))
        await device.send_dicom(bundled("CT_small.dcm"), "head-ct.dcm")
        await host.click("#ctl-clinical")
        form = host.locator(".report-form")
        await form.get_by_label("Template").select_option("stroke")
        await expect(form.get_by_label("Findings")).to_have_value("Onset (last known well):\nNIHSS:\nImaging (CT/CTA):\nContraindications to thrombolysis:\n")
        await form.get_by_label("Findings").fill("NIHSS 14. No bleed.")
        await form.get_by_label("Conclusion").fill("Ischaemic stroke: thrombolysis now.")
        await form.get_by_label("Lab: Potassium 6.2 mmol/L").check()
        await form.get_by_label("Image: head-ct.dcm (CT)").check()
        await form.get_by_role("button", name="Sign and share report").click()

        for page in (host, colleague, trainee):
            if page is not host:
                await page.click("#ctl-clinical")
            report = page.locator(".consult-report")
            await expect(report).to_have_count(1, timeout=20000)
            await expect(report.locator("h3")).to_have_text("Stroke consult")
            await expect(report.locator('[data-role="conclusion"]')).to_have_text("Ischaemic stroke: thrombolysis now.")
            await expect(report).to_contain_text("Signed by Dr. Neuro (host)")
            await expect(report.locator(".report-cited")).to_contain_text("Potassium: 6.2 mmol/L (H)")
            await expect(report.locator(".report-cited")).to_contain_text("Image head-ct.dcm (CT)")
        await expect(trainee.locator(".report-form")).to_have_count(0)
        # The trainee may read and export it: the server's PDF, audited under the trainee.
        async with trainee.expect_download() as download:
            await trainee.locator(".consult-report").get_by_role("button", name="PDF").click()
        saved = await (await download.value).path()
        assert (await download.value).suggested_filename.endswith(".pdf") and open(saved, "rb").read(5) == b"%PDF-"
        await expect(form.get_by_label("Conclusion")).to_have_value("Diagnosis, thrombolysis / thrombectomy decision, transfer:")
        await host.screenshot(path=screenshots / "consult-report.png")
    finally:
        await close(device)
