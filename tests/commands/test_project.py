"""`semistylegan project`, semistylegan.projection and `edit --project` on tiny dSprites models."""
import json

import numpy as np
import pytest
from PIL import Image

from semistylegan import projection
from semistylegan.cli import main
from semistylegan.data import LabeledSubset, make_dataset
from semistylegan.editing import load_editor
from semistylegan.errors import UserError
from semistylegan.projection import load_latents, reconstruction_error, render_images
from test_editing import tiny_run  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def semi_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "semi", steps=100)


@pytest.fixture(scope="module")
def fine_run(tmp_path_factory):
    return tiny_run(tmp_path_factory, "semi-fine", steps=20)


def heldout_images(n=4, seed=0):
    """dSprites 16x16 images outside the runs' labelled subset J."""
    ds = make_dataset("dsprites", 16)
    labeled = set(LabeledSubset(ds, 0.01, seed=0).indices.tolist())
    idx = [i for i in np.random.RandomState(seed).randint(len(ds), size=4 * n) if i not in labeled][:n]
    return ds.images(np.asarray(idx))


def write_pngs(folder, images, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"img{i}" for i in range(len(images))]
    for name, img in zip(names, images):
        Image.fromarray(img[0]).save(folder / f"{name}.png")
    return folder


def one_line(err: str) -> str:
    err = err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------------------------
def test_project_lowers_error_and_writes_loadable_latents(semi_run, tmp_path, capsys):
    images = heldout_images()
    write_pngs(tmp_path / "in", images)
    out = tmp_path / "out"
    assert main(["project", str(semi_run), "--images", str(tmp_path / "in"), "--out", str(out), "--steps", "40"]) == 0
    report = json.loads((out / "projection.json").read_text())
    assert report["diverged"] == 0 and [i["status"] for i in report["images"]] == ["ok"] * 4
    # the E-only number is edit's reconstruction (E's codes, the seed-0 z), recomputed here
    editor = load_editor(semi_run)
    read = editor.encode(images)
    e_only = reconstruction_error(images, editor.generate(read, images, seed=0))
    assert [i["error_e_only"] for i in report["images"]] == pytest.approx(e_only.tolist())
    assert report["mean_error_projected"] < 0.85 * report["mean_error_e_only"]
    for item in report["images"]:
        assert item["loss"] < item["loss_start"]
    # the latents file reproduces the written reconstructions exactly
    latents = load_latents(out / "latents.safetensors")
    assert latents["images"] == [f"img{i}.png" for i in range(4)] and latents["factors"] == editor.names
    assert latents["codes"].shape == (4, 5) and latents["noise"].shape == (4, editor.z_dim)
    assert latents["codes"].min() >= 0.0 and latents["codes"].max() <= 1.0
    assert (np.sqrt((latents["noise"] ** 2).mean(axis=1)) <= 1.0 + 1e-5).all()
    again = render_images(editor, latents["codes"], latents["noise"])
    for i in range(4):
        saved = np.asarray(Image.open(out / f"img{i}_projected.png"))[None]
        assert np.array_equal(saved, again[i])
        assert report["images"][i]["error_projected"] == pytest.approx(float(reconstruction_error(images[i:i + 1],
                                                                                               again[i:i + 1])[0]))
    assert (out / "grid.png").is_file()
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="bad.safetensors: cannot read latents"):
        load_latents(tmp_path / "bad.safetensors")
    err = capsys.readouterr().err
    assert "projecting 4 image(s), 40 steps" in err and "project:" in err  # stage line and bar


