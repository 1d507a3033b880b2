"""`semistylegan export`: safetensors + TorchScript + JSON, and the round trip without the package."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from semistylegan.cli import main
from semistylegan.editing import load_editor

from test_edit import heldout_images, tiny_run  # noqa: E402  (tests/ is on sys.path under pytest)

# Runs in a fresh interpreter where importing semistylegan fails: only torch + numpy.
STANDALONE = textwrap.dedent("""
    import sys
    sys.modules["semistylegan"] = None  # any import of the package would raise ImportError
    import numpy as np, torch
    d = sys.argv[1]
    data = np.load(d + "/inputs.npz")
    g = torch.jit.load(d + "/export/generator.pt")
    e = torch.jit.load(d + "/export/encoder.pt")
    args = [torch.from_numpy(data["codes"]), torch.from_numpy(data["z"]), torch.tensor(float(data["psi"]))]
    if "image" in data.files:
        args.append(torch.from_numpy(data["image"]))
    with torch.no_grad():
        out = g(*args)
        enc = e(torch.from_numpy(data["image_for_encoder"]))
    np.savez(d + "/outputs.npz", images=out.numpy(), codes=enc.numpy())
    print("ok", tuple(out.shape))
""")


@pytest.mark.parametrize("method", ["semi-fine", "semi"])
def test_export_round_trip(method, tmp_path_factory, tmp_path):
    run = tiny_run(tmp_path_factory, method)
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out)]) == 0
    model = json.loads((out / "model.json").read_text())
    editor = load_editor(run)
    assert model["method"] == method and model["resolution"] == 16 and model["channels"] == 1
    assert [f["name"] for f in model["factors"]] == editor.names
    assert all(f["min"] == 0.0 and f["max"] == 1.0 for f in model["factors"])
    assert model["needs_image"] == (method == "semi-fine")

    # inputs with a batch size (5) other than the one traced (2), truncation 0.7
    n, f = 5, len(editor.names)
    rs = np.random.RandomState(0)
    codes = rs.rand(n, f).astype(np.float32)
    z = rs.randn(n, editor.z_dim).astype(np.float32)
    images, _ = heldout_images(n=n, seed=2)
    x = torch.from_numpy(images).float() / 127.5 - 1
    feed = {"codes": codes, "z": z, "psi": np.float32(0.7), "image_for_encoder": x.numpy()}
    if method == "semi-fine":
        feed["image"] = x.numpy()
    np.savez(tmp_path / "inputs.npz", **feed)
    proc = subprocess.run([sys.executable, "-c", STANDALONE, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = np.load(tmp_path / "outputs.npz")

    m, nets = editor.method, editor.nets
    with torch.no_grad():
        c, zz = torch.from_numpy(codes), torch.from_numpy(z)
        if method == "semi-fine":
            ref = m.generate(nets, c, zz, 0.7, coarse=x)
            ref_codes = m.encode_fine(nets, x)
        else:
            ref = m.generate(nets, c, zz, 0.7)
            ref_codes = m.encode(nets, x)
    assert exported["images"].shape == (n, 1, 16, 16)
    np.testing.assert_allclose(exported["images"], ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(exported["codes"], ref_codes.numpy(), atol=1e-5)
    # psi matters (the truncation is a real input of the traced module, not a constant)
    with torch.no_grad():
        ref1 = m.generate(nets, c, zz, 1.0, coarse=x) if method == "semi-fine" else m.generate(nets, c, zz, 1.0)
    assert np.abs(ref1.numpy() - exported["images"]).max() > 1e-4

    # the safetensors weights rebuild the same generator
    state = load_file(str(out / "generator.safetensors"))
    fresh = m.build_networks()["G"].eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        again = fresh(c, zz, x, truncation_psi=0.7) if method == "semi-fine" else fresh(c, zz, truncation_psi=0.7)
    np.testing.assert_allclose(again.numpy(), ref.numpy(), atol=1e-6)


def test_export_bad_input(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such run directory" in err and "\n" not in err
    (tmp_path / "notarun").mkdir()
    assert main(["export", str(tmp_path / "notarun"), "--out", str(tmp_path / "o")]) == 2
    assert "not a semistylegan run directory" in capsys.readouterr().err
