"""`semistylegan export`: torch.export programs, ONNX, safetensors and the loaders all reproduce
the trained networks; a folder holding another model is refused unless --force."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from semistylegan.cli import main
from semistylegan.editing import load_editor
from semistylegan.errors import UserError
from test_editing import FINE_FACTORS, tiny_run  # noqa: E402  (tests/ is on sys.path under pytest)


def _tiny_run(tmp_path_factory, method):
    """The shared tiny runs; the semi-fine one also takes the coarse skip and the constant input."""
    return tiny_run(tmp_path_factory, method, args=(*FINE_FACTORS, "--coarse-skip", "--input-const")
                    if method == "semi-fine" else ())


def _inputs(editor, n=5, seed=0):
    rs = np.random.RandomState(seed)
    codes = rs.rand(n, len(editor.names)).astype(np.float32)
    z = rs.randn(n, editor.z_dim).astype(np.float32)
    image = (rs.rand(n, editor.channels, editor.resolution, editor.resolution) * 2 - 1).astype(np.float32)
    return codes, z, image


def _reference(editor, codes, z, image, psi):
    """What the trained networks themselves give (the method's generate and E's reading)."""
    m, nets = editor.method, editor.nets
    c, zz, x = torch.from_numpy(codes), torch.from_numpy(z), torch.from_numpy(image)
    with torch.no_grad():
        if editor.fine:
            return m.generate(nets, c, zz, psi, coarse=x).numpy(), m.encode_fine(nets, x).numpy()
        return m.generate(nets, c, zz, psi).numpy(), m.encode(nets, x).numpy()


# The loaders in a fresh interpreter where the package's networks, data and training code and its
# other dependencies cannot be imported: only torch, safetensors and semistylegan.export remain.
LOADERS_ONLY = textwrap.dedent("""
    import sys
    for name in ("scipy", "sklearn", "h5py", "matplotlib", "PIL", "tqdm", "tensorboard", "onnx", "onnxscript",
                 "onnxruntime", "semistylegan.nets", "semistylegan.methods", "semistylegan.data",
                 "semistylegan.editing", "semistylegan.evaluation", "semistylegan.metrics", "semistylegan.config",
                 "semistylegan.train"):
        sys.modules[name] = None  # importing any of them raises ImportError
    import numpy as np, torch
    import semistylegan
    d = sys.argv[1]
    data = np.load(d + "/inputs.npz")
    g = semistylegan.load_generator(d + "/export")
    e = semistylegan.load_encoder(d + "/export")
    extra = [torch.from_numpy(data["image"])] if g.needs_image else []
    with torch.no_grad():
        out = g(torch.from_numpy(data["codes"]), torch.from_numpy(data["z"]), 0.7, *extra)
        codes = e(torch.from_numpy(data["image"]))
    np.savez(d + "/outputs.npz", images=out.numpy(), codes=codes.numpy(), factors=np.array(g.factors))
