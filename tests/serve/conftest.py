"""The viewer fixture of tests/serve: a server on 127.0.0.1 (any free port) for a tiny untrained model."""
import importlib.util
import threading
from pathlib import Path

import pytest

from semistylegan.editing import load_editor
from semistylegan.serve import make_server

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "bench" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    bench = _bench()
    editor = load_editor(bench.make_untrained_run(tmp_path_factory.mktemp("load") / "run"))
    server = make_server(editor, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield bench, server.server_address[1], len(editor.names)
    server.shutdown()
    server.server_close()
