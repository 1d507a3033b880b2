"""`semistylegan edit` and semistylegan.editing on held-out images, for semi and semi-fine runs."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from semistylegan.cli import main
from semistylegan.data import LabeledSubset, make_dataset
from semistylegan.editing import Editor, decode_image, load_editor, parse_assignments
from semistylegan.errors import UserError

FINE_FACTORS = ["--fine-factors", "orientation,scale"]


def tiny_run(tmp_path_factory, method: str, steps: int = 2, args: tuple = ()):
    """A tiny trained run (`--preset tiny`, dSprites 16x16 unless `args` say otherwise, `steps`
    steps of 16 images), trained once per test session and shared by every test that asks for
    the same run (editing, viewer, projection, export, fine-edit metrics). A semi-fine run on
    dSprites makes orientation and scale fine."""
    args = tuple(args)
    if method == "semi-fine" and "--dataset" not in args and "--fine-factors" not in args:
        args += tuple(FINE_FACTORS)
    key = "-".join(a.lstrip("-").replace(",", "+") for a in args)
    path = tmp_path_factory.getbasetemp() / f"tiny-run-{method}-{steps}{'-' + key if key else ''}"
    if not list(path.glob("snapshot-*.pt")):
        assert main(["train", "--preset", "tiny", "--method", method, "--kimg", str(steps * 16 / 1000), "--out",
                     str(path), "--no-progress", "--metrics-samples", "100", *args]) == 0
    return path


@pytest.fixture(scope="module")
def fine_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "semi-fine")


@pytest.fixture(scope="module")
def semi_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "semi")


def heldout_images(n=4, seed=0):
    """dSprites 16x16 images outside the tiny runs' labelled subset J, with their codes."""
    ds = make_dataset("dsprites", 16)
    J = set(LabeledSubset(ds, 0.01, seed=0).indices.tolist())
    rs = np.random.RandomState(seed)
    idx = [i for i in rs.randint(len(ds), size=4 * n) if i not in J][:n]
    return ds.images(np.asarray(idx)), ds.codes(np.asarray(idx))


def write_varied(folder, images):
    """The images saved in other sizes and colour modes than the model's 16x16 grey."""
    folder.mkdir()
    g = images[:, 0]
    Image.fromarray(g[0]).convert("RGB").resize((40, 40), Image.NEAREST).save(folder / "a_rgb40.png")
    rgba = Image.fromarray(g[1]).convert("RGBA")
    rgba.putalpha(255)
    rgba.save(folder / "b_rgba.png")
    Image.fromarray(g[2]).resize((100, 60)).save(folder / "c_wide.jpg", quality=95)
    Image.fromarray(g[3]).convert("P").save(folder / "d_palette.gif")
    (folder / "notes.txt").write_text("not an image, and not an image extension: ignored")


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_edit_semi_fine_cli_on_heldout_images(fine_run, tmp_path):
    images, _ = heldout_images()
    write_varied(tmp_path / "in", images)
    out = tmp_path / "out"
    assert main(["edit", str(fine_run), "--images", str(tmp_path / "in"), "--set", "scale=0.2,orientation=1",
                 "--out", str(out)]) == 0
    report = json.loads((out / "edits.json").read_text())
    assert report["method"] == "semi-fine" and report["factors"] == ["scale", "orientation"]
    assert len(report["images"]) == 4
    for item in report["images"]:
        assert item["used"] == pytest.approx({"orientation": 1.0, "scale": 0.2})
        assert all(0.0 <= v <= 1.0 for v in item["read"].values())
    for stem in ("a_rgb40", "b_rgba", "c_wide", "d_palette"):
        img = Image.open(out / f"{stem}_edit.png")
        assert img.size == (16, 16) and img.mode == "L"
    assert (out / "grid.png").is_file()


