"""The local web viewer: `semistylegan serve RUN_DIR` (standard library http.server only).

One page (static/index.html + app.js) with a slider per named factor, a truncation slider, a
"new z" button, an image upload that is encoded and then edited with the sliders, and the
traversal grid. The JSON API behind it:

  GET  /api/info                      factors (names, ranges, value counts), limits, method
  POST /api/render    {codes, seed, psi, image_id?}         -> {image: data URL, ms}
  POST /api/traverse  {codes, seed, psi, image_id?, steps}  -> {image: data URL, ms}
  POST /api/upload    raw image bytes (any format/size/mode) -> {image_id, codes, original, ms}

Every value is checked (type, range, length; unknown fields refused), bodies are size-limited
before they are read, and every failure is a JSON {"error": one line} with a 4xx status; an
unexpected failure is logged on the server and reported as "internal error" (never a stack
trace on the page). It binds 127.0.0.1 by default: the viewer has no authentication. It answers
only requests whose Host is the bound address, localhost or 127.0.0.1 (DNS rebinding), and serves
many simultaneous clients: a thread per connection, a deep listen queue, and the model calls
queued first come, first served behind one lock.
"""
from __future__ import annotations

import base64
import io
import json
import math
import secrets
import sys
import threading
import time
import traceback
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np

from semistylegan.errors import UserError

__all__ = ["ViewerApp", "FifoLock", "make_server", "serve", "MAX_UPLOAD_BYTES"]

MAX_UPLOAD_BYTES = 8 * 1024 * 1024   # raw upload limit (the request is refused before reading)
MAX_JSON_BYTES = 16 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
MAX_STEPS = 12
MAX_SEED = 2**31 - 1
MAX_STORED_IMAGES = 64
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}


class BadRequest(Exception):
    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = int(status)


