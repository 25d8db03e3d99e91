"""The web client runs under the server's Content-Security-Policy without a single
violation: no inline script, style attribute or event handler anywhere in the pages."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import room_url, wait_connected

# Installed before any page script runs, so nothing is missed.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

VIOLATIONS = "window.__cspViolations"


async def test_lobby_and_room_load_without_csp_violations(server, people):
    # `people` also fails the test on any CSP violation Chromium reports in the console.
    await server.create_room("csp-1", "pw-csp-123")
    person = await people("doctor", init_script=RECORD_VIOLATIONS)
    console: list[str] = []
    page = await person.page(f"{server.url}/?room=csp-1")
    page.on("console", lambda msg: console.append(msg.text))
    await expect(page.locator("#preview-video")).to_be_visible()
    assert await page.evaluate(VIOLATIONS) == []

    await page.fill("#name", "Dr. Policy")
    await page.fill("#password", "pw-csp-123")
    await page.select_option("#quality", "sd")
    await page.click("#join-btn")
    await page.wait_for_url("**/room.html?room=csp-1")
    await wait_connected(page)
    await expect(page.locator("#stage .tile")).to_have_count(1)
    await page.click("#ctl-leave")  # the "left" card is drawn from a template too
    await expect(page.locator("#ended")).to_be_visible()
    assert await page.evaluate(VIOLATIONS) == []

    viewer = await person.page(room_url(server, "csp-1", await server.token("csp-1", "pw-csp-123", "viewer", "T"),
                                        page="viewer.html"))
    await wait_connected(viewer)
    assert await viewer.evaluate(VIOLATIONS) == []
    assert not [text for text in console if "Content Security Policy" in text]



async def test_the_policy_is_enforced_and_violations_are_seen(server, browser):
    """The other test can fail: an inline script and an inline style are refused and reported."""
    context = await browser.new_context()  # not `people`: these violations are on purpose
    try:
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        await page.goto(f"{server.url}/")
        await page.evaluate("""() => {
          const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; document.body.append(s);
          const d = document.createElement('div'); d.innerHTML = '<p style="color:red">x</p>'; document.body.append(d);
        }""")
        await page.wait_for_function(f"() => {VIOLATIONS}.length >= 2", timeout=10000)
        assert await page.evaluate("window.__ran") is None
    finally:
        await context.close()