def test_fine_edit_semantics(fine_run):
    """Semi-fine: the non-edited factors keep E_fine's reading, the coarse input is the image."""
    editor = load_editor(fine_run)
    assert editor.fine and editor.names == ["scale", "orientation"]  # dataset order
    images, _ = heldout_images(n=3, seed=1)
    edited, read, used = editor.edit(images, {"scale": 0.9})
    assert np.allclose(used[:, 0], 0.9) and np.array_equal(used[:, 1], read[:, 1])
    # deterministic, and exactly G(c_fine, z_seed, down(x))
    assert np.array_equal(edited, editor.generate(used, images))
    x = torch.from_numpy(images).float() / 127.5 - 1
    with torch.no_grad():
        direct = editor.nets["G"](torch.from_numpy(used), editor.z(3), x)
    assert np.array_equal(edited, ((direct.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())
    # the coarse content is the image: same codes on different images give different outputs
    same = np.repeat(used[:1], 3, axis=0)
    outs = editor.generate(same, images)
    assert not np.array_equal(outs[0], outs[1])
    # traversal: steps along the chosen factor, one row per image
    trav = editor.traverse(images, "scale", steps=5)
    assert trav.shape == (3, 5, 1, 16, 16)
    assert any(not np.array_equal(trav[0, 0], trav[0, j]) for j in range(1, 5))


def test_edit_semi_cli_traverse_and_set(semi_run, tmp_path, capsys):
    images, _ = heldout_images()
    write_varied(tmp_path / "in", images)
    out = tmp_path / "trav"
    assert main(["edit", str(semi_run), "--images", str(tmp_path / "in"), "--traverse", "shape", "--steps", "4",
                 "--out", str(out), "--seed", "3"]) == 0
    report = json.loads((out / "edits.json").read_text())
    assert report["method"] == "semi" and report["traverse"] == "shape"
    assert report["factors"] == ["shape", "scale", "orientation", "posX", "posY"]
    strip = Image.open(out / "a_rgb40_traverse_shape.png")
    assert strip.size == (4 * 16, 16)
    editor = load_editor(semi_run)
    edited, read, used = editor.edit(images, {"posX": 0.0, "posY": 1.0}, seed=3)
    assert np.allclose(used[:, 3:], [0.0, 1.0]) and np.array_equal(used[:, :3], read[:, :3])
    assert not np.array_equal(edited, editor.edit(images, {"posX": 1.0, "posY": 0.0}, seed=3)[0])
    # a single file works too
    assert main(["edit", str(semi_run), "--images", str(tmp_path / "in" / "b_rgba.png"), "--set", "shape=0",
                 "--out", str(tmp_path / "one")]) == 0


def test_edit_bad_input(fine_run, semi_run, tmp_path, capsys):
    images, _ = heldout_images(n=4)
    write_varied(tmp_path / "in", images)
    base = ["edit", str(fine_run), "--images", str(tmp_path / "in"), "--out", str(tmp_path / "o")]

    assert main(base + ["--set", "shape=0.5"]) == 2  # coarse factor: not editable in a fine run
    msg = _err(capsys)
    assert "unknown factor 'shape'" in msg and "scale, orientation" in msg
    assert main(base + ["--set", "scale=1.5"]) == 2
    assert "outside [0, 1]" in _err(capsys)
    assert main(base + ["--set", "scale=-0.1"]) == 2
    assert "outside [0, 1]" in _err(capsys)
    assert main(base + ["--set", "scale=abc"]) == 2
    assert "not a number" in _err(capsys)
    assert main(base + ["--traverse", "nope"]) == 2
    assert "unknown factor 'nope'" in _err(capsys)

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"this is not a png")
    assert main(["edit", str(fine_run), "--images", str(bad), "--set", "scale=0.5", "--out", str(tmp_path / "o")]) == 2
    assert "x.png: not an image" in _err(capsys)

    huge = tmp_path / "huge"
    huge.mkdir()
    Image.new("1", (7000, 7000)).save(huge / "big.png")  # 49 Mpixel, a few kB on disk
    assert main(["edit", str(fine_run), "--images", str(huge), "--set", "scale=0.5", "--out", str(tmp_path / "o")]) == 2
    assert "too large" in _err(capsys)

    assert main(["edit", str(tmp_path / "no-run"), "--images", str(tmp_path / "in"), "--set", "scale=0.5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such run directory" in _err(capsys)
    fake = tmp_path / "fake"
    fake.mkdir()
    torch.save({"weights": torch.zeros(2)}, fake / "snapshot-00000001.pt")
    assert main(["edit", str(fake), "--images", str(tmp_path / "in"), "--set", "scale=0.5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "not a semistylegan snapshot" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_wrong_kind_of_run_is_refused(semi_run):
    from semistylegan.evaluation import load_run
    from semistylegan.methods.base import Method

    run = load_run(semi_run)
    run.method = Method.__new__(Method)  # a method without encoder + generator (e.g. a VAE baseline)
    run.nets = {"model": torch.nn.Linear(1, 1)}
    with pytest.raises(UserError, match="cannot edit images"):
        Editor(run, source="x")


def test_decode_image_modes_and_limits():
    import io

    def enc(img, fmt="PNG"):
        b = io.BytesIO()
        img.save(b, format=fmt)
        return b.getvalue()

    rgb = Image.new("RGB", (30, 20), (200, 10, 10))
    a = decode_image(enc(rgb), 8, 3)
    assert a.shape == (3, 8, 8) and a.dtype == np.uint8 and tuple(a[:, 4, 4]) == (200, 10, 10)
    g = decode_image(enc(rgb), 8, 1)
    assert g.shape == (1, 8, 8)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent -> white
    assert decode_image(enc(clear), 8, 3).min() == 255
    i16 = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    d = decode_image(enc(i16), 8, 1)
    assert d.min() == 0 and d.max() == 255
    for data, msg in ((b"", "empty"), (b"GIF89a....", "not an image"), (enc(rgb)[:40], "image")):
        with pytest.raises(UserError, match=msg):
            decode_image(data, 8, 3)
    with pytest.raises(UserError, match="too large"):
        decode_image(enc(rgb), 8, 3, max_pixels=100)
    assert parse_assignments(["a=0.5,b=1", "c=0"]) == {"a": 0.5, "b": 1.0, "c": 0.0}
    with pytest.raises(UserError):
        parse_assignments("a")
