#!/usr/bin/env python3
"""Drives predictd's page (GET /) in a real headless Chromium, as a person
would: pick a photo, click a point, read the bars, press a feedback button,
pick another label from the list, and check that /v1/stats counted both.

Run by tests/page.rs; by hand:

    page_test.py --url http://127.0.0.1:8080/ --photo tests/fixtures/photos/tuxpaint-strawberry2.jpg \
        --x 149 --y 333 --expect-color red --expect-theme 'Food & Cooking' --screenshot /tmp/page.png
"""

import argparse
import json
import re
import shutil
import sys

from playwright.sync_api import sync_playwright


def fail(message):
    raise AssertionError(message)


def stats(request, url, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = request.get(url + "v1/stats", headers=headers)
    if r.status != 200:
        fail(f"/v1/stats answered {r.status}: {r.text()}")
    return r.json()


def feedback_count(s, model):
    return s.get("models", {}).get(model, {}).get("feedback", 0)


def rows(page, model):
    out = []
    for row in page.locator(f'section.model[data-model="{model}"] .row').all():
        out.append((row.get_attribute("data-label"), float(row.get_attribute("data-probability"))))
    return out


def run(args, page, request):
    page.goto(args.url)
    if args.token:
        # The page discovers that a token is needed and asks for it.
        page.wait_for_selector("#token-box:not([hidden])", timeout=10_000)
        page.fill("#token", args.token)
        page.click("#token-save")
    page.set_input_files("#file", args.photo)
    page.wait_for_function("() => document.querySelector('#image').naturalWidth > 0", timeout=10_000)
    natural = page.evaluate("() => [document.querySelector('#image').naturalWidth, document.querySelector('#image').naturalHeight]")
    box = page.locator("#image").bounding_box()
    # The element position that maps to (x, y) in natural pixels (the
    # middle of that pixel).
    px = (args.x + 0.5) * box["width"] / natural[0]
    py = (args.y + 0.5) * box["height"] / natural[1]
    before = stats(request, args.url, args.token)
    page.locator("#image").click(position={"x": px, "y": py})
    page.wait_for_selector('section.model[data-model="theme"] .row', timeout=30_000)
    page.wait_for_selector('section.model[data-model="color"] .row', timeout=30_000)
    status = page.inner_text("#status")
    m = re.search(r"Point \((\d+), (\d+)\)", status)
    if not m:
        fail(f"the page does not say which point it asked about: {status!r}")
    # Mouse positions are whole CSS pixels, so allow one image pixel.
    if abs(int(m[1]) - args.x) > 1 or abs(int(m[2]) - args.y) > 1:
        fail(f"the page asked for ({m[1]}, {m[2]}), not ({args.x}, {args.y})")
    for model, expected in (("color", args.expect_color), ("theme", args.expect_theme)):
        got = rows(page, model)
        if len(got) != 5:
            fail(f"{model}: {len(got)} rows shown, not 5")
        probs = [p for _, p in got]
        if not all(0 < p <= 1 for p in probs):
            fail(f"{model}: probabilities out of (0, 1]: {probs}")
        if probs != sorted(probs, reverse=True):
            fail(f"{model}: not sorted: {probs}")
        if expected and got[0][0] != expected:
            fail(f"{model}: top label {got[0][0]!r}, expected {expected!r}")
        widths = page.eval_on_selector_all(
            f'section.model[data-model="{model}"] .fill', "els => els.map(e => e.getBoundingClientRect().width)")
        if widths[0] <= widths[-1] or widths[0] <= 0:
            fail(f"{model}: bars do not follow the probabilities: {widths}")
    timings = page.inner_text("#timings")
    for part in ("decode", "theme", "color", "total", "ms"):
        if part not in timings:
            fail(f"timings lack {part!r}: {timings!r}")

    # Feedback: the first theme is right.
    page.click('section.model[data-model="theme"] .row >> nth=0 >> button.feedback')
    page.wait_for_selector('section.model[data-model="theme"] .thanks:not([hidden])', timeout=10_000)
    after = stats(request, args.url, args.token)
    if feedback_count(after, "theme") != feedback_count(before, "theme") + 1:
        fail(f"theme feedback not counted: {json.dumps(before)} -> {json.dumps(after)}")
    # For the color, the right one was not offered: pick it from the list.
    offered = {label for label, _ in rows(page, "color")}
    options = page.eval_on_selector_all('section.model[data-model="color"] select.other option', "os => os.map(o => o.value)")
    other = next(o for o in options if o not in offered)
    page.select_option('section.model[data-model="color"] select.other', other)
    page.click('section.model[data-model="color"] button.send-other')
    page.wait_for_selector('section.model[data-model="color"] .thanks:not([hidden])', timeout=10_000)
    final = stats(request, args.url, args.token)
    if feedback_count(final, "color") != feedback_count(before, "color") + 1:
        fail(f"color feedback not counted: {json.dumps(after)} -> {json.dumps(final)}")
    if final["models"]["color"]["labels"].get(other, {}).get("top5") != 0.0:
        fail(f"a label that was not offered must count as a top-5 miss: {json.dumps(final)}")

    print(f"page test passed: colors {rows(page, 'color')[0]}, themes {rows(page, 'theme')[0]}, "
          f"feedback recorded for theme and color ({other!r})")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--photo", required=True)
    p.add_argument("--x", type=int, required=True)
    p.add_argument("--y", type=int, required=True)
    p.add_argument("--expect-color")
    p.add_argument("--expect-theme")
    p.add_argument("--screenshot", required=True)
    p.add_argument("--token")
    p.add_argument("--svg", help="an SVG file: the browser shows it, predictd refuses it (415), the page must say so")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args()
    if not args.url.endswith("/"):
        args.url += "/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=args.chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        ok = True
        try:
            run(args, page, pw.request.new_context())
            page.screenshot(path=args.screenshot, full_page=True)
            if args.svg:
                page.set_input_files("#file", args.svg)
                page.wait_for_function("() => document.querySelector('#image').naturalWidth > 0", timeout=10_000)
                page.locator("#image").click(position={"x": 5, "y": 5})
                page.wait_for_selector("#status.error", timeout=10_000)
                status = page.inner_text("#status")
                if "unsupported_media_type" not in status:
                    fail(f"the daemon's 415 is not shown: {status!r}")
                if page.locator(".row").count() != 0:
                    fail("results of the previous photo are still shown")
                page.screenshot(path=args.screenshot.replace(".png", "-error.png"), full_page=True)
            errors = [c for c in console if c.startswith("pageerror")]
            if errors:
                fail(f"JavaScript errors: {errors}")
        except Exception as e:  # report, keep the screenshot
            ok = False
            print(f"page test FAILED: {e}", file=sys.stderr)
            print("console:\n  " + "\n  ".join(console), file=sys.stderr)
        finally:
            if not ok:
                page.screenshot(path=args.screenshot, full_page=True)
            browser.close()
        print(f"screenshot: {args.screenshot}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
