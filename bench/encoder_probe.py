"""How fast can the code head E learn to read each factor from labelled images alone?

    OMP_NUM_THREADS=1 .venv/bin/python bench/encoder_probe.py --steps 2000 --every 500

Semi-StyleGAN's generator can only learn to obey a factor that E reads (L_unsup and L_sr go
through E), so E's reading of a factor bounds the generator's control of it. This probe trains
only an encoder, with nothing adversarial, on the labelled subset J (eta of procedural dSprites
at 32x32, batch 32) and reports, on 2,000 random real images, the Pearson correlation of each
predicted code with the true code, the L2 of SPEC.md, and the mean (std) shape prediction per
true shape (square = 0, ellipse = 0.5, heart = 1). Variants:

- d-quick:  D's trunk + code head of the dsprites-quick preset (channel_base 512), the L_sup of
            Semi-StyleGAN (plain L2 norm), Adam(0, 0.99) lr 0.002: E exactly as training sees it,
            minus the GAN and MixUp terms.
- d-cpu32:  the same with the dsprites-cpu32 widths (channel_base 2048).
- d-mse:    d-quick with the squared error instead of the L2 norm.
- d-adam:   d-quick with the oracle's Adam(0.9, 0.999) instead of D's Adam(0, 0.99).
- d-plain:  d-quick without the equalised learning rate (each weight stored at its run-time
            scale, N(0, 1/fan_in), so an Adam step moves it sqrt(fan_in) times further relative
            to its size) and with Adam(0.9, 0.999): the same network and initial function.
- d-classify: d-quick with the classifier code head of `--code-head classify` (a softmax per
            factor, cross-entropy; the code read is the arg-max value's).
- d-classify-cpu32 / d-classify-plain: the same with the dsprites-cpu32 widths / as d-plain.
- oracle-regress:  the oracle encoder's CNN (semistylegan.metrics.oracle.OracleNet) with one
            regression output per factor and the L2-norm loss, Adam lr 0.002.
- oracle-classify: the oracle's CNN as the oracle is trained (one softmax per factor,
            cross-entropy); its code is the arg-max class j of m mapped to j / (m - 1).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

VARIANTS = ("d-quick", "d-cpu32", "d-mse", "d-adam", "d-plain", "d-classify", "d-classify-cpu32", "d-classify-plain",
            "oracle-regress", "oracle-classify")
TEST_IMAGES = 2000


def test_indices(dataset, seed: int = 0) -> np.ndarray:
    """The real images every encoder here is judged on (also bench/d_param_gan.py and
    bench/separate_encoder_gan.py)."""
    return np.random.RandomState(seed + 1).randint(len(dataset), size=TEST_IMAGES)


def encoder_report(pred: np.ndarray, dataset, test: np.ndarray) -> dict:
    """Pearson correlation of each predicted code with the true one, the L2 of SPEC.md, and the
    mean (std) shape prediction per true shape."""
    true, classes = dataset.codes(test), dataset.classes(test)
    space = dataset.factor_space
    corr = {name: float(np.corrcoef(pred[:, k], true[:, k])[0, 1]) if pred[:, k].std() > 0 else 0.0
            for k, name in enumerate(space.names)}
    by_shape = [[float(pred[classes[:, 0] == j, 0].mean()), float(pred[classes[:, 0] == j, 0].std())]
                for j in range(space.sizes[0])]
    return {"l2": float(np.linalg.norm(pred - true, axis=1).mean()), "corr": corr, "shape_by_class": by_shape}


def real_image_report(method, nets: dict, device, dataset) -> dict:
    """encoder_report of a trained model's E on the test images, plus E's MIG on them
    (bench/d_param_gan.py, bench/separate_encoder_gan.py, bench/g_follows_e.py)."""
    from semistylegan import metrics as M
    from semistylegan.evaluation import encoder_fn

    test = test_indices(dataset)
    pred = encoder_fn(method, nets, device)(dataset.images(test))
    report = encoder_report(pred, dataset, test)
    report["mig"] = float(M.mig(pred, dataset.classes(test))["discrete_mig"])
    return report


def unequalise(module: torch.nn.Module) -> None:
    """Store every equalised-lr weight at its run-time scale (same function, no equalised lr)."""
    from semistylegan.nets.layers import EqualConv2d, EqualLinear

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (EqualConv2d, EqualLinear)):
                m.weight.mul_(m.weight_gain)
                m.weight_gain = 1.0


def build(variant: str, space, resolution: int, channels: int):
    """(parameters, encode(x) -> codes, loss(x, classes, codes) -> scalar)."""
    from semistylegan.methods.base import l2_norm_loss
    from semistylegan.metrics.oracle import OracleNet
    from semistylegan.nets import Discriminator

    K = space.num_factors
    if variant.startswith("d-classify"):
        from semistylegan.nets.discriminator import decode_code_logits, split_code_logits
        sizes = tuple(int(m) for m in space.sizes)
        D = Discriminator(K, resolution, channels, 2048 if variant.endswith("cpu32") else 512, 64, 4, code_classes=sizes)
        if variant.endswith("plain"):
            unequalise(D)

        def encode(x):
            return decode_code_logits(D.encode(x), sizes)

        def loss(x, classes, codes):
            ce = torch.nn.functional.cross_entropy
            return sum(ce(lg, classes[:, k]) for k, lg in enumerate(split_code_logits(D.encode(x), sizes))) / K
        return D, encode, loss, (0.9, 0.999) if variant.endswith("plain") else (0.0, 0.99)
    if variant.startswith("d-"):
        D = Discriminator(K, resolution, channels, 2048 if variant == "d-cpu32" else 512, 64, 4)
        if variant == "d-mse":
            def loss(x, classes, codes):
                return (D.encode(x) - codes).square().sum(dim=1).mean()
        else:
            def loss(x, classes, codes):
                return l2_norm_loss(D.encode(x), codes)
        if variant == "d-plain":
            unequalise(D)
        return D, D.encode, loss, (0.9, 0.999) if variant in ("d-adam", "d-plain") else (0.0, 0.99)
    if variant == "oracle-regress":
        net = OracleNet(resolution, channels, (1,) * K)

        def encode(x):
            return torch.cat(net(x), dim=1)

        def loss(x, classes, codes):
            return l2_norm_loss(encode(x), codes)
        return net, encode, loss, (0.9, 0.999)
    if variant == "oracle-classify":
        net = OracleNet(resolution, channels, space.sizes)
        scale = torch.tensor([1.0 / max(m - 1, 1) for m in space.sizes])

        def encode(x):
            return torch.stack([lg.argmax(dim=1) for lg in net(x)], dim=1).float() * scale

        def loss(x, classes, codes):
            ce = torch.nn.functional.cross_entropy
            return sum(ce(lg, classes[:, k]) for k, lg in enumerate(net(x))) / K
        return net, encode, loss, (0.9, 0.999)
    raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def probe(variant: str, steps: int, every: int, fraction: float, seed: int, lr: float = 0.002) -> list[dict]:
    from semistylegan.data import make_dataset
    from semistylegan.data.dataset import LabeledSubset, images_to_tensor

    ds = make_dataset("dsprites", 32)
    space = ds.factor_space
    labeled = LabeledSubset(ds, fraction, seed=seed)
    torch.manual_seed(seed)
    net, encode, loss_fn, betas = build(variant, space, ds.resolution, ds.channels)
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
    gen = torch.Generator().manual_seed(seed)
    test = test_indices(ds, seed)
    x_test = images_to_tensor(ds.images(test))
    rows, start = [], time.time()
    for step in range(1, steps + 1):
        idx = labeled.sample(32, gen)
        x = images_to_tensor(ds.images(idx))
        classes = torch.from_numpy(ds.classes(idx).astype(np.int64))
        codes = torch.from_numpy(ds.codes(idx).astype(np.float32))
        loss = loss_fn(x, classes, codes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            net.eval()
            with torch.no_grad():
                pred = encode(x_test).double().numpy()
            net.train()
            row = {"variant": variant if lr == 0.002 else f"{variant} lr {lr:g}", "step": step,
                   "seconds": round(time.time() - start, 1), **encoder_report(pred, ds, test)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--fraction", type=float, default=0.01, help="eta, the labelled fraction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.002, help="Adam learning rate of every variant")
    p.add_argument("--json", help="also write all rows to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for v in args.variants.split(","):
        rows += probe(v.strip(), args.steps, args.every, args.fraction, args.seed, args.lr)
    print("\n| variant | step | s | L2 | " + " | ".join(f"corr {n}" for n in rows[0]["corr"]) + " | shape pred: square / ellipse / heart |")
    print("|---|---|---|---|" + "---|" * (len(rows[0]["corr"]) + 1))
    for r in rows:
        shape = " / ".join(f"{m:.2f} ({s:.2f})" for m, s in r["shape_by_class"])
        print(f"| {r['variant']} | {r['step']} | {r['seconds']:.0f} | {r['l2']:.3f} | "
              + " | ".join(f"{c:.2f}" for c in r["corr"].values()) + f" | {shape} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
