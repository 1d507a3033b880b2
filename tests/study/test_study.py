"""The study runner: bad input names the file's line, resume skips finished cells and continues a
killed one from its snapshot, and the table and plot files are written."""
import json
import os
import textwrap

import pytest

from semistylegan import study as S
from semistylegan.cli import main
from semistylegan.errors import UserError
from tiny_study import metrics_block  # noqa: E402  (tests/ is on sys.path under pytest)

STUDY = textwrap.dedent("""\
    name = "test"
    preset = "tiny"
    kimg = 0.032
    seeds = [0, 1]

    [[grid]]
    methods = ["encoder-mixup"]
    eta = [0.01, 0.05]

    [[grid]]
    methods = ["beta-vae"]
    seeds = [0]
    options = {vae_beta = 2}
    """) + metrics_block(gen=False, fid=False, dci=False)


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _attempts(out, cell):
    return (S.cell_dir(out, cell) / "attempts.jsonl").read_text().splitlines()


def test_grid_expansion(tmp_path):
    st = S.load_study(_write(tmp_path, STUDY))
    ids = [c.cell_id for c in st.cells]
    # seed by seed: every row's first seed before any second seed
    assert ids == ["encoder-mixup-eta0.01-s0", "encoder-mixup-eta0.05-s0", "beta-vae-s0", "encoder-mixup-eta0.01-s1",
                   "encoder-mixup-eta0.05-s1"]
    vae = st.cells[2]
    cfg = vae.config(st.top)
    assert cfg.method == "beta-vae" and cfg.labeled_fraction == 0 and cfg.vae_beta == 2.0
    assert cfg.kimg == pytest.approx(0.032) and cfg.resolution == 16
    # eta does not multiply unsupervised methods; gamma does not multiply non-StyleGAN methods
    st2 = S.load_study(_write(tmp_path, STUDY + '\n[[grid]]\nmethods = ["info"]\nseeds = [0]\ngamma = [1, 10]\n',
                              "t.toml"))
    assert [c.cell_id for c in st2.cells][2:5] == ["beta-vae-s0", "info-g1-s0", "info-g10-s0"]
    # a block's options must suit every method of the block: info does not use vae_beta
    with pytest.raises(UserError, match=r"u\.toml:13: cell info-g1-s0: --method info does not use --vae-beta$"):
        S.load_study(_write(tmp_path, STUDY.replace('methods = ["beta-vae"]', 'methods = ["beta-vae", "info"]'),
                            "u.toml"))
    # a worker process takes a cell once; a stopped run's claims are cleared by the next
    out = tmp_path / "claims"
    assert S.claim(out, st.cells[1]) and not S.claim(out, st.cells[1]) and S.claim(out, st.cells[0])
    S.clear_claims(out)
    assert S.claim(out, st.cells[1])


@pytest.mark.parametrize("old,new,line,words", [
    ('methods = ["beta-vae"]', 'methods = ["beta-vea"]', 11, "unknown method 'beta-vea'"),
    ('eta = [0.01, 0.05]', 'eta = [0.01, 5]', 8, "eta must be in"),
    ('seeds = [0]', 'seedz = [0]', 12, "unknown key 'seedz'"),
    ('samples = 200', 'samples = "many"', 16, "metrics.samples must be an integer"),
    ('preset = "tiny"', 'preset = "huge"', 2, "unknown preset 'huge'"),
    ('options = {vae_beta = 2}', 'options = {vae_gamma = 2}', 13, "unknown option 'vae_gamma'"),
    ('options = {vae_beta = 2}', 'options = {alpah = 0}', 13, "unknown option 'alpah'"),
    ('options = {vae_beta = 2}', 'set = {vae_beta = 2}', 13, "unknown key 'set'"),  # the removed key
    ('kimg = 0.032', 'kimg = 0.032 0.1', 3, "not valid TOML"),
])
def test_bad_input_names_the_line(tmp_path, old, new, line, words):
    text = STUDY.replace(old, new)
    assert text != STUDY
    p = _write(tmp_path, text)
    with pytest.raises(UserError) as e:
        S.load_study(p)
    msg = str(e.value)
    assert "\n" not in msg and words in msg
    assert f"{p}:{line}" in msg, msg


