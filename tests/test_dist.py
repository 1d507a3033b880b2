"""Two CPU processes under torchrun (gloo) agree with one process on the same global batch."""
import json
import os
import subprocess
import sys

import pytest

from semistylegan.checkpoint import list_snapshots, load_snapshot
from semistylegan.config import TrainConfig
from semistylegan.train import Trainer

pytestmark = pytest.mark.cpu_only  # two gloo CPU processes, compared bit for bit


def _train(run_dir, nproc, extra=()):
    args = ["-m", "semistylegan", "train", "--preset", "tiny", "--kimg", "0.064", "--r1-interval", "2",
            "--no-progress", "--grid-kimg", "0", "--out", str(run_dir), *extra]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    else:
        cmd = [sys.executable, *args]
    rendezvous = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in rendezvous}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return load_snapshot(list_snapshots(run_dir)[-1])


# Semi-StyleGAN, and Semi-StyleGAN-fine with hue_jitter (random angles drawn per image in the step:
# the global batch's angles, this rank's part).
@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--dataset", "shapes3d", "--method", "semi-fine", "--hue-jitter",
                                        "--recon", "1")], ids=["semi", "semi-fine-hue-jitter"])
def test_two_processes_match_one(tmp_path, extra):
    one = _train(tmp_path / "one", 1, extra)
    two = _train(tmp_path / "two", 2, extra)
    assert one["state"]["step"] == two["state"]["step"] == 4
    assert one["state"]["rng"] == two["state"]["rng"]
    # The initial weights of the same config (seeded initialisation), to measure how far each
    # tensor moved in training.
    cfg = TrainConfig.from_dict(json.loads((tmp_path / "one" / "config.json").read_text()))
    init = {k: v.state_dict() for k, v in Trainer(cfg, tmp_path / "init", progress=False).nets.items()}
    moved = 0
    for name, params in one["networks"].items():
        for key, t in params.items():
            if key.endswith("w_avg"):  # a running mean of each rank's own w; not synchronised
                continue
            t, t2, t0 = t.double(), two["networks"][name][key].double(), init[name][key].double()
            movement = (t - t0).norm().item()
            # Half-batch gradients averaged over two ranks round differently from one full
            # batch, and Adam turns that into small weight differences (measured: at most 3e-4 of
            # a tensor's movement). A rank that trained on its half alone, or on the wrong
            # slice, would differ by a sizeable fraction of the movement.
            change = (t2 - t).norm().item()
            assert change <= 1e-2 * movement, f"{name}.{key}: {change} vs moved {movement}"
            moved += movement > 0
    assert moved > 10  # the comparison is not vacuous: training moved the weights
