"""MIG-gen and L2-gen read by several independent readers, with the statistics that say when to distrust them.

docs/method.md ("Generator metrics") states the rule and the statistics; in short:
- model-based readers: the CNN oracle (`metrics.oracle`) and the pixel MLP (`metrics.pixel_oracle`),
  each trained on real images only; MIG-gen and L2-gen are computed per reader exactly as
  `metrics.generator` does (same codes, same images, same seeds), and the headline MIG-gen is
  the lowest over them, the headline L2-gen the highest;
- the ground-truth renderer (procedural dSprites and 3DShapes): the pixel distance between each
  generated image and the real image of its asked code, and for dSprites the exact nearest real
  image over the whole grid on the first `render_samples` images of the first repetition:
  the exact-match rate and the nearest image's code as a model-free reading;
- agreement between readers, per factor, on generated images and on the real images of the
  same codes;
- out-of-distribution: each reader's max-softmax per factor on generated against real images,
  and the share of readings under the reader's confidence floor (2nd percentile on held-out
  real images); where a renderer exists, also the share of readings whose rendering leaves
  more than RENDER_FLAG of the image unexplained;
- symmetry (dSprites family): how often a reader picks the asked orientation of a square
  (90-degree symmetric) or an ellipse (180-degree) rather than one of its symmetric twins,
  on generated against real images.
The statistics beyond MIG/L2 are computed on the first repetition's images.
"""

from __future__ import annotations

import itertools

import numpy as np

from semistylegan.metrics import replay
from semistylegan.metrics.generator import generate_images
from semistylegan.metrics.l2 import l2
from semistylegan.metrics.mig import mig_per_factor
from semistylegan.metrics.render_match import ground_truth_renderer, render_distance

__all__ = ["RENDER_FLAG", "SYMMETRIES", "default_readers", "generator_readings", "reading_flags", "symmetry_check"]

# A reading is "unexplained" when ||x - render(reading)||^2 > RENDER_FLAG * (||x||^2 + ||render||^2) (pixels in [0, 1]).
RENDER_FLAG = 0.25
# Rotational symmetry order of the dSprites shapes (square 90 degrees, ellipse 180 degrees, heart none).
SYMMETRIES = {0: ("square", 4), 1: ("ellipse", 2)}


def default_readers(
    dataset, oracle=None, oracle_options: dict | None = None, pixel_options: dict | None = None, verbose: bool = False
) -> dict:
    """{"cnn": the CNN oracle, "pixel-mlp": the pixel MLP}, each loaded from the cache or trained."""
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.metrics.pixel_oracle import get_pixel_oracle

    cnn = oracle if oracle is not None else get_oracle(dataset, verbose=verbose, **(oracle_options or {}))
    return {"cnn": cnn, "pixel-mlp": get_pixel_oracle(dataset, verbose=verbose, **(pixel_options or {}))}


