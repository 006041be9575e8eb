"""Regenerate docs/serve.png: the web page (``styledistill serve``) after a real click.

Starts the page on the shipped pretrained student (``--student``, default styleid-small),
uploads a content photo (scikit-image's bundled cat) and a style, clicks **Stylize** in a
headless Chromium (Playwright) and saves a screenshot of what the page shows.

    .venv/bin/python scripts/make_serve_screenshot.py
    .venv/bin/python scripts/make_serve_screenshot.py --style my_painting.jpg
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--student", default="styleid-small", help="pretrained name or folder")
    parser.add_argument("--content", type=Path, help="content image (default: the cat photo)")
    parser.add_argument("--style", type=Path, help="style image (default: sample brush_strokes)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from styledistill.images import save_image
    from styledistill.samples import generate_style, skimage_data_dir
    from styledistill.serve import build_app, cleanup, launch
    from styledistill.student import Stylizer

    browser_path = shutil.which("chromium") or "/usr/bin/chromium"
    work = Path(tempfile.mkdtemp(prefix="serve-shot-"))
    content = args.content or skimage_data_dir() / "chelsea.png"
    style = args.style or save_image(generate_style("brush_strokes", 512, 0), work / "style.png")
    app = build_app(Stylizer.from_pretrained(args.student, device="cpu"), temp_dir=work / "app")
    port = free_port()
    launch(app, port=port, block=False, quiet=True)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch_persistent_context(
                str(work / "profile"),
                executable_path=browser_path,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            page.locator("#content input[type=file]").set_input_files(str(content))
            page.locator("#style input[type=file]").set_input_files(str(style))
            page.locator("#content img").first.wait_for(state="visible")
            page.locator("#style img").first.wait_for(state="visible")
            page.locator("#run").click()
            page.locator("#result img").first.wait_for(state="visible")
            page.wait_for_function(
                "() => { const i = document.querySelector('#result img');"
                " return i && i.complete && i.naturalWidth > 0; }"
            )
            page.wait_for_timeout(500)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        cleanup(app)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} ({args.student} on {Path(content).name} x {Path(style).name})")


if __name__ == "__main__":
    main()
