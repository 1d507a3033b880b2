"""Training configuration: one dataclass, named presets, validation.

Every option is one field of `TrainConfig`, declared once with `opt(default, help, ...)`: its
one-line help feeds `semistylegan train --help` (commands/train.py builds one flag per field)
and the README's option table (`python -m semistylegan.config --markdown`), and its range is
checked by `validate`. Method-specific fields (`method=True`) may only be set for a method that
lists them in its `fields` (methods/*.py), so a flag the method would ignore is refused.

A preset fills in sizes and budgets for a dataset and a machine; command-line options
override single fields. The whole config is saved as config.json in the run directory and
inside every snapshot, so a run can be evaluated and resumed from its directory alone.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field

from semistylegan.errors import UserError

__all__ = ["TrainConfig", "PRESETS", "make_config", "opt", "method_fields", "REMOVED_FIELDS", "read_config_file"]


def opt(default, help: str, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
        choices: tuple | None = None, method: bool = False, power_of_two: bool = False, factory=None):
    """A config field: its default, its one-line help, and its checks. low/high: the allowed
    range (closed unless low_open/high_open; numbers must also be finite); choices: the allowed
    strings; method: only a method that lists it in `fields` may set it; factory: the default's
    maker for a table (dict) field, instead of `default`."""
    meta = dict(help=help, low=low, high=high, low_open=low_open, high_open=high_open, choices=choices,
                method=method, power_of_two=power_of_two)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# Fields of earlier versions that measured no help and were removed (docs/negative-results.md),
# with the value that meant "off": a saved config holding that value still loads.
REMOVED_FIELDS = {"d_plain": False, "d_beta1": 0.0, "d_beta2": 0.99, "fake_classes": 0.0, "cond_gan": 0.0,
                  "coarse_inject": False, "recon_edges": 0.0, "coarse_gray": False, "skip_gray": False,
                  "recon_hard_frac": 0.05}


@dataclass
class TrainConfig:
    # What to train.
    preset: str = opt("dsprites-cpu32", "the named preset this config started from")
    dataset: str = opt("dsprites", "dataset name (docs/datasets.md lists them)")
    data_path: str | None = opt(None, "official dataset file or folder; none = procedural where possible")
    data_options: dict = opt(None, "dataset options for make_dataset, e.g. a folder's {\"continuous\": [\"size\"], "
                                   "\"bins\": 5} (--data-options KEY=VALUE, repeatable; docs/datasets.md)",
                             factory=dict)
    resolution: int = opt(32, "training resolution (a power of two)", low=4, high=4096, power_of_two=True)
    method: str = opt("semi", "semi (Semi-StyleGAN), info (Info-StyleGAN), semi-fine, or a baseline")
    labeled_fraction: float = opt(0.01, "eta: the fraction of images whose codes training may see", low=0.0, high=1.0)
    # Loss weights (docs/method.md): gamma_G = beta = gamma, gamma_E = 0 (semi) or gamma (info), alpha = 1.
    gamma: float = opt(1.0, "gamma: realism against disentanglement; sets gamma_G and beta", low=0.0, method=True)
    gamma_G: float | None = opt(None, "weight of L_unsup in G's loss, eqs (2), (4) (default gamma)", low=0.0,
                                method=True)
    gamma_E: float | None = opt(None, "weight of L_unsup in D/E's loss (default 0 for semi, gamma for info)",
                                low=0.0, method=True)
    beta: float | None = opt(None, "weight of L_sup, eq (3), in D/E's loss (default gamma)", low=0.0, method=True)
    alpha: float = opt(1.0, "weight of the smoothness term L_sr, eq (6) (0 disables it)", low=0.0, method=True)
    alpha_E: float | None = opt(None, "weight of L_sr in D/E's loss alone (default alpha; 0: E never reads G's "
                                      "half of the mixes)", low=0.0, method=True)
    mixup_xi: float = opt(0.75, "lambda ~ Beta(xi, xi) of the MixUp pairs, eq (5)", low=0.0, low_open=True,
                          method=True)
    code_head: str = opt("regress", "E reads each factor by regression (the paper) or by a softmax over its "
                                    "values (classify; grid factors)", choices=("regress", "classify"), method=True)
    encoder: str = opt("shared", "E as a head on D's trunk (the paper) or a plain CNN of its own (separate)",
                       choices=("shared", "separate"), method=True)
    encoder_noise: float = opt(0.0, "separate E: std of Gaussian noise on every image E reads in training",
                               low=0.0, method=True)
    recon: float = opt(0.0, "weight of G's labelled reconstruction: mean |G(c, z) - x| over the labelled x of "
                            "code c (0 = off)", low=0.0, method=True)
    recon_hard: float = opt(0.0, "weight of the same reconstruction over the worst 5% of each image's pixels "
                                 "(0 = off)", low=0.0, method=True)
    warmup_kimg: float = opt(0.0, "semi: the first this many kimg are warm-up steps, in which G learns alone, by "
                                   "the squared error of G(c, z) to the labelled images; D and E wait, no reals "
                                   "are drawn, and each step counts its labelled batch (0 = off)",
                             low=0.0, method=True)
    r1_gamma: float = opt(10.0, "R1 weight (penalty r1_gamma / 2 * |grad D(x)|^2 on reals; 0 = off)", low=0.0,
                          method=True)
    r1_interval: int = opt(16, "lazy R1: every this many steps, its weight scaled by the interval", low=1,
                           method=True)
    # Semi-StyleGAN-fine.
    fine_factors: str = opt("", "semi-fine: comma-separated fine factors (empty = the dataset's default)",
                            method=True)
    fine_input_res: int = opt(0, "semi-fine: resolution of G's coarse input (0 = min(16, resolution / 2))",
                              low=0, method=True)
    fine_head_res: int = opt(0, "semi-fine: resolution of the D block feeding E_fine (0 = min(32, resolution))",
                             low=0, method=True)
    coarse_skip: bool = opt(False, "semi-fine: the coarse input is also added to G's RGB skip path", method=True)
    input_const: bool = opt(False, "semi-fine: a learned constant feature map added to G's input features",
                            method=True)
    hue_jitter: bool = opt(False, "semi-fine: in training G sees its coarse input with hues turned by a random "
                                  "angle per image", method=True)
    # Baselines.
    latent_dim: int = opt(0, "VAEs and InfoGAN-CR: latent size (0 = the method's default: 10, or K)", low=0,
                          method=True)
    noise_dim: int = opt(5, "InfoGAN-CR: noise dimensions beside the code", low=0, method=True)
    reconstruction: str = opt("bernoulli", "VAEs: the decoder's likelihood", choices=("bernoulli", "gaussian"),
                              method=True)
    vae_beta: float = opt(4.0, "beta-VAE: the KL weight", low=0.0, method=True)
    tc_beta: float = opt(6.0, "beta-TCVAE: the total-correlation weight", low=0.0, method=True)
    factor_gamma: float = opt(35.0, "FactorVAE: the total-correlation weight", low=0.0, method=True)
    factor_d_lr: float = opt(1e-4, "FactorVAE: the learning rate of its discriminator", low=0.0, low_open=True,
                             method=True)
    info_weight: float = opt(0.2, "InfoGAN-CR: weight of the InfoGAN code loss", low=0.0, method=True)
    cr_weight: float = opt(2.0, "InfoGAN-CR: weight of the contrastive regulariser", low=0.0, method=True)
    cr_start_kimg: float = opt(0.0, "InfoGAN-CR: the regulariser starts here", low=0.0, method=True)
    cr_ramp_kimg: float = opt(0.0, "InfoGAN-CR: its weight ramps up over this many kimg", low=0.0, method=True)
    cr_gap: float = opt(0.0, "InfoGAN-CR: the code gap of the regulariser's pairs", low=0.0, high=2.0, high_open=True,
                        method=True)
    cr_gap_kimg: float = opt(0.0, "InfoGAN-CR: the gap grows to cr_gap over this many kimg", low=0.0, method=True)
    # Networks.
    z_dim: int = opt(32, "nuisance noise dimensions", low=1)
    w_dim: int = opt(64, "style vector dimensions", low=1)
    mapping_layers: int = opt(3, "mapping network depth (the paper's small model: 3)", low=1)
    mapping_lr_mul: float = opt(0.01, "learning-rate multiplier of the mapping layers (StyleGAN: 0.01)", low=0.0,
                                low_open=True)
    channel_base: int = opt(2048, "width at resolution r: min(channel_base / r, channel_max)", low=1)
    channel_max: int = opt(64, "the widest layer", low=1)
    mbstd_group: int = opt(4, "minibatch-stddev group size (0 = off)", low=0)
    # Optimisation.
    batch: int = opt(32, "global batch of real and of generated images", low=1)
    labeled_batch: int = opt(32, "global batch of labelled images for L_sup and L_sr", low=1)
    lr: float = opt(0.002, "Adam learning rate of G and D", low=0.0, low_open=True)
    g_plain: bool = opt(False, "G without the equalised learning rate (weights stored at run-time scale)",
                        method=True)
    g_beta1: float = opt(0.0, "G's Adam beta1 (StyleGAN: 0)", low=0.0, high=1.0, high_open=True, method=True)
    g_beta2: float = opt(0.99, "G's Adam beta2 (StyleGAN: 0.99)", low=0.0, high=1.0, high_open=True, method=True)
    ema_kimg: float = opt(10.0, "EMA half-life of G in thousands of images", low=0.0)
    ema_rampup: float = opt(0.05, "EMA half-life at most this fraction of the images seen (0 = no ramp)", low=0.0)
    kimg: float = opt(100.0, "training length in thousands of real images (the total, also on resume)", low=0.0,
                      low_open=True)
    seed: int = opt(0, "random seed (networks, data, every random draw)", low=0, high=2**63 - 1)
    # Bookkeeping.
    snapshot_kimg: float = opt(10.0, "write a snapshot every this many kimg (and at the end)", low=0.0,
                               low_open=True)
    grid_kimg: float = opt(10.0, "write a traversal grid every this many kimg (0 = at the end only)", low=0.0)
    metrics_kimg: float = opt(0.0, "quick metrics every this many kimg (0 = at the end only)", low=0.0)
    metrics_samples: int = opt(2000, "samples for the quick in-training metrics", low=2)
    keep_snapshots: int = opt(3, "how many periodic snapshots to keep (the newest)", low=1)
    log_every: int = opt(20, "steps between stats.jsonl lines", low=1)
    # Speed.
    device: str = opt("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    channels_last: bool = opt(False, "channels_last memory format")
    bf16: bool = opt(False, "mixed precision: bfloat16 autocast (CPU, and GPUs that have it; float16 with a "
                            "gradient scaler on older GPUs)")
    compile: bool = opt(False, "torch.compile the training networks; for GPUs (on a CPU it measured no faster, "
                               "after 100 s of compiling: BENCHMARKS.md)")
    deterministic: bool = opt(True, "torch.use_deterministic_algorithms on CPU")

    # ------------------------------------------------------------------------------------
    @property
    def weights(self) -> dict[str, float]:
        """Resolved loss weights of eqs (2), (4), (7) (Info-StyleGAN: no labelled terms)."""
        from semistylegan.methods import method_class

        gamma_G = self.gamma if self.gamma_G is None else self.gamma_G
        beta = self.gamma if self.beta is None else self.beta
        unsupervised = not method_class(self.method).uses_labels
        if self.gamma_E is not None:
            gamma_E = self.gamma_E
        else:
            gamma_E = self.gamma if unsupervised else 0.0
        if unsupervised:
            beta, alpha, alpha_E = 0.0, 0.0, 0.0
        else:
            alpha = self.alpha
            alpha_E = self.alpha if self.alpha_E is None else self.alpha_E
        return {"gamma_G": gamma_G, "gamma_E": gamma_E, "beta": beta, "alpha": alpha, "alpha_E": alpha_E}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        """A saved config (config.json, a snapshot's, a --config file). Method options that older
        versions kept under `extra` become fields; a removed field at its "off" value is dropped."""
        return cls(**cls.normalise(d, source))

    @classmethod
    def normalise(cls, d: dict, source: str = "config") -> dict:
        """The fields of a saved (possibly partial) config, checked and converted as from_dict does."""
        d = dict(d)
        extra = d.pop("extra", None) or {}
        if not isinstance(extra, dict):
            raise UserError(f"{source}: 'extra' must be a table of options")
        for key, value in extra.items():
            d.setdefault(key, value)
        if "d_lr" in d and d.get("method") == "factor-vae":
            d.setdefault("factor_d_lr", d.pop("d_lr"))
        for key, off in REMOVED_FIELDS.items():
            if key in d:
                if d[key] != off:
                    raise UserError(f"{source}: uses {key} = {d[key]!r}, an option this version no longer has "
                                    "(docs/negative-results.md)")
                del d[key]
        if isinstance(d.get("fine_factors"), (list, tuple)):
            d["fine_factors"] = ",".join(str(x) for x in d["fine_factors"])
        types = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(types))
        if unknown:
            raise UserError(f"{source}: unknown field(s): {', '.join(unknown)}")
        for key, value in d.items():
            d[key] = _coerce(types[key], value, source)
        return d

    def validate(self) -> "TrainConfig":
        from semistylegan.methods import METHOD_CLASSES, method_class

        if self.method not in METHOD_CLASSES:
            raise UserError(f"unknown method '{self.method}'; choose one of: {', '.join(METHOD_CLASSES)}")
        for f in dataclasses.fields(self):
            _check_range(f, getattr(self, f.name))
        cls = method_class(self.method)
        if cls.uses_labels and self.labeled_fraction == 0.0:
            raise UserError(f"--method {self.method} needs labels: use --labeled-fraction > 0"
                            + (", or --method info for eta = 0" if self.method == "semi" else ""))
        if self.encoder_noise > 0 and self.encoder != "separate":
            raise UserError("--encoder-noise needs --encoder separate")
        if not math.isfinite(self.kimg * 1000 / self.batch) or self.kimg * 1000 < self.batch:
            raise UserError(f"--kimg {self.kimg:g} is less than one batch of {self.batch} images")
        return self


def _coerce(f: dataclasses.Field, value, source: str):
    """A saved value of the field's type (JSON has no tuples; ints may stand for floats)."""
    if f.default_factory is dict:  # a table of options (data_options)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise UserError(f"{source}: field {f.name} must be a table of options, got {value!r}")
        return dict(value)
    default = f.default
    kind = type(default) if default is not None else float
    if value is None and default is None:
        return None
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, str) if kind is str else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, (int, float)) and not isinstance(value, bool))
    if f.name == "data_path" and (value is None or isinstance(value, str)):
        return value
    if not ok:
        raise UserError(f"{source}: field {f.name} must be {_kind_name(kind)}, got {value!r}")
    return float(value) if kind is float else value