def _png_data_url(img: np.ndarray, scale: int = 1) -> str:
    """uint8 (C, H, W) or (H, W, C) grid -> data:image/png;base64."""
    from PIL import Image

    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[2] not in (1, 3):
        img = img.transpose(1, 2, 0)
    pil = Image.fromarray(img[:, :, 0], mode="L") if img.shape[2] == 1 else Image.fromarray(img, mode="RGB")
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class FifoLock:
    """A lock that hands itself to its waiters in the order they asked (threading.Lock does not
    promise any order), so renders queued behind the one model answer first come, first served."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self):
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._cond.wait_for(lambda: self._serving == ticket)
        return self

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class ViewerApp:
    """The viewer's state and request logic, independent of HTTP (an Editor plus stored uploads)."""

    def __init__(self, editor, max_upload_bytes: int = MAX_UPLOAD_BYTES, project_steps: int = 0):
        self.editor = editor
        self.max_upload_bytes = int(max_upload_bytes)
        # > 0: uploads are projected (codes and noise fitted, semistylegan.projection) and their
        # renders keep the fitted noise instead of the seed's z
        self.project_steps = int(project_steps)
        self.fitted_noise: dict[str, np.ndarray] = {}
        self.lock = FifoLock()                # one model call at a time, in arrival order
        self.images_lock = threading.Lock()   # the stored uploads (never held during a model call)
        self.images: OrderedDict[str, np.ndarray] = OrderedDict()
        self.num_factors = len(editor.names)

    # validation -------------------------------------------------------------------------
    @staticmethod
    def _number(body: dict, key: str, low: float, high: float, default=None) -> float:
        v = body.get(key, default)
        if v is None:
            raise BadRequest(f"'{key}' is required")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BadRequest(f"'{key}' must be a number")
        if not (low <= v <= high):
            raise BadRequest(f"'{key}' must be in [{low:g}, {high:g}], got {v:g}")
        return float(v)

    @staticmethod
    def _integer(body: dict, key: str, low: int, high: int, default=None) -> int:
        v = body.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise BadRequest(f"'{key}' must be an integer")
        if not (low <= v <= high):
            raise BadRequest(f"'{key}' must be in [{low}, {high}], got {v}")
        return int(v)

    def _codes(self, body: dict) -> np.ndarray:
        codes = body.get("codes")
        if not isinstance(codes, list) or len(codes) != self.num_factors:
            raise BadRequest(f"'codes' must be a list of {self.num_factors} numbers "
                             f"(factors: {', '.join(self.editor.names)})")
        out = []
        for name, v in zip(self.editor.names, codes):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BadRequest(f"factor '{name}': value must be a number")
            if not (0.0 <= v <= 1.0):
                raise BadRequest(f"factor '{name}': value {v:g} is outside [0, 1]")
            out.append(float(v))
        return np.asarray([out], dtype=np.float32)

    def _image(self, body: dict) -> np.ndarray | None:
        image_id = body.get("image_id")
        if image_id is None:
            return None
        if not isinstance(image_id, str) or len(image_id) > 64:
            raise BadRequest("'image_id' must be a string")
        with self.images_lock:
            img = self.images.get(image_id)
        if img is None:
            raise BadRequest("unknown image (it may have expired): upload it again", HTTPStatus.NOT_FOUND)
        return img

    @staticmethod
    def _check_fields(body, allowed: set[str]):
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        unknown = set(body) - allowed
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")

    # endpoints --------------------------------------------------------------------------
    def info(self) -> dict:
        return {**self.editor.describe(), "limits": {"max_upload_bytes": self.max_upload_bytes,
                                                     "max_upload_pixels": MAX_UPLOAD_PIXELS, "max_steps": MAX_STEPS,
                                                     "max_seed": MAX_SEED}}

    def _scale(self) -> int:
        return max(1, 128 // self.editor.resolution)

    def render(self, body) -> dict:
        self._check_fields(body, {"codes", "seed", "psi", "image_id"})
        codes = self._codes(body)
        seed = self._integer(body, "seed", 0, MAX_SEED, 0)
        psi = self._number(body, "psi", 0.0, 1.0, 1.0)
        image = self._image(body)
        t0 = time.perf_counter()
        with self.lock:
            out = self.editor.generate(codes, None if image is None else image[None], seed=seed, truncation_psi=psi,
                                       noise=self.fitted_noise.get(body.get("image_id")))
        ms = (time.perf_counter() - t0) * 1000
        return {"image": _png_data_url(out[0], self._scale()), "ms": round(ms, 2)}

    def traverse(self, body) -> dict:
        from semistylegan.viz import image_grid

        self._check_fields(body, {"codes", "seed", "psi", "image_id", "steps"})
        codes = self._codes(body)[0]
        seed = self._integer(body, "seed", 0, MAX_SEED, 0)
        psi = self._number(body, "psi", 0.0, 1.0, 1.0)
        steps = self._integer(body, "steps", 2, MAX_STEPS, 8)
        image = self._image(body)
        f = self.num_factors
        grid = np.repeat(codes[None, None, :], f * steps, axis=0).reshape(f, steps, f).copy()
        for i in range(f):
            grid[i, :, i] = np.linspace(0.0, 1.0, steps, dtype=np.float32)
        t0 = time.perf_counter()
        with self.lock:
            imgs = self.editor.generate(grid.reshape(f * steps, f), None if image is None else image[None],
                                        seed=seed, truncation_psi=psi,
                                        noise=self.fitted_noise.get(body.get("image_id")))
        ms = (time.perf_counter() - t0) * 1000
        return {"image": _png_data_url(image_grid(imgs, f, steps), max(1, 64 // self.editor.resolution)),
                "rows": list(self.editor.names), "steps": steps, "ms": round(ms, 2)}

    def upload(self, data: bytes) -> dict:
        from semistylegan.editing import decode_image

        if len(data) > self.max_upload_bytes:
            raise BadRequest(f"upload too large ({len(data)} bytes; at most {self.max_upload_bytes})",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            img = decode_image(data, self.editor.resolution, self.editor.channels, name="upload",
                               max_pixels=MAX_UPLOAD_PIXELS)
        except UserError as e:
            raise BadRequest(str(e), HTTPStatus.UNSUPPORTED_MEDIA_TYPE) from None
        t0 = time.perf_counter()
        with self.lock:
            image_id = secrets.token_hex(8)
            if self.project_steps > 0:
                fit = self.editor.project(img[None], self.project_steps)
                codes = fit.codes[0]
            else:
                codes = self.editor.encode(img[None])[0]
        with self.images_lock:
            if self.project_steps > 0:
                self.fitted_noise[image_id] = fit.noise
            self.images[image_id] = img
            while len(self.images) > MAX_STORED_IMAGES:
                self.fitted_noise.pop(self.images.popitem(last=False)[0], None)
        ms = (time.perf_counter() - t0) * 1000
        return {"image_id": image_id, "codes": [round(float(v), 4) for v in codes],
                "original": _png_data_url(img, self._scale()), "ms": round(ms, 2)}


class _Handler(BaseHTTPRequestHandler):
    server_version = "semistylegan-viewer"
    timeout = 30  # seconds a client may take to send a request
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> ViewerApp:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if getattr(self.server, "verbose", False):
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    # responses --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, close: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict, close: bool = False):
        self._send(status, json.dumps(obj).encode(), "application/json", close)

    def _error(self, status: int, message: str, close: bool = False):
        self._json(status, {"error": message}, close)

    def _host_allowed(self) -> bool:
        """DNS rebinding defence: a page of another site that resolves its own name to this
        machine sends its name as Host. Answer only Host = the bound address, localhost or
        127.0.0.1 (with or without a port); a server bound to all interfaces (0.0.0.0, ::)
        answers any Host, as its user chose to be reachable under other names."""
        bound = self.server.server_address[0]
        if bound in ("0.0.0.0", "::", ""):
            return True
        host = self.headers.get("Host")
        if host is None or len(self.headers.get_all("Host") or ()) != 1:
            return False
        host = host.strip().lower()
        if host.startswith("["):  # [::1]:8000
            name, _, rest = host[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else rest
        else:
            name, _, port = host.partition(":")
        if port and not port.isdigit():
            return False
        return name in {"localhost", "127.0.0.1", str(bound).lower()}

    def _refuse_host(self) -> bool:
        if self._host_allowed():
            return False
        self._error(403, f"Host '{(self.headers.get('Host') or '')[:80]}' is not this viewer's address "
                    "(use http://127.0.0.1:PORT/ or http://localhost:PORT/)", close=True)
        return True

    # GET --------------------------------------------------------------------------------
    def do_GET(self):
        if self._refuse_host():
            return None
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                return self._static("index.html")
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/api/info":
                return self._json(200, self.app.info())
            return self._error(404, f"not found: {path[:80]}")
        except Exception:  # never a stack trace to the client
            traceback.print_exc(file=sys.stderr)
            return self._error(500, "internal error (see the server log)")

    def _static(self, name: str):
        if name not in STATIC_FILES:
            return self._error(404, "not found")
        data = resources.files("semistylegan.serve").joinpath("static", name).read_bytes()
        self._send(200, data, STATIC_FILES[name])

    # POST -------------------------------------------------------------------------------
    def do_POST(self):
        path = self.path.split("?", 1)[0]
        routes = {"/api/render": "json", "/api/traverse": "json", "/api/upload": "raw"}
        if path not in routes:
            return self._error(404, f"not found: {path[:80]}", close=True)
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            return self._error(411, "a Content-Length header is required", close=True)
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            return self._error(400, "bad Content-Length", close=True)
        limit = MAX_JSON_BYTES if routes[path] == "json" else self.app.max_upload_bytes
        if n > limit:
            # Refused without reading the body; the connection is closed.
            what = "upload" if routes[path] == "raw" else "request"
            return self._error(413, f"{what} too large ({n} bytes; at most {limit})", close=True)
        if self._refuse_host():  # before the body is read (framing errors above are answered first)
            return None
        try:
            data = self.rfile.read(n)
        except OSError:
            self.close_connection = True
            return None
        if len(data) != n:
            return self._error(400, "incomplete request body", close=True)
        try:
            if routes[path] == "raw":
                if n == 0:
                    raise BadRequest("empty upload: choose an image file")
                return self._json(200, self.app.upload(data))
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise BadRequest("Content-Type must be application/json", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            try:
                body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
            except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
                raise BadRequest(f"the request body is not valid JSON ({str(e)[:80]})") from None
            except RecursionError:  # e.g. thousands of '[': the decoder gives up, the request is bad
                raise BadRequest("the request body is nested too deeply") from None
            handler = self.app.render if path == "/api/render" else self.app.traverse
            return self._json(200, handler(body))
        except BadRequest as e:
            return self._error(e.status, str(e))
        except UserError as e:
            return self._error(400, str(e))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self._error(500, "internal error (see the server log)")


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: connections the kernel holds until the accept loop takes them. The
    # default of 5 reset most of 50 simultaneous requests; a thread per connection then waits
    # its turn at the model lock.
    request_queue_size = 256


def make_server(editor, host: str = "127.0.0.1", port: int = 8000, max_upload_bytes: int = MAX_UPLOAD_BYTES,
                verbose: bool = False, project_steps: int = 0) -> ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: any free port; see server.server_address)."""
    try:
        server = _Server((host, port), _Handler)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    server.app = ViewerApp(editor, max_upload_bytes, project_steps)  # type: ignore[attr-defined]
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def serve(run_dir, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          max_upload_bytes: int = MAX_UPLOAD_BYTES, verbose: bool = False, project_steps: int = 0):
    from semistylegan.editing import load_editor

    editor = load_editor(run_dir, device=device)
    server = make_server(editor, host, port, max_upload_bytes, verbose, project_steps)
    h, p = server.server_address[:2]
    print(f"serving {editor.run.cfg.method} model of {run_dir} at http://{h}:{p}/  (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the viewer has no authentication; anyone who can reach this address can use it",
              file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
