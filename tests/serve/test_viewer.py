"""The web viewer: HTTP validation on 127.0.0.1 (port 0), latency of a 64x64 model, and a real
browser (Debian's chromium driven by Playwright) moving a slider.

The browser test is skipped only when playwright or chromium is missing; with
SEMISTYLEGAN_REQUIRE_BROWSER=1 (CI) a missing browser is a failure instead.
"""
import base64
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from semistylegan.editing import Editor, load_editor
from semistylegan.serve import make_server

from test_editing import heldout_images, tiny_run  # noqa: E402  (tests/ is on sys.path under pytest)

CHROMIUM = os.environ.get("SEMISTYLEGAN_CHROMIUM", "/usr/bin/chromium")


class Running:
    """A server in a background thread; .request() returns (status, parsed JSON, headers)."""

    def __init__(self, editor, **kw):
        self.server = make_server(editor, "127.0.0.1", 0, **kw)
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, (json.loads(data) if ctype.startswith("application/json") else data), resp

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _png(img: Image.Image) -> bytes:
    b = io.BytesIO()
    img.save(b, format="PNG")
    return b.getvalue()


def _decode(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


@pytest.fixture(scope="module")
def fine_server(tmp_path_factory):
    editor = load_editor(tiny_run(tmp_path_factory, "semi-fine"))
    srv = Running(editor, max_upload_bytes=200_000)
    yield srv
    srv.close()


def _bad(srv, method, path, body=None, status=400, match="", headers=None):
    got, obj, _ = srv.request(method, path, body, headers)
    assert got == status, (got, obj)
    assert isinstance(obj, dict) and isinstance(obj.get("error"), str), obj
    assert "\n" not in obj["error"] and "Traceback" not in obj["error"]
    assert match in obj["error"], obj["error"]
    return obj["error"]


def test_binds_localhost_by_default(tmp_path_factory):
    editor = load_editor(tiny_run(tmp_path_factory, "semi-fine"))
    server = make_server(editor, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_info_render_upload_traverse(fine_server):
    srv = fine_server
    status, page, _ = srv.request("GET", "/")
    assert status == 200 and b"<script src=\"/static/app.js\">" in page
    for name in ("app.js", "style.css"):
        assert srv.request("GET", f"/static/{name}")[0] == 200
    status, info, _ = srv.request("GET", "/api/info")
    assert status == 200 and [f["name"] for f in info["factors"]] == ["scale", "orientation"]
    assert info["needs_image"] is True and info["limits"]["max_upload_bytes"] == 200_000

    status, out, _ = srv.request("POST", "/api/render", {"codes": [0.2, 0.8], "seed": 5, "psi": 0.5})
    assert status == 200 and _decode(out["image"]).size == (128, 128) and out["ms"] >= 0
    status, out2, _ = srv.request("POST", "/api/render", {"codes": [0.2, 0.8], "seed": 5, "psi": 0.5})
    assert out2["image"] == out["image"]  # deterministic
    status, out3, _ = srv.request("POST", "/api/render", {"codes": [0.9, 0.1], "seed": 5, "psi": 0.5})
    assert out3["image"] != out["image"]

    images, _ = heldout_images(n=1, seed=4)
    upload = _png(Image.fromarray(images[0, 0]).convert("RGB").resize((48, 36)))
    status, up, _ = srv.request("POST", "/api/upload", upload, {"Content-Type": "image/png"})
    assert status == 200, up
    assert len(up["codes"]) == 2 and all(0 <= v <= 1 for v in up["codes"])
    assert _decode(up["original"]).size == (128, 128)
    body = {"codes": up["codes"], "seed": 0, "psi": 1.0, "image_id": up["image_id"]}
    status, edited, _ = srv.request("POST", "/api/render", body)
    assert status == 200 and edited["image"] != out["image"]
    status, trav, _ = srv.request("POST", "/api/traverse", {**body, "steps": 5})
    assert status == 200 and trav["rows"] == ["scale", "orientation"] and trav["steps"] == 5
    w, h = _decode(trav["image"]).size
    assert (w, h) == (4 * (5 * 17 + 1), 4 * (2 * 17 + 1))  # 5 x 2 cells of 16 px, 1 px borders, x4


def test_validation(fine_server):
    srv = fine_server
    good = {"codes": [0.5, 0.5], "seed": 1, "psi": 1.0}
    _bad(srv, "POST", "/api/render", {**good, "codes": [0.5]}, match="list of 2 numbers")
    _bad(srv, "POST", "/api/render", {**good, "codes": [0.5, 1.5]}, match="'orientation': value 1.5 is outside [0, 1]")
    _bad(srv, "POST", "/api/render", {**good, "codes": [-0.01, 0.5]}, match="outside [0, 1]")
    _bad(srv, "POST", "/api/render", {**good, "codes": ["0.5", 0.5]}, match="must be a number")
    _bad(srv, "POST", "/api/render", {**good, "codes": [True, 0.5]}, match="must be a number")
    _bad(srv, "POST", "/api/render", {**good, "codes": "0.5,0.5"}, match="list of 2")
    _bad(srv, "POST", "/api/render", {**good, "seed": -1}, match="'seed' must be in")
    _bad(srv, "POST", "/api/render", {**good, "seed": 1.5}, match="'seed' must be an integer")
    _bad(srv, "POST", "/api/render", {**good, "seed": 2**40}, match="'seed' must be in")
    _bad(srv, "POST", "/api/render", {**good, "psi": 1.5}, match="'psi' must be in [0, 1]")
    _bad(srv, "POST", "/api/render", {**good, "psi": "x"}, match="'psi' must be a number")
    _bad(srv, "POST", "/api/render", {**good, "extra": 1}, match="unknown field(s): extra")
    _bad(srv, "POST", "/api/render", [1, 2], match="JSON object")
    _bad(srv, "POST", "/api/render", b'{"codes": [NaN, 0.5]}', headers={"Content-Type": "application/json"},
         match="not valid JSON")
    _bad(srv, "POST", "/api/render", b"{nope", headers={"Content-Type": "application/json"}, match="not valid JSON")
    _bad(srv, "POST", "/api/render", json.dumps(good).encode(), headers={"Content-Type": "text/plain"}, status=415,
         match="application/json")
    _bad(srv, "POST", "/api/render", {**good, "image_id": "deadbeef"}, status=404, match="upload it again")
    _bad(srv, "POST", "/api/render", {**good, "image_id": 7}, match="'image_id' must be a string")
    _bad(srv, "POST", "/api/traverse", {**good, "steps": 1}, match="'steps' must be in [2, 12]")
    _bad(srv, "POST", "/api/traverse", {**good, "steps": 13}, match="'steps' must be in [2, 12]")
    _bad(srv, "POST", "/api/render", b"x" * 20000, headers={"Content-Type": "application/json"}, status=413,
         match="too large")
    _bad(srv, "GET", "/api/nothing", status=404)
    _bad(srv, "GET", "/static/../__init__.py", status=404)
    _bad(srv, "POST", "/api/other", good, status=404)
    # uploads: not an image, empty, too many bytes (refused before reading), too many pixels
    _bad(srv, "POST", "/api/upload", b"hello, not an image", status=415, match="not an image")
    _bad(srv, "POST", "/api/upload", b"", match="empty upload")
    _bad(srv, "POST", "/api/upload", b"\x89PNG" + b"0" * 300_000, status=413, match="upload too large")
    _bad(srv, "POST", "/api/upload", _png(Image.new("1", (5000, 5000))), status=415, match="too large")
    # no Content-Length: 411, answered without waiting for a body
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"POST /api/render HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):  # the server closes the connection after answering
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 411") and "Content-Length header is required" in reply
    # still serving after all of that
    assert srv.request("POST", "/api/render", good)[0] == 200


def _editor_64x64():
    """An (untrained) semi-fine model of the shapes3d-cpu64 preset: the latency of a 64x64 model."""
    from semistylegan.config import make_config
    from semistylegan.evaluation import LoadedRun
    from semistylegan.methods import build_method

    info = {"name": "shapes3d", "resolution": 64, "channels": 3, "num_images": 480000,
            "factors": {"names": ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"],
                        "sizes": [10, 10, 10, 8, 4, 15]}}
    cfg = make_config("shapes3d-cpu64", method="semi-fine")
    method = build_method(cfg, info)
    torch.manual_seed(0)
    nets = {k: v.eval().requires_grad_(False) for k, v in method.build_networks().items()}
    method.set_reference_images(torch.rand(1, 3, 64, 64) * 2 - 1)
    return Editor(LoadedRun(cfg, method, nets, info, None, 0.0, torch.device("cpu")))


def test_latency_64x64_under_200ms():
    editor = _editor_64x64()
    srv = Running(editor)
    try:
        rgb = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype(np.uint8)
        status, up, _ = srv.request("POST", "/api/upload", _png(Image.fromarray(rgb)))
        assert status == 200
        times, model_ms = [], []
        for i in range(12):
            body = {"codes": [i / 11, 0.5, 1 - i / 11], "seed": i, "psi": 0.8, "image_id": up["image_id"]}
            t0 = time.perf_counter()
            status, out, _ = srv.request("POST", "/api/render", body)
            times.append((time.perf_counter() - t0) * 1000)
            model_ms.append(out["ms"])
            assert status == 200 and _decode(out["image"]).size == (128, 128)
        median = statistics.median(times[2:])
        print(f"64x64 render round trip: median {median:.1f} ms, model {statistics.median(model_ms[2:]):.1f} ms")
        assert median < 200, times
    finally:
        srv.close()


def _browser_available() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def test_browser_slider_changes_image(fine_server, tmp_path):
    reason = _browser_available()
    if reason:
        if os.environ.get("SEMISTYLEGAN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    url = f"http://{fine_server.host}:{fine_server.port}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            console_errors = []
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.getElementById('output').dataset.renders === '1'", timeout=20000)
            assert page.locator("#sliders input[type=range]").count() == 2
            assert page.locator("#sliders label").all_inner_texts() == ["scale", "orientation"]
            before = page.get_attribute("#output", "src")

            # move the first slider to its maximum with the keyboard, as a user would
            slider = page.locator("#factor-0")
            slider.focus()
            page.keyboard.press("End")
            assert page.input_value("#factor-0") == "1"
            page.wait_for_function(f"document.getElementById('output').getAttribute('src') !== {json.dumps(before)}",
                                   timeout=20000)
            assert page.locator("#factor-0-value").inner_text() == "1.00"
            after = page.get_attribute("#output", "src")
            assert after != before and after.startswith("data:image/png;base64,")

            # new z changes the image too
            page.click("#new-z")
            page.wait_for_function(f"document.getElementById('output').getAttribute('src') !== {json.dumps(after)}",
                                   timeout=20000)

            # upload a real image: sliders jump to its codes, the original is shown
            images, _ = heldout_images(n=1, seed=5)
            good = tmp_path / "photo.png"
            Image.fromarray(images[0, 0]).convert("RGB").resize((50, 50)).save(good)
            page.set_input_files("#upload", str(good))
            page.wait_for_selector("#original-fig:not([hidden])", timeout=20000)
            assert page.get_attribute("#original", "src").startswith("data:image/png")

            # a file that is not an image: a message on the page, no stack trace
            bad = tmp_path / "notes.png"
            bad.write_bytes(b"definitely not a png")
            page.set_input_files("#upload", str(bad))
            page.wait_for_selector("#error:not([hidden])", timeout=20000)
            msg = page.inner_text("#error")
            assert "not an image" in msg and "Traceback" not in msg

            # the traversal grid
            page.click("#traverse")
            page.wait_for_selector("#traversal:not([hidden])", timeout=20000)
            assert page.get_attribute("#traversal", "src").startswith("data:image/png")
            assert not console_errors, console_errors
        finally:
            browser.close()