def _kind_name(kind) -> str:
    return {bool: "true or false", str: "a string", int: "an integer", float: "a number"}[kind]


def _check_range(f: dataclasses.Field, v) -> None:
    m = f.metadata
    flag = "--" + f.name.replace("_", "-").lower()
    if v is None:
        return
    if m.get("choices") and v not in m["choices"]:
        raise UserError(f"{flag} must be one of {', '.join(m['choices'])}, got {v!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    if not math.isfinite(v):
        raise UserError(f"{flag} must be a finite number, got {v}")
    low, high = m.get("low"), m.get("high")
    if low is not None and (v < low or (m["low_open"] and v == low)):
        raise UserError(f"{flag} must be {'>' if m['low_open'] else '>='} {low}, got {v:g}")
    if high is not None and (v > high or (m["high_open"] and v == high)):
        raise UserError(f"{flag} must be {'<' if m['high_open'] else '<='} {high}, got {v:g}")
    if m.get("power_of_two") and int(v) & (int(v) - 1):
        raise UserError(f"{flag} must be a power of two, got {v}")


def method_fields() -> tuple[str, ...]:
    """The fields only some methods use (each method lists the ones it does in `fields`)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("method"))


# Presets: name -> overrides of the defaults above.
_CPU_SMALL = dict(z_dim=32, w_dim=64, mapping_layers=3, channel_base=2048, channel_max=64)
PRESETS: dict[str, dict] = {
    # 16x16, a few seconds per kimg: smoke tests.
    "tiny": dict(resolution=16, z_dim=8, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32,
                 batch=16, labeled_batch=16, kimg=1.0, snapshot_kimg=0.5, grid_kimg=0.5, log_every=5,
                 ema_kimg=0.5, metrics_samples=500),
    # The paper's networks (shared-trunk regressor E), narrow at 32x32: the study's Semi-StyleGAN.
    "dsprites-quick": dict(dataset="dsprites", resolution=32, z_dim=16, w_dim=64, mapping_layers=3,
                           channel_base=512, channel_max=64, batch=32, labeled_batch=32, kimg=100.0,
                           snapshot_kimg=10.0, grid_kimg=10.0, ema_kimg=2.0, lr=0.002,
                           channels_last=True, bf16=True),
    # The README's quick run: dsprites-quick's networks with the changes that give its generator
    # control within a CPU budget: E a classifier of its own that reads through noise, and G
    # without the equalised lr (docs/method.md, "This project's additions").
    "dsprites-ctrl": dict(dataset="dsprites", resolution=32, z_dim=16, w_dim=64, mapping_layers=3,
                          channel_base=512, channel_max=64, batch=32, labeled_batch=32, kimg=120.0,
                          snapshot_kimg=10.0, grid_kimg=10.0, ema_kimg=2.0, lr=0.002,
                          channels_last=True, bf16=True, encoder="separate", encoder_noise=0.5,
                          code_head="classify", g_plain=True, g_beta1=0.9, g_beta2=0.999),
    # The paper's small model (Info-StyleGAN*, about 0.7M parameters) at 32x32 on a CPU;
    # channels_last: a 1.2x faster step (BENCHMARKS.md section 2, session 9).
    "dsprites-cpu32": dict(dataset="dsprites", resolution=32, kimg=300.0, ema_kimg=5.0, channels_last=True,
                           **_CPU_SMALL),
    # 64x64, the paper's dSprites resolution, CPU-sized widths.
    "dsprites-cpu64": dict(dataset="dsprites", resolution=64, channel_base=4096, channel_max=64, z_dim=32,
                           w_dim=64, mapping_layers=3, kimg=300.0, ema_kimg=5.0),
    # GPU presets (widths grow; the paper's full model is "paper-full").
    "dsprites64": dict(dataset="dsprites", resolution=64, channel_base=16384, channel_max=256, z_dim=64,
                       w_dim=256, mapping_layers=4, batch=64, labeled_batch=64, kimg=10000.0, lr=0.001,
                       snapshot_kimg=200.0, grid_kimg=100.0, metrics_kimg=500.0),
    "paper-full": dict(dataset="dsprites", resolution=64, channel_base=32768, channel_max=512, z_dim=512,
                       w_dim=512, mapping_layers=8, batch=32, labeled_batch=32, kimg=44000.0, lr=0.001,
                       snapshot_kimg=500.0, grid_kimg=200.0, metrics_kimg=2000.0),
}
# Per-dataset presets at the paper's resolutions (GPU-sized unless named cpu).
for _name, _res, _lr in (("shapes3d", 64, 0.001), ("mpi3d", 64, 0.001), ("cars3d", 64, 0.001),
                         ("smallnorb", 64, 0.001), ("isaac3d", 128, 0.0015), ("isaac3d", 512, 0.003),
                         ("falcor3d", 128, 0.0015), ("falcor3d", 1024, 0.003), ("celeba", 256, 0.002)):
    PRESETS[f"{_name}{_res}"] = dict(dataset=_name, resolution=_res, channel_base=min(16384 * _res // 64, 32768),
                                     channel_max=512 if _res >= 128 else 256, z_dim=64, w_dim=256,
                                     mapping_layers=4, batch=32, labeled_batch=32, kimg=10000.0, lr=_lr,
                                     snapshot_kimg=200.0, grid_kimg=100.0, metrics_kimg=500.0)
PRESETS["shapes3d-cpu32"] = dict(dataset="shapes3d", resolution=32, kimg=300.0, ema_kimg=5.0, **_CPU_SMALL)
PRESETS["shapes3d-cpu64"] = dict(dataset="shapes3d", resolution=64, channel_base=4096, channel_max=64, z_dim=32,
                                 w_dim=64, mapping_layers=3, kimg=300.0, ema_kimg=5.0)


# The quality recipe: dsprites-ctrl, E trained on labelled reals only (alpha_E = 0) and G also
# reconstructing the labelled images; about 2 hours on one CPU thread (BENCHMARKS.md).
PRESETS["dsprites-2h"] = dict(PRESETS["dsprites-ctrl"], kimg=1200.0, metrics_kimg=100.0, snapshot_kimg=20.0,
                              grid_kimg=50.0, alpha_E=0.0, recon=50.0)
# The README's quick run: a generator that draws every dSprites factor. dsprites-2h's networks and
# losses after a warm-up in which G alone learns the labelled images by squared error (320 kimg =
# 10,000 steps at about a quarter of a GAN step's cost), then 20 kimg of the GAN (BENCHMARKS.md,
# section 1: 6.7 minutes on 2 idle cores of the Intel machine, 9.6 on the AMD one, read off a longer
# run's log; 19.4 on a day the shared Intel machine ran slow).
PRESETS["dsprites-fast"] = dict(PRESETS["dsprites-2h"], kimg=340.0, warmup_kimg=320.0, metrics_kimg=0.0,
                                snapshot_kimg=20.0, grid_kimg=50.0)
# Semi-StyleGAN-fine on procedural 3DShapes 64x64: edit the three hues of a real image and keep
# its layout and object; about an hour on one CPU thread (BENCHMARKS.md).
PRESETS["shapes3d-fine"] = dict(dataset="shapes3d", resolution=64, method="semi-fine", labeled_fraction=0.01,
                                gamma=10.0, channel_base=512, channel_max=32, z_dim=16, w_dim=64, mapping_layers=3,
                                batch=16, labeled_batch=16, lr=0.002, kimg=80.0, ema_kimg=1.0, snapshot_kimg=10.0,
                                grid_kimg=20.0, log_every=10, metrics_samples=200,
                                fine_factors="floor_hue,wall_hue,object_hue", recon=40.0, recon_hard=200.0,
                                coarse_skip=True, input_const=True, hue_jitter=True, code_head="classify",
                                encoder="separate", encoder_noise=0.5, g_plain=True, g_beta1=0.9, g_beta2=0.999)
# The baselines' presets (methods/presets.py).
from semistylegan.methods.presets import PRESETS as _BASELINE_PRESETS  # noqa: E402

PRESETS.update(_BASELINE_PRESETS)
# Encoder-only / Encoder-only with MixUp with exactly dsprites-ctrl's E (architecture, head, input
# noise, numerics, Adam) and its labelled batch, one labelled batch a step: at equal kimg it takes
# as many steps as the Semi-StyleGAN run (the study compares them; a test checks it).
_CTRL = PRESETS["dsprites-ctrl"]
PRESETS["encoder-ctrl32"] = dict(
    {k: _CTRL[k] for k in ("dataset", "resolution", "channel_base", "channel_max", "lr", "channels_last", "bf16",
                           "encoder", "encoder_noise", "code_head", "labeled_batch", "kimg")},
    batch=_CTRL["labeled_batch"], snapshot_kimg=10.0, grid_kimg=50.0, metrics_kimg=0.0, log_every=20)


def make_config(preset: str | None = None, file_values: dict | None = None, **overrides) -> TrainConfig:
    """Defaults <- preset <- file_values (a config file's fields, TrainConfig.normalise'd; None kept)
    <- explicit overrides (None values are ignored). An explicit override of a method-specific
    field the method does not use is refused in one line (a config file may hold every field, as
    a run's config.json does)."""
    from semistylegan.methods import METHOD_CLASSES, method_class

    name = preset or TrainConfig.preset
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'; choose one of: {', '.join(sorted(PRESETS))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if "extra" in given:  # only saved configs of older versions hold `extra` (from_dict reads them)
        raise UserError("method options are config fields now: pass each as its own field, not as 'extra'")
    values = dict(PRESETS[name])
    values.update(file_values or {})
    values.update(given)
    values["preset"] = name
    method = values.get("method", TrainConfig.method)
    if method not in METHOD_CLASSES:
        raise UserError(f"unknown method '{method}'; choose one of: {', '.join(METHOD_CLASSES)}")
    ignored = [k for k in given if k in method_fields() and k not in method_class(method).fields]
    if ignored:
        flags = ", ".join("--" + k.replace("_", "-").lower() for k in ignored)
        raise UserError(f"--method {method} does not use {flags}")
    return TrainConfig.from_dict(values, source="config").validate()


def read_config_file(path) -> dict:
    """The fields a config file sets (TOML or JSON, any of the fields of a run's config.json),
    checked and converted by TrainConfig.normalise: an unknown field or a value of the wrong type
    is a UserError naming it."""
    import json
    import os

    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in (".toml", ".json"):
        raise UserError(f"{name}: a config file is .toml or .json")
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError(f"{name}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{name}: unreadable ({e})") from None
    try:
        if suffix == ".json":
            values = json.loads(text)
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                try:
                    import tomli as tomllib
                except ModuleNotFoundError:
                    raise UserError("reading TOML config files needs Python >= 3.11 (tomllib) or the 'tomli' "
                                    "package; a .json config works everywhere") from None
            values = tomllib.loads(text)
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise UserError(f"{name}: not valid {suffix[1:].upper()} ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise UserError(f"{name}: expected a table of config fields, got {type(values).__name__}")
    return TrainConfig.normalise(values, source=name)


def options_markdown() -> str:
    """The README's option table, from the fields."""
    rows = ["| option | default | what it sets |", "|---|---|---|"]
    for f in dataclasses.fields(TrainConfig):
        if f.name == "preset":
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        rows.append(f"| `--{f.name.replace('_', '-').lower()}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m semistylegan.config --markdown
    if sys.argv[1:] == ["--markdown"]:
        print(options_markdown(), end="")