def test_quiet_removes_progress(semi_run, tmp_path, capsys):
    write_pngs(tmp_path / "in", heldout_images(n=2))
    capsys.readouterr()
    assert main(["project", str(semi_run), "--images", str(tmp_path / "in"), "--out", str(tmp_path / "a"),
                 "--steps", "3", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "2 of 2 image(s) projected" in captured.out
    assert main(["project", str(semi_run), "--images", str(tmp_path / "in"), "--out", str(tmp_path / "b"),
                 "--steps", "3"]) == 0
    assert "projecting 2 image(s)" in capsys.readouterr().err


def test_other_size_and_mode_is_converted_with_a_note(semi_run, tmp_path, capsys):
    images = heldout_images(n=2)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(images[0, 0]).convert("RGB").resize((40, 40), Image.NEAREST).save(folder / "big_rgb.png")
    Image.fromarray(images[1, 0]).save(folder / "same.png")
    assert main(["project", str(semi_run), "--images", str(folder), "--out", str(tmp_path / "out"), "--steps", "2",
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "big_rgb.png: 40x40 RGB image converted to 16x16 L" in err and "same.png" not in err
    report = json.loads((tmp_path / "out" / "projection.json").read_text())
    assert report["images"][0]["note"] == "40x40 RGB image converted to 16x16 L" and "note" not in report["images"][1]
    assert Image.open(tmp_path / "out" / "big_rgb_projected.png").size == (16, 16)


@pytest.mark.parametrize("case", ["corrupt", "truncated", "empty", "no_images", "steps"])
def test_bad_input_one_line_exit_2_nothing_written(semi_run, tmp_path, capsys, case):
    folder = tmp_path / "in"
    write_pngs(folder, heldout_images(n=2))
    good = (folder / "img0.png").read_bytes()
    args = []
    if case == "corrupt":
        (folder / "bad.png").write_bytes(b"this is not a png at all" * 10)
    elif case == "truncated":
        big = tmp_path / "big.png"
        Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64), dtype=np.uint8)).save(big)
        (folder / "bad.png").write_bytes(big.read_bytes()[: len(big.read_bytes()) // 2])
    elif case == "empty":
        (folder / "bad.png").write_bytes(b"")
    elif case == "no_images":
        for f in folder.iterdir():
            f.unlink()
        (folder / "readme.txt").write_text("no images here")
    else:
        args = ["--steps", "-1"]
    assert good
    out = tmp_path / "out"
    assert main(["project", str(semi_run), "--images", str(folder), "--out", str(out), "--quiet", *args]) == 2
    err = one_line(capsys.readouterr().err)
    expect = {"corrupt": "bad.png: not an image", "truncated": "bad.png: cannot decode image",
              "empty": "bad.png: empty file", "no_images": "no image files", "steps": "--steps must be"}[case]
    assert expect in err
    assert not out.exists()


def test_divergence_is_reported_and_the_rest_go_on(semi_run, tmp_path, capsys, monkeypatch):
    write_pngs(tmp_path / "in", heldout_images(n=3))
    real = projection._pixel_term
    calls = []

    def nan_for_second_image(target, output):  # from the 6th evaluation on: mid-fit, not at the start
        calls.append(1)
        loss = real(target, output)
        return loss + torch_nan_at(loss, 1) if len(calls) > 5 else loss

    monkeypatch.setattr(projection, "_pixel_term", nan_for_second_image)
    out = tmp_path / "out"
    assert main(["project", str(semi_run), "--images", str(tmp_path / "in"), "--out", str(out), "--steps", "20",
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "img1.png: projection diverged" in one_line(captured.err)
    report = json.loads((out / "projection.json").read_text())
    assert [i["status"] for i in report["images"]] == ["ok", "diverged", "ok"] and report["diverged"] == 1
    assert not (out / "img1_projected.png").exists() and (out / "img2_projected.png").is_file()
    latents = load_latents(out / "latents.safetensors")
    assert latents["images"] == ["img0.png", "img2.png"] and np.isfinite(latents["codes"]).all()
    for i in (0, 2):  # the others still improved
        assert report["images"][i]["loss"] < report["images"][i]["loss_start"]


def torch_nan_at(loss, index):
    import torch

    add = torch.zeros_like(loss)
    add[index] = float("nan")
    return add


# ----------------------------------------------------------------------------------------------
def test_edit_with_projection_keeps_the_fitted_noise(semi_run, tmp_path):
    editor = load_editor(semi_run)
    images = heldout_images(n=3, seed=2)
    fit = editor.project(images, 30)
    edited, read, used = editor.edit(images, {"posX": 0.9}, projection=fit)
    assert np.array_equal(read, fit.codes) and np.allclose(used[:, 3], 0.9)
    assert np.array_equal(used[:, [0, 1, 2, 4]], fit.codes[:, [0, 1, 2, 4]])
    assert np.array_equal(edited, render_images(editor, used, fit.noise))
    # with nothing changed the edit is the projection's reconstruction, closer than E-only's
    same = editor.edit(images, {}, projection=fit)[0]
    assert np.array_equal(same, render_images(editor, fit.codes, fit.noise))
    assert reconstruction_error(images, same).mean() < reconstruction_error(
        images, editor.generate(editor.encode(images), images)).mean()
    # traversal from the fitted point: the fitted noise in every step
    trav = editor.traverse(images, "posY", steps=3, projection=fit)
    codes = np.repeat(fit.codes[:, None], 3, axis=1)
    codes[:, :, 4] = [0.0, 0.5, 1.0]
    expect = render_images(editor, codes.reshape(9, -1), np.repeat(fit.noise, 3, axis=0)).reshape(trav.shape)
    assert np.array_equal(trav, expect)


def test_edit_cli_project(semi_run, tmp_path, capsys):
    write_pngs(tmp_path / "in", heldout_images(n=2))
    out = tmp_path / "out"
    assert main(["edit", str(semi_run), "--images", str(tmp_path / "in"), "--set", "scale=0.5", "--project",
                 "--project-steps", "10", "--out", str(out)]) == 0
    report = json.loads((out / "edits.json").read_text())
    assert report["project"] is True and len(report["images"]) == 2
    assert "projecting 2 image(s), 10 steps" in capsys.readouterr().err
    assert main(["edit", str(semi_run), "--images", str(tmp_path / "in"), "--set", "scale=0.5", "--project",
                 "--project-steps", "5", "--quiet", "--out", str(tmp_path / "q")]) == 0
    assert capsys.readouterr().err == ""


def test_semi_fine_projection_refines_on_the_coarse_input(fine_run, tmp_path):
    editor = load_editor(fine_run)
    images = heldout_images(n=3, seed=3)
    fit = editor.project(images, 30)
    assert fit.codes.shape == (3, 2) and fit.noise.shape == (3, editor.z_dim)
    e_only = editor.generate(fit.start_codes, images)
    projected = render_images(editor, fit.codes, fit.noise, images)
    assert reconstruction_error(images, projected).mean() < reconstruction_error(images, e_only).mean()
    assert (fit.loss < fit.start_loss).all()
    # the coarse input is each image: the same latents on another image give another output
    other = render_images(editor, fit.codes, fit.noise, images[[1, 2, 0]])
    assert not np.array_equal(other, projected)
    # the CLI writes the fine codes only, and says the latents need the image
    write_pngs(tmp_path / "in", images)
    assert main(["project", str(fine_run), "--images", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--steps", "5", "--quiet"]) == 0
    latents = load_latents(tmp_path / "out" / "latents.safetensors")
    assert latents["factors"] == ["scale", "orientation"] and latents["needs_image"] is True
