"""The web page in a real browser (headless Chromium driven by Playwright): choose a
digit, read the top-5 list, draw the occlusion map. Skipped where either is missing;
CI installs both (.ci/run)."""
import os
import shutil

import pytest

CHROMIUM = os.environ.get("CONVNETS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install '.[test]')")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _right_digit(server, digit_pngs):
    """A test digit the served model gets right, and its class."""
    for cls in sorted(digit_pngs):
        for path in digit_pngs[cls]:
            with open(path, "rb") as f:
                top = server.post_image("/v1/predict", f.read()).json()["topk"][0]["class"]
            if top == cls:
                return path, cls
    pytest.fail("the served model gets none of the test digits right")


@pytest.mark.parametrize("viewport", [{"width": 1000, "height": 760}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_choose_a_digit_and_see_its_class_and_occlusion_map(browser, server, digit_pngs,
                                                           tmp_path, viewport):
    path, cls = _right_digit(server, digit_pngs)
    page = browser.new_page(viewport=viewport)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    sync_api.expect(page.locator("#model")).to_contain_text("resnet20, 5 classes")
    page.set_input_files("#file", path)
    rows = page.locator("#top li")
    sync_api.expect(rows).to_have_count(5)
    assert rows.first.locator(".name").inner_text() == cls
    shown = [float(t.rstrip("%")) for t in page.locator("#top .pct").all_inner_texts()]
    assert shown == sorted(shown, reverse=True) and 0 < sum(shown) <= 100.5

    page.click("#occlude")
    sync_api.expect(page.locator("#heatbox")).to_be_visible()
    sync_api.expect(page.locator("#heatnote")).to_contain_text(f"p({cls})")
    # The canvas holds the input under the heat map: many colours, not a blank box.
    colours = page.evaluate("""() => {
        const c = document.getElementById('heat');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
        return seen.size;
    }""")
    assert colours >= 8
    # Nothing on the page is wider than the screen (readable on a phone).
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.screenshot(path=str(tmp_path / f"serve-page-{viewport['width']}.png"), full_page=True)
    assert errors == []
    page.close()


def test_a_bad_file_is_reported_on_the_page(browser, server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image at all")
    page = browser.new_page()
    page.goto(server.url)
    page.set_input_files("#file", str(bad))
    sync_api.expect(page.locator("#status")).to_contain_text("not an image")
    sync_api.expect(page.locator("#status")).to_have_class("error")
    assert page.locator("#top li").count() == 0
    assert page.locator("#occlude").is_disabled()
    page.close()