def test_cli_bad_file_is_one_line(tmp_path, capsys):
    p = _write(tmp_path, STUDY.replace('"encoder-mixup"', '"encoder-mixop"'))
    assert main(["study", str(p), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{p}:7" in err
    assert main(["study", str(tmp_path / "missing.toml")]) == 2


def test_resume_table_and_plots(tmp_path, capsys):
    p = _write(tmp_path, STUDY)
    st = S.load_study(p)
    out = tmp_path / "out"
    # a study killed after its first cell
    rows = S.run_study(st, out, max_cells=1, log=lambda *a: None)
    assert len(rows) == 1 and rows[0]["status"] == "done"
    first = st.cells[0]
    result1 = S.cell_dir(out, first) / "result.json"
    mtime = result1.stat().st_mtime_ns
    # ... and killed inside the second cell, after a snapshot at 0.016 kimg
    second = st.cells[1]
    S.cell_dir(out, second).mkdir(parents=True)
    trainer = S._study_trainer_class()(second.config(st.top), S.cell_dir(out, second), progress=False)
    trainer.train_one_step()
    trainer.save_snapshot()
    assert trainer.cur_nimg == 16
    # the rerun: the finished cell is not touched, the killed one resumes from its snapshot
    assert main(["study", str(p), "--out", str(out)]) == 0
    assert result1.stat().st_mtime_ns == mtime and len(_attempts(out, first)) == 1
    att = [json.loads(a) for a in _attempts(out, second)]
    assert len(att) == 1 and att[0]["resumed_from_kimg"] == pytest.approx(0.016)
    results = [S.cell_result(out, c) for c in st.cells]
    assert all(r["status"] == "done" for r in results)
    assert results[1]["kimg"] == pytest.approx(0.032)
    vae = next(r for r in results if r["method"] == "beta-vae")
    assert "mig" in vae and "l2" not in vae and "mig_gen" not in vae   # unidentified latents: no L2
    assert "l2" in results[0] and "mig_gen" not in results[0]          # no generator
    # a third run trains nothing
    assert main(["study", str(p), "--out", str(out)]) == 0
    assert all(len(_attempts(out, c)) == 1 for c in st.cells)
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(st.cells)
    md = (out / "results.md").read_text()
    assert "| Encoder-only with MixUp (eta = 1%) | 2 |" in md and "| beta-VAE | 1 |" in md
    assert " +- " in md and "5 of 5 cells finished" in md
    assert (out / "fig_eta.png").stat().st_size > 1000
    assert not (out / "fig_realism.png").exists()   # no realism metric in this study
    capsys.readouterr()  # drop the study's own output before the dry run
    assert main(["study", str(p), "--out", str(out), "--dry-run"]) == 0
    assert '"finished": 5' in capsys.readouterr().out


def test_generator_metrics_and_realism_plot(tmp_path):
    text = textwrap.dedent("""\
        preset = "tiny"
        kimg = 0.016
        [[grid]]
        label = "without smoothness term"
        methods = ["semi"]
        eta = [0.05]
        gamma = [10]
        options = {alpha = 0}
        """) + metrics_block()
    st = S.load_study(_write(tmp_path, text))
    assert st.cells[0].config(st.top).alpha == 0
    out = tmp_path / "out"
    rows = S.run_study(st, out, log=lambda *a: None)
    r = rows[0]
    for m in ("mig", "factor_score", "l2", "dci", "mig_gen", "l2_gen", "ofid"):
        assert m in r and r[m] == r[m], m
    assert 0 <= r["mig_gen"] <= 1 and r["l2_gen"] >= 0 and r["ofid"] >= 0 and 0 <= r["dci"] <= 1
    assert "DCI D" in (out / "results.md").read_text()
    # the headline is the lowest MIG-gen / highest L2-gen over the two readers
    readers = r["readers"]
    assert set(readers) == {"cnn", "pixel-mlp"}
    assert r["mig_gen"] == min(v["mig_gen"] for v in readers.values())
    assert r["l2_gen"] == max(v["l2_gen"] for v in readers.values())
    assert readers["cnn"]["l2_gen"] != readers["pixel-mlp"]["l2_gen"]  # two readers, two readings
    assert (out / "fig_realism.png").stat().st_size > 1000 and (out / "fig_eta.png").exists()
    assert "| without smoothness term | 1 |" in (out / "results.md").read_text()


def test_frechet_distance():
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert S._frechet(a, a) == pytest.approx(0, abs=1e-8)
    b = rng.standard_normal((4000, 3)) * 2 + 1
    # N(0, I) vs N(1, 4I): |mu|^2 + tr(I + 4I - 2 * 2I) = 3 + 3
    assert S._frechet(a, b) == pytest.approx(6.0, rel=0.05)


def test_jobs_run_cells_side_by_side(tmp_path, monkeypatch):
    """--jobs 2: two worker processes share the cells and give the same results as one process."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")   # the same threads in both runs: equal numbers
    p = _write(tmp_path, STUDY)
    st = S.load_study(p)
    assert main(["study", str(p), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert main(["study", str(p), "--out", str(tmp_path / "two"), "--jobs", "2", "--quiet"]) == 0
    pids = set()
    for c in st.cells:
        one, two = S.cell_result(tmp_path / "one", c), S.cell_result(tmp_path / "two", c)
        assert two["status"] == "done"
        assert {k: one[k] for k in ("mig", "l2") if k in one} == {k: two[k] for k in ("mig", "l2") if k in two}
        attempts = _attempts(tmp_path / "two", c)
        assert len(attempts) == 1          # no cell trained by both workers
        pids.add(json.loads(attempts[0])["pid"])
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert f"{len(st.cells)} of {len(st.cells)} cells finished" in (tmp_path / "two" / "results.md").read_text()


@pytest.mark.parametrize("jobs,cores,threads", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 8, 4)])
def test_jobs_share_the_cores(jobs, cores, threads):
    assert S.run.cpu_threads_per_worker(jobs, cores) == threads


def test_jobs_must_be_positive(tmp_path, capsys):
    p = _write(tmp_path, STUDY)
    assert main(["study", str(p), "--out", str(tmp_path / "o"), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("--jobs must be at least 1, got 0")
    assert not (tmp_path / "o").exists()


CURVE_STUDY = textwrap.dedent("""\
    preset = "tiny"
    kimg = 0.048
    seeds = [0, 1]
    [[grid]]
    methods = ["semi"]
    eta = [0.05]
    seeds = [0]
    options = {snapshot_kimg = 0.016, keep_snapshots = 10}
    [[grid]]
    methods = ["encoder-only"]
    eta = [0.05]
    """) + metrics_block(fid=False, dci=False)


def test_curve_reads_every_kept_snapshot(tmp_path, capsys):
    p = _write(tmp_path, CURVE_STUDY)
    st = S.load_study(p)
    out = tmp_path / "out"
    # before any cell kept snapshots: one line, exit 2, nothing written
    assert main(["study", str(p), "--out", str(out), "--curve"]) == 2
    assert "no cell with a conditional generator kept more than one snapshot" in capsys.readouterr().err
    assert not (out / "curve.csv").exists()
    S.run_study(st, out, log=lambda *a: None)
    assert main(["study", str(p), "--out", str(out), "--curve", "--quiet"]) == 0
    lines = (out / "curve.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    assert "mig_gen_cnn" in header and "mig_gen_pixel-mlp" in header
    assert [float(r["kimg"]) for r in rows] == pytest.approx([0.016, 0.032, 0.048])
    assert {r["cell"] for r in rows} == {"semi-eta0.05-g1-s0"}     # the encoder has no generator
    # the last snapshot is the trained cell: the same reading as its result
    semi = next(c for c in st.cells if c.method == "semi")
    assert float(rows[-1]["mig_gen"]) == pytest.approx(S.cell_result(out, semi)["mig_gen"], abs=1e-9)
    assert (out / "fig_curve.png").stat().st_size > 1000
    assert "fig_curve.png" in (out / "results.md").read_text()
    # a second call reads nothing again
    cache = S.cell_dir(out, semi) / "curve.json"
    mtime = cache.stat().st_mtime_ns
    assert main(["study", str(p), "--out", str(out), "--curve", "--quiet"]) == 0
    assert cache.stat().st_mtime_ns == mtime


def test_failed_cells_are_listed(tmp_path):
    st = S.load_study(_write(tmp_path, STUDY))
    out = tmp_path / "out"
    S.run_study(st, out, max_cells=1, log=lambda *a: None)
    bad = st.cells[1]
    S.cell_dir(out, bad).mkdir(parents=True)
    (S.cell_dir(out, bad) / "result.json").write_text(json.dumps(
        {"cell": bad.cell_id, "label": "", "method": bad.method, "eta": bad.eta, "gamma": None, "seed": bad.seed,
         "status": "diverged", "message": "non-finite D loss at step 7"}))
    rows = [r for r in (S.cell_result(out, c) for c in st.cells) if r]
    S.summarise(st, rows, out)
    md = (out / "results.md").read_text()
    assert f"- {bad.cell_id}: diverged: non-finite D loss at step 7" in md
    assert "1 failed or diverged" in md


def test_a_failing_cell_is_one_line_and_the_study_goes_on(tmp_path, capsys):
    """A cell whose own input is bad (its data folder is missing) is recorded as failed with one
    line naming the file's line and the cell; the other cells run; results.md lists it."""
    text = STUDY + textwrap.dedent(f"""\

        [[grid]]
        label = "from a folder"
        methods = ["beta-vae"]
        seeds = [0]
        options = {{dataset = "folder", data_path = "{tmp_path / 'no-such-folder'}"}}
        """)
    p = _write(tmp_path, text)
    st = S.load_study(p)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["study", str(p), "--out", str(out), "--quiet"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "from_a_folder" in ln]
    bad = next(c for c in st.cells if c.label == "from a folder")
    assert len(err) == 1 and err[0].startswith(f"semistylegan: {p}:{bad.line}: cell {bad.cell_id}: ")
    assert "no-such-folder" in err[0]
    assert S.cell_result(out, bad)["status"] == "error"
    assert all(S.cell_result(out, c)["status"] == "done" for c in st.cells if c is not bad)
    assert f"- {bad.cell_id}: error: " in (out / "results.md").read_text()
