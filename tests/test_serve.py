"""The web page: stylize logic and limits without a browser, then headless Chromium end to end."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from styledistill.errors import StyledistillError  # noqa: E402
from styledistill.serve import LimitError, StyleServer, UploadLimits, build_app, cleanup, launch  # noqa: E402
from styledistill.student import Stylizer  # noqa: E402

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def keep_gradio_env():
    """build_app points GRADIO_TEMP_DIR at its own folder; put the old value back."""
    before = {k: os.environ.get(k) for k in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED")}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def stylizer(tiny_student) -> Stylizer:
    return Stylizer(tiny_student(), device="cpu", size=64)  # conftest.py


@pytest.fixture
def images(content_and_style, tmp_path) -> tuple[Path, Path]:
    """An 80x60 content.png and a 48x48 style.jpg (conftest.py)."""
    return content_and_style(tmp_path, (80, 60), (48, 48), "style.jpg")


def test_server_stylizes_caches_style_and_writes_only_in_temp(stylizer, images, tmp_path):
    temp = tmp_path / "serve-temp"
    server = StyleServer(stylizer, temp, limits=UploadLimits(max_upload_mb=1, max_pixels=10_000))
    image, path = server.stylize(str(images[0]), str(images[1]))
    assert image.size == (80, 60) and Path(path).is_file()
    assert Path(path).parent.parent == temp
    server.stylize(str(images[0]), str(images[1]))
    assert len(server._codes) == 1  # the same style is encoded once


def test_limits_give_clear_messages(stylizer, images, tmp_path):
    server = StyleServer(
        stylizer, tmp_path / "t", limits=UploadLimits(max_upload_mb=1, max_pixels=4000)
    )
    with pytest.raises(
        LimitError, match=r"content image is 80x60 = 4,800 pixels, over the limit of 4,000 pixels"
    ):
        server.stylize(str(images[0]), str(images[1]))
    big = tmp_path / "big.bmp"
    Image.new("RGB", (700, 700)).save(big)  # ~1.5 MB uncompressed
    with pytest.raises(LimitError, match=r"style image file is 1.5 MB, over the 1 MB upload limit"):
        StyleServer(stylizer, tmp_path / "t2", limits=UploadLimits(max_upload_mb=1)).stylize(
            str(images[0]), str(big)
        )
    (tmp_path / "fake.png").write_text("hello")
    roomy = StyleServer(stylizer, tmp_path / "t3")
    with pytest.raises(LimitError, match="style image is not an image file"):
        roomy.stylize(str(images[0]), str(tmp_path / "fake.png"))
    with pytest.raises(LimitError, match="add a style image"):
        roomy.stylize(str(images[0]), None)


def test_build_app_has_gallery_of_sample_styles_in_temp_dir(stylizer, tmp_path):
    app = build_app(stylizer, temp_dir=tmp_path / "app")
    try:
        assert isinstance(app, gr.Blocks)
        samples = sorted((tmp_path / "app" / "samples").glob("*.png"))
        assert len(samples) >= 3
        assert os.environ["GRADIO_TEMP_DIR"].startswith(str(tmp_path / "app"))
    finally:
        cleanup(app)
    assert not (tmp_path / "app").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium() -> str | None:
    for path in CHROMIUM_PATHS:
        if Path(path).is_file():
            return path
    return shutil.which("chromium")


@pytest.mark.browser
@pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
@pytest.mark.timeout(120)
def test_browser_upload_click_and_see_result(stylizer, images, tmp_path):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="python package 'playwright' missing"
    )
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium found (apt-get install chromium)")
    temp = tmp_path / "app"
    app = build_app(stylizer, temp_dir=temp, sample_styles=False)
    port = _free_port()
    launch(app, host="127.0.0.1", port=port, block=False, quiet=True)
    before_cwd = set(os.listdir("."))
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch_persistent_context(
                str(tmp_path / "profile"),  # a fresh user-data-dir
                executable_path=browser_path,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                page = browser.new_page()
                page.set_default_timeout(40_000)
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                page.locator("#content input[type=file]").set_input_files(str(images[0]))
                page.locator("#style input[type=file]").set_input_files(str(images[1]))
                page.locator("#content img").first.wait_for(state="visible")
                page.locator("#style img").first.wait_for(state="visible")
                page.locator("#run").click()
                result = page.locator("#result img").first
                result.wait_for(state="visible")
                page.wait_for_function(
                    "() => { const i = document.querySelector('#result img');"
                    " return i && i.complete && i.naturalWidth > 0; }"
                )
                src = result.get_attribute("src")
                natural = result.evaluate("img => [img.naturalWidth, img.naturalHeight]")
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            finally:
                browser.close()
    finally:
        cleanup(app)
    assert src, "result image has no src"
    assert natural == [80, 60]
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert set(os.listdir(".")) == before_cwd  # nothing written outside the temp folder


def test_unreadable_upload_is_named_by_role_not_by_server_temp_path(stylizer, images, tmp_path):
    """A truncated upload passes the header check; the decode error must not show the temp path."""
    data = (tmp_path / "whole.jpg").as_posix()
    noise = np.random.default_rng(3).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(data, quality=95)
    truncated = tmp_path / "upload-area" / "cut.jpg"
    truncated.parent.mkdir()
    raw = Path(data).read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    server = StyleServer(stylizer, tmp_path / "t")
    with pytest.raises(StyledistillError) as info:
        server.stylize(str(truncated), str(images[1]))
    message = str(info.value)
    assert message.startswith("content image: ") and "truncated" in message
    assert str(truncated) not in message and "\n" not in message
    with pytest.raises(StyledistillError) as info:
        server.stylize(str(images[0]), str(truncated))
    assert str(info.value).startswith("style image: ") and str(truncated) not in str(info.value)