def _relative_residual(images: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    a = images.reshape(len(images), -1).astype(np.float64) / 255.0
    b = rendered.reshape(len(rendered), -1).astype(np.float64) / 255.0
    return ((a - b) ** 2).sum(1) / np.maximum((a**2).sum(1) + (b**2).sum(1), 1e-12)


def reading_flags(reader, images: np.ndarray, dataset=None, renders: bool | None = None) -> dict:
    """A reader's classes, confidences and per-image flags on `images`.

    "unsure" (N, K): confidence under the reader's floor; "unexplained" (N,): the rendering of
    the reading does not reproduce the image (only with a renderer); "flagged" (N,): any of them."""
    classes, confidence = reader.read(images)
    names = list(reader.factor_space.names)
    floor = np.array([reader.info.get("confidence_floor", {}).get(n, 0.0) for n in names], dtype=np.float32)
    unsure = confidence < floor[None, :]
    out = {"classes": classes, "confidence": confidence, "unsure": unsure, "flagged": unsure.any(axis=1)}
    if renders is None:
        renders = dataset is not None and ground_truth_renderer(dataset)[0] is not None
    if renders:
        rendered = dataset.images_from_classes(classes)
        out["residual"] = _relative_residual(images, rendered)
        out["unexplained"] = out["residual"] > RENDER_FLAG
        out["flagged"] = out["flagged"] | out["unexplained"]
    return out


def _angle_hits(read: np.ndarray, asked: np.ndarray, order: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(read within 1.5 orientation steps of the asked angle, of a symmetric twin angle but not the asked one)."""
    step = 2 * np.pi / (steps - 1)  # dSprites orientations: linspace(0, 2 pi, 40)

    def near(a, b):
        d = np.abs(a - b) % (2 * np.pi)
        return np.minimum(d, 2 * np.pi - d) <= 1.5 * step + 1e-9

    theta_read, theta_asked = read * step, asked * step
    asked_hit = near(theta_read, theta_asked)
    twin = np.zeros_like(asked_hit)
    for j in range(1, order):
        twin |= near(theta_read, theta_asked + 2 * np.pi * j / order)
    return asked_hit, twin & ~asked_hit


def symmetry_check(read_classes: np.ndarray, asked: np.ndarray, factor_space) -> dict | None:
    """Per symmetric dSprites shape: the share of orientation readings that pick the asked angle among its twins."""
    names = list(factor_space.names)
    if "shape" not in names or "orientation" not in names or factor_space.sizes[names.index("shape")] != 3:
        return None
    ks, ko = names.index("shape"), names.index("orientation")
    steps = factor_space.sizes[ko]
    out = {}
    for shape, (label, order) in SYMMETRIES.items():
        sel = asked[:, ks] == shape
        a, t = _angle_hits(read_classes[sel, ko], asked[sel, ko], order, steps)
        n = int(a.sum() + t.sum())
        out[label] = {
            "told_apart": float(a.sum() / n) if n else float("nan"),
            "symmetric_readings": n,
            "images": int(sel.sum()),
            "chance": 1.0 / order,
        }
    return out


def _per_factor(values: np.ndarray, names) -> dict:
    return {n: float(v) for n, v in zip(names, values)}


def _agreement(a: np.ndarray, b: np.ndarray, names) -> dict:
    same = a == b
    return dict(_per_factor(same.mean(axis=0), names), all_factors=float(same.all(axis=1).mean()))


def _least_favourable(by_reader: dict, pick, metric: str, companions: tuple[str, ...]) -> dict:
    """The `metric` of the reader `pick` (min or max) chooses, its companion statistics, and the
    reader's name under `<metric>_reader`."""
    worst = pick(by_reader, key=lambda n: by_reader[n][metric])
    return {**{k: by_reader[worst][k] for k in (metric, *companions)}, f"{metric}_reader": worst}


def generator_readings(
    generate,
    dataset,
    readers: dict,
    num_samples: int = 10000,
    repeats: int = 3,
    seed: int = 0,
    batch_size: int = 256,
    render_samples: int = 1000,
    return_features: bool = False,
) -> dict:
    """The generator report of `evaluate` (see the module docstring); JSON-ready except "features".

    readers: name -> reader with `read(images) -> (classes, confidence)`, `factor_space`, `info`.
    With return_features=True the reader named "cnn" also gives its penultimate features of the
    first repetition's images ("features"), for the oracle FID."""
    if int(num_samples) < 2 or int(repeats) < 1:
        raise ValueError(f"need num_samples >= 2 and repeats >= 1, got {num_samples} and {repeats}")
    if not readers:
        raise ValueError("generator_readings needs at least one reader")
    space = dataset.factor_space
    names = list(space.names)
    varied = [k for k, m in enumerate(space.sizes) if m > 1]
    renderer_kind, search = ground_truth_renderer(dataset)
    per = {name: {"mig": [], "l2": [], "mig_pf": [], "mae_pf": []} for name in readers}
    features = None
    first: dict = {}
    rs = replay.as_random_state(int(seed))
    for r in range(int(repeats)):
        classes = space.sample_classes(int(num_samples), rs)
        codes = space.classes_to_code(classes)
        images = np.concatenate(
            generate_images(generate, codes, seed=int(seed) * 1000 + r, batch_size=batch_size), axis=0
        )
        for name, reader in readers.items():
            if r == 0:
                if return_features and name == "cnn":
                    features = reader.features(images)
                first[name] = reading_flags(reader, images, dataset, renders=renderer_kind is not None)
                read = first[name]["classes"]
            else:
                read = reader.read(images)[0]
            reading = space.classes_to_code(read)
            if varied and space.num_factors >= 2:
                pf = mig_per_factor(reading, classes[:, varied])
                per[name]["mig_pf"].append(pf)
                per[name]["mig"].append(float(np.mean(pf)))
            res = l2(reading, codes, names)
            per[name]["l2"].append(res["l2"])
            per[name]["mae_pf"].append([res["mae_per_factor"][n] for n in names])
        if r == 0:
            first_classes, first_images = classes, images

    out: dict = {
        "num_samples": int(num_samples),
        "repeats": int(repeats),
        "readers_used": list(readers),
        "renderer": renderer_kind or "none (no ground-truth renderer for this dataset: model-based readers only)",
    }
    by_reader = {}
    for name, p in per.items():
        d = {
            "l2_gen": float(np.mean(p["l2"])),
            "l2_gen_std": float(np.std(p["l2"])),
            "l2_gen_mae_per_factor": _per_factor(np.mean(p["mae_pf"], axis=0), names),
        }
        if p["mig"]:
            d.update(
                {
                    "mig_gen": float(np.mean(p["mig"])),
                    "mig_gen_std": float(np.std(p["mig"])),
                    "mig_gen_per_factor": {names[k]: float(v) for k, v in zip(varied, np.mean(p["mig_pf"], axis=0))},
                }
            )
        by_reader[name] = d
    # headline: the least favourable model-based reader
    if all("mig_gen" in d for d in by_reader.values()):
        out.update(_least_favourable(by_reader, min, "mig_gen", ("mig_gen_std", "mig_gen_per_factor")))
    out.update(_least_favourable(by_reader, max, "l2_gen", ("l2_gen_std", "l2_gen_mae_per_factor")))

    # ---- first repetition: real images of the same codes as the reference -------------------
    classes, images = first_classes, first_images
    real = dataset.images_from_classes(classes, np.random.RandomState(int(seed) + 4242))
    real_reads = {}
    for name, reader in readers.items():
        g = first[name]
        rr = reading_flags(reader, real, dataset, renders=renderer_kind is not None)
        real_reads[name] = rr
        d = by_reader[name]
        d["accuracy_generated"] = _per_factor((g["classes"] == classes).mean(axis=0), names)
        d["accuracy_real"] = _per_factor((rr["classes"] == classes).mean(axis=0), names)
        real_codes = space.classes_to_code(rr["classes"])
        d["l2_real"] = l2(real_codes, space.classes_to_code(classes), names)["l2"]
        if varied and space.num_factors >= 2:
            d["mig_real"] = float(np.mean(mig_per_factor(real_codes, classes[:, varied])))
        d["ood"] = {
            "confidence_generated": _per_factor(g["confidence"].mean(axis=0), names),
            "confidence_real": _per_factor(rr["confidence"].mean(axis=0), names),
            "unsure_generated": _per_factor(g["unsure"].mean(axis=0), names),
            "unsure_real": _per_factor(rr["unsure"].mean(axis=0), names),
            "flagged_generated": float(g["flagged"].mean()),
            "flagged_real": float(rr["flagged"].mean()),
        }
        if "unexplained" in g:
            d["ood"].update(
                {
                    "unexplained_generated": float(g["unexplained"].mean()),
                    "unexplained_real": float(rr["unexplained"].mean()),
                }
            )
        sym_gen = symmetry_check(g["classes"], classes, space)
        if sym_gen is not None:
            sym_real = symmetry_check(rr["classes"], classes, space)
            d["symmetry"] = {
                label: {
                    "told_apart_generated": sym_gen[label]["told_apart"],
                    "told_apart_real": sym_real[label]["told_apart"],
                    "symmetric_readings_generated": sym_gen[label]["symmetric_readings"],
                    "symmetric_readings_real": sym_real[label]["symmetric_readings"],
                    "chance": sym_gen[label]["chance"],
                }
                for label in sym_gen
            }
    out["readers"] = by_reader
    agreement = {}
    for a, b in itertools.combinations(readers, 2):
        agreement[f"{a} vs {b}"] = {
            "generated": _agreement(first[a]["classes"], first[b]["classes"], names),
            "real": _agreement(real_reads[a]["classes"], real_reads[b]["classes"], names),
        }

    # ---- the ground-truth renderer ------------------------------------------------------------
    if renderer_kind is not None:
        exact = dataset.images_from_classes(classes)
        dist = render_distance(images, exact)
        ren = {
            "kind": renderer_kind,
            "render_mse_mean": float(dist.mean()),
            "render_mse_median": float(np.median(dist)),
            "images": len(images),
        }
        if search is not None and int(render_samples) > 0:
            m = min(int(render_samples), len(images))
            found = search.nearest(images[:m], classes[:m])
            read = found["nearest_classes"]
            pixels = float(np.prod(images.shape[1:])) * 255.0**2
            det = found["determined"]
            ren.update(
                {
                    "exact_search_images": m,
                    "exact_match_rate": float(found["match"][det].mean()) if det.any() else float("nan"),
                    "exact_search_unfinished": int((~found["finished"]).sum()),
                    "exact_search_undetermined": int((~det).sum()),
                    "nearest_mse_mean": float((found["nearest_d2"] / pixels).mean()),
                    "accuracy_generated": _per_factor((read == classes[:m]).mean(axis=0), names),
                    "candidates_measured_mean": float(found["candidates"].mean()),
                }
            )
            # off the grid: even the nearest real image leaves more than RENDER_FLAG of the image unexplained
            ren["off_grid_generated"] = float(
                (_relative_residual(images[:m], dataset.images_from_classes(read)) > RENDER_FLAG).mean()
            )
            reading = space.classes_to_code(read)
            if varied and space.num_factors >= 2 and m >= 2:
                ren["mig_gen"] = float(np.mean(mig_per_factor(reading, classes[:m][:, varied])))
            ren["l2_gen"] = l2(reading, space.classes_to_code(classes[:m]), names)["l2"]
            for name in readers:
                agreement[f"{name} vs renderer"] = {"generated": _agreement(first[name]["classes"][:m], read, names)}
        out["renderer_reader"] = ren
    out["agreement"] = agreement
    if return_features:
        out["features"] = features
    return out
