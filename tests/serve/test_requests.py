"""Viewer requests a hostile page could send: another Host (DNS rebinding), deeply nested JSON;
and the order in which queued renders get the model."""
import http.client
import json
import threading
import time

import pytest

from semistylegan.serve import FifoLock


def _request(port, method, path, body=None, host=None, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": content_type} if body is not None else {}
    if host is not None:
        conn.putrequest(method, path, skip_host=True)
        for value in ([host] if isinstance(host, str) else host):
            conn.putheader("Host", value)
        for k, v in headers.items():
            conn.putheader(k, v)
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
    else:
        conn.request(method, path, body=body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode(),
                     headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if resp.getheader("Content-Type", "").startswith("application/json") else data


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1", "127.0.0.1:{port}", "LOCALHOST:{port}"])
def test_local_host_names_are_answered(viewer, host):
    _, port, _ = viewer
    status, info = _request(port, "GET", "/api/info", host=host.format(port=port))
    assert status == 200 and "factors" in json.dumps(info)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "localhost.:{port}", "127.0.0.1:x", "", ["127.0.0.1", "evil.example"]])
@pytest.mark.parametrize("method,path", [("GET", "/api/info"), ("GET", "/"), ("POST", "/api/render")])
def test_other_hosts_are_refused(viewer, host, method, path):
    _, port, num_factors = viewer
    host = [h.format(port=port) for h in host] if isinstance(host, list) else host.format(port=port)
    body = {"codes": [0.5] * num_factors} if method == "POST" else None
    status, obj = _request(port, method, path, body, host=host)
    assert status == 403, (status, obj)
    assert "is not this viewer's address" in obj["error"] and "\n" not in obj["error"]


def test_deeply_nested_json_is_a_bad_request(viewer):
    _, port, _ = viewer
    for body in (b"[" * 8000, b"[" * 8000 + b"]" * 8000, b'{"codes": ' + b"[" * 7000 + b"]" * 7000 + b"}"):
        status, obj = _request(port, "POST", "/api/render", body)
        assert status == 400, (status, obj)
        assert "nested too deeply" in obj["error"]
    status, _ = _request(port, "GET", "/api/info")  # and the server still answers
    assert status == 200


def test_fifo_lock_serves_waiters_in_arrival_order():
    lock = FifoLock()
    order, arrived = [], []
    lock.__enter__()  # hold it while 20 threads queue up, one after the other
    threads = []
    for i in range(20):
        def work(i=i):
            with lock:
                order.append(i)
        t = threading.Thread(target=work)
        t.start()
        deadline = time.monotonic() + 5
        while lock._next_ticket != i + 2 and time.monotonic() < deadline:  # thread i has taken its ticket
            time.sleep(0.001)
        arrived.append(i)
        threads.append(t)
    lock.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == arrived == list(range(20))
