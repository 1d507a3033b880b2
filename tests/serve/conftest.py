"""The viewer fixture of tests/serve: a server on 127.0.0.1 (any free port) for a tiny untrained model."""
import threading

import pytest

from bench_modules import load_bench
from semistylegan.editing import load_editor
from semistylegan.serve import make_server



def _bench():
    return load_bench("serve_load")


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