""")


@pytest.mark.parametrize("method", ["semi", "semi-fine"])
def test_every_export_format_matches_the_trained_networks(method, tmp_path_factory, tmp_path, capsys):
    import onnxruntime as ort

    run = _tiny_run(tmp_path_factory, method)
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "export: ONNX: generator" in capsys.readouterr().err  # progress lines on stderr
    model = json.loads((out / "model.json").read_text())
    editor = load_editor(run)
    assert model["method"] == method and model["resolution"] == 16 and model["channels"] == 1
    assert [f["name"] for f in model["factors"]] == editor.names
    scale = next(f for f in model["factors"] if f["name"] == "scale")
    assert scale["values"] == 6 and scale["codes"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert scale["factor_values"] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])

    # a batch (5) other than the one exported with (2), truncation 0.7
    codes, z, image = _inputs(editor)
    ref_images, ref_codes = _reference(editor, codes, z, image, 0.7)
    # psi is a real input of every format, not a constant: psi = 1 gives other images
    assert np.abs(_reference(editor, codes, z, image, 1.0)[0] - ref_images).max() > 1e-3

    # ONNX in onnxruntime
    feed = {"codes": codes, "z": z, "psi": np.array(0.7, dtype=np.float32)}
    if method == "semi-fine":
        feed["image"] = image
    onnx_images = ort.InferenceSession(str(out / "generator.onnx")).run(["images"], feed)[0]
    onnx_codes = ort.InferenceSession(str(out / "encoder.onnx")).run(["codes"], {"image": image})[0]
    np.testing.assert_allclose(onnx_images, ref_images, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_codes, ref_codes, atol=1e-4, rtol=0)

    # torch.export programs, loaded with torch alone
    g = torch.export.load(str(out / "generator.pt2")).module()
    e = torch.export.load(str(out / "encoder.pt2")).module()
    args = [torch.from_numpy(codes), torch.from_numpy(z), torch.tensor(0.7)]
    if method == "semi-fine":
        args.append(torch.from_numpy(image))
    with torch.no_grad():
        np.testing.assert_allclose(g(*args).numpy(), ref_images, atol=1e-5, rtol=0)
        np.testing.assert_allclose(e(torch.from_numpy(image)).numpy(), ref_codes, atol=1e-5, rtol=0)

    # semistylegan.load_generator / load_encoder without the package's networks
    np.savez(tmp_path / "inputs.npz", codes=codes, z=z, image=image)
    proc = subprocess.run([sys.executable, "-c", LOADERS_ONLY, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = np.load(tmp_path / "outputs.npz")
    np.testing.assert_allclose(loaded["images"], ref_images, atol=1e-5, rtol=0)
    np.testing.assert_allclose(loaded["codes"], ref_codes, atol=1e-5, rtol=0)
    assert list(loaded["factors"]) == editor.names


def test_loader_takes_the_weights_from_safetensors(tmp_path_factory, tmp_path):
    from safetensors.torch import load_file, save_file

    import semistylegan

    run = _tiny_run(tmp_path_factory, "semi")
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out), "--no-onnx", "--quiet"]) == 0
    assert not (out / "generator.onnx").exists()
    codes, z, _ = _inputs(load_editor(run), n=3)
    c, zz = torch.from_numpy(codes), torch.from_numpy(z)
    with torch.no_grad():
        before, before_half = semistylegan.load_generator(out)(c, zz), semistylegan.load_generator(out)(c, zz, 0.5)
        state = load_file(str(out / "generator.safetensors"))
        state["mapping.w_avg"] = state["mapping.w_avg"] + 1.0  # only matters with truncation
        save_file(state, str(out / "generator.safetensors"))
        after = semistylegan.load_generator(out)
        torch.testing.assert_close(after(c, zz), before, atol=1e-5, rtol=0)  # psi = 1: w_avg cancels out
        assert (after(c, zz, 0.5) - before_half).abs().max() > 1e-3
        state.pop("mapping.w_avg")
        save_file(state, str(out / "generator.safetensors"))
    with pytest.raises(UserError, match="does not fit generator.pt2"):
        semistylegan.load_generator(out)


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_export_folder_of_another_model_is_refused_without_force(tmp_path_factory, tmp_path, capsys):
    semi, fine = _tiny_run(tmp_path_factory, "semi"), _tiny_run(tmp_path_factory, "semi-fine")
    out = tmp_path / "export"
    assert main(["export", str(semi), "--out", str(out), "--no-onnx", "--quiet"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["export", str(fine), "--out", str(out), "--no-onnx", "--quiet"]) == 2
    err = _one_line(capsys)
    assert "already holds another model's export" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    # the same model again is fine (re-export), and --force replaces another model
    assert main(["export", str(semi), "--out", str(out), "--no-onnx", "--quiet"]) == 0
    assert main(["export", str(fine), "--out", str(out), "--no-onnx", "--quiet", "--force"]) == 0
    assert json.loads((out / "model.json").read_text())["method"] == "semi-fine"
    # a file in the way, a missing run: one line, exit 2
    (tmp_path / "afile").write_text("x")
    assert main(["export", str(semi), "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    assert "is not a folder" in _one_line(capsys)
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no such run directory" in _one_line(capsys)
    assert not (tmp_path / "o").exists()
