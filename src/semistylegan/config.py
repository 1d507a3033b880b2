"""Training configuration: one dataclass, named presets, validation.

A preset fills in sizes and budgets for a dataset and a machine; command-line options
override single fields. The whole config is saved as config.json in the run directory and
inside every snapshot, so a run can be evaluated and resumed from its directory alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field

from semistylegan.errors import UserError

__all__ = ["TrainConfig", "PRESETS", "make_config", "METHODS"]

METHODS = ("semi", "info", "semi-fine", "beta-vae", "beta-tcvae", "factor-vae", "infogan-cr", "encoder-only", "encoder-mixup")


@dataclass
class TrainConfig:
    # What to train.
    preset: str = "dsprites-cpu32"
    dataset: str = "dsprites"           # Dataset name (semistylegan.data.DATASETS).
    data_path: str | None = None        # Official files / folder; None = procedural where possible.
    resolution: int = 32                # Training resolution (power of two).
    method: str = "semi"                # semi = Semi-StyleGAN (eqs 3-7), info = Info-StyleGAN (eqs 1-2).
    labeled_fraction: float = 0.01      # eta: fraction of images whose codes training may see.
    # Loss weights (SPEC.md): gamma_G = beta = gamma, gamma_E = 0 (semi) or gamma (info), alpha = 1.
    gamma: float = 1.0                  # Realism vs disentanglement trade-off.
    gamma_G: float | None = None        # Weight of L_unsup in G's loss (default gamma).
    gamma_E: float | None = None        # Weight of L_unsup in D/E's loss (default 0 for semi, gamma for info).
    beta: float | None = None           # Weight of L_sup (default gamma).
    alpha: float = 1.0                  # Weight of the MixUp smoothness term L_sr (0 disables it).
    alpha_E: float | None = None        # Weight of L_sr in D/E's loss (default alpha). 0: E learns only
                                        # from labelled reals and no longer reads G's half of the mixes.
    mixup_xi: float = 0.75              # lambda ~ Beta(xi, xi), lambda' = max(lambda, 1 - lambda).
    code_head: str = "regress"          # E: regress (SPEC.md, one output per factor, L2 norm) or
                                        # classify (a softmax per factor, cross-entropy; grid factors).
    fake_classes: float = 0.0           # With code_head classify: weight of a D/E term that teaches E
                                        # G's images as classes of their own (ADC-GAN); 0 = off.
    encoder: str = "shared"             # E: a head on D's trunk (shared, SPEC.md) or a plain CNN of its
                                        # own (separate; nets/encoder.py, Adam(0.9, 0.999) at lr).
    encoder_noise: float = 0.0          # separate E: std of Gaussian noise on every image E reads in training.
    cond_gan: float = 0.0               # Weight of a pair (projection) real/fake head on the labelled
                                        # pairs of J vs (G(c', z), c'); not in SPEC.md, 0 = off.
    r1_gamma: float = 10.0              # R1 weight (penalty r1_gamma / 2 * |grad|^2).
    r1_interval: int = 16               # Lazy R1: every this many steps (>= 1; r1_gamma 0 turns R1 off).
    # Networks.
    z_dim: int = 32                     # Nuisance noise dimensions.
    w_dim: int = 64                     # Style vector dimensions.
    mapping_layers: int = 3             # Mapping network depth (the paper's small model uses 3).
    mapping_lr_mul: float = 0.01        # Learning-rate multiplier of the mapping layers (StyleGAN: 0.01).
    channel_base: int = 2048            # Width at resolution r: min(channel_base / r, channel_max).
    channel_max: int = 64
    mbstd_group: int = 4                # Minibatch-stddev group size.
    # Optimisation.
    batch: int = 32                     # Global batch of real and of generated images.
    labeled_batch: int = 32             # Global batch of labelled images for L_sup and L_sr.
    lr: float = 0.002                   # Adam learning rate (G and D), betas (0, 0.99).
    g_plain: bool = False               # G without the equalised learning rate (weights stored at
                                        # run-time scale; nets.layers.store_at_runtime_scale).
    g_beta1: float = 0.0                # G's Adam betas (StyleGAN: 0, 0.99).
    g_beta2: float = 0.99
    d_plain: bool = False               # The same for D (and E's head on D's trunk).
    d_beta1: float = 0.0                # D's Adam betas (raised to the lazy-R1 ratio's power).
    d_beta2: float = 0.99
    ema_kimg: float = 10.0              # EMA half-life of G in thousands of images.
    ema_rampup: float = 0.05            # EMA half-life at most this fraction of images seen.
    kimg: float = 100.0                 # Training length in thousands of real images.
    seed: int = 0
    # Bookkeeping.
    snapshot_kimg: float = 10.0         # Write a snapshot every this many kimg (and at the end).
    grid_kimg: float = 10.0             # Write a traversal grid every this many kimg.
    metrics_kimg: float = 0.0           # Quick metrics every this many kimg (0 = only at the end).
    metrics_samples: int = 2000         # Samples for the quick in-training metrics.
    keep_snapshots: int = 3             # How many periodic snapshots to keep (the newest).
    log_every: int = 20                 # Steps between stats.jsonl lines.
    # Speed.
    device: str = "auto"                # auto, cpu, cuda.
    channels_last: bool = False
    bf16: bool = False                  # bfloat16 autocast (CPU and GPU).
    deterministic: bool = True          # torch.use_deterministic_algorithms on CPU.
    extra: dict = field(default_factory=dict)  # Method-specific options (baselines).

    # ------------------------------------------------------------------------------------
    @property
    def weights(self) -> dict[str, float]:
        """Resolved loss weights of eqs (2), (4), (7)."""
        gamma_G = self.gamma if self.gamma_G is None else self.gamma_G
        beta = self.gamma if self.beta is None else self.beta
        if self.gamma_E is not None:
            gamma_E = self.gamma_E
        else:
            gamma_E = self.gamma if self.method == "info" else 0.0
        if self.method == "info":
            beta, alpha, alpha_E = 0.0, 0.0, 0.0
        else:
            alpha = self.alpha
            alpha_E = self.alpha if self.alpha_E is None else self.alpha_E
        return {"gamma_G": gamma_G, "gamma_E": gamma_E, "beta": beta, "alpha": alpha, "alpha_E": alpha_E}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def parse_set(cls, pairs: list[str] | None) -> dict:
        """`--set KEY=VALUE` strings (the CLI's and the bench scripts') -> overrides for
        make_config. A KEY that names a config field sets that field, cast to the type of its
        default (bool fields take true/false; fields whose default is None take numbers); any
        other KEY is a method option, stored in `extra` (the VALUE parsed as JSON when it is
        JSON, else kept as a string) and checked by the method."""
        defaults = cls()
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        out: dict = {}
        extra: dict = {}
        for pair in pairs or ():
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UserError(f"--set expects KEY=VALUE, got '{pair}'")
            if key == "extra":
                raise UserError("--set extra=...: give each method option as its own --set KEY=VALUE")
            if key not in names:
                try:
                    extra[key] = json.loads(value)
                except json.JSONDecodeError:
                    extra[key] = value
                continue
            default = getattr(defaults, key)
            try:
                if isinstance(default, bool):
                    if value not in ("true", "false"):
                        raise ValueError
                    out[key] = value == "true"
                elif isinstance(default, str):
                    out[key] = value
                elif isinstance(default, int):
                    out[key] = int(value)
                else:
                    out[key] = float(value)
            except ValueError:
                kind = "true or false" if isinstance(default, bool) else type(default if default is not None else 0.0).__name__
                raise UserError(f"--set {pair}: {key} takes {kind}") from None
        if extra:
            out["extra"] = extra
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"config has unknown keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    # Every numeric field's range, checked in one place: name -> (low, high, low inclusive, high inclusive).
    # None bounds are open; a field whose default is None may also be None (= derived). kimg must also
    # cover one batch (checked below the table), so a run always trains at least one step.
    RANGES = {
        "labeled_fraction": (0, 1, True, True), "gamma": (0, None, True, False), "gamma_G": (0, None, True, False),
        "gamma_E": (0, None, True, False), "beta": (0, None, True, False), "alpha": (0, None, True, False),
        "alpha_E": (0, None, True, False), "mixup_xi": (0, None, False, False), "fake_classes": (0, None, True, False),
        "encoder_noise": (0, None, True, False), "cond_gan": (0, None, True, False), "r1_gamma": (0, None, True, False),
        "r1_interval": (1, None, True, False), "z_dim": (1, None, True, False), "w_dim": (1, None, True, False),
        "mapping_layers": (1, None, True, False), "mapping_lr_mul": (0, None, False, False),
        "channel_base": (1, None, True, False), "channel_max": (1, None, True, False),
        "mbstd_group": (1, None, True, False), "batch": (1, None, True, False), "labeled_batch": (1, None, True, False),
        "lr": (0, None, False, False), "g_beta1": (0, 1, True, False), "g_beta2": (0, 1, True, False),
        "d_beta1": (0, 1, True, False), "d_beta2": (0, 1, True, False), "ema_kimg": (0, None, True, False),
        "ema_rampup": (0, None, True, False), "kimg": (0, None, False, False), "seed": (0, 2**63 - 1, True, True),
        "snapshot_kimg": (0, None, True, False), "grid_kimg": (0, None, True, False),
        "metrics_kimg": (0, None, True, False), "metrics_samples": (1, None, True, False),
        "keep_snapshots": (1, None, True, False), "log_every": (1, None, True, False),
        "resolution": (4, 4096, True, True),
    }

    def _check_types_and_ranges(self):
        """Each field has its declared type (config.json may have been edited) and each number its range."""
        kinds = {"int": numbers.Integral, "float": numbers.Real, "str": str, "bool": bool, "dict": dict}
        declared = {f.name: str(f.type).split(" | ") for f in dataclasses.fields(self)}
        for name, types in declared.items():
            v = getattr(self, name)
            if v is None and "None" in types:
                continue
            if not isinstance(v, kinds.get(types[0], object)) or (isinstance(v, bool) and types[0] != "bool"):
                raise UserError(f"{name} must be of type {types[0]}, got {type(v).__name__} {v!r:.60}")
        for name, (low, high, low_in, high_in) in self.RANGES.items():
            v = getattr(self, name, None)  # None: derived, or a field this version does not have
            if v is None:
                continue
            fits = ((low is None or (v >= low if low_in else v > low))
                    and (high is None or (v <= high if high_in else v < high)))
            if not math.isfinite(v):
                raise UserError(f"{name} must be a finite number, got {v}")
            if not fits:
                if high is not None:
                    bounds = f"in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
                elif declared[name][0] == "int":
                    bounds = f"an integer {'>=' if low_in else '>'} {low}"
                else:
                    bounds = f"a {'non-negative' if low_in else 'positive'} number" if low == 0 else f"a number > {low}"
                raise UserError(f"{name} must be {bounds}, got {v}")
        if self.kimg * 1000 < self.batch:
            raise UserError(f"kimg {self.kimg:g} is less than one batch of {self.batch} images "
                            f"({self.batch / 1000:g} kimg); a run trains at least one step")

    def validate(self) -> "TrainConfig":
        self._check_types_and_ranges()
        if self.method not in METHODS:
            raise UserError(f"unknown method '{self.method}'; choose one of: {', '.join(METHODS)}")
        if not (0.0 <= self.labeled_fraction <= 1.0):
            raise UserError(f"--labeled-fraction must be in [0, 1], got {self.labeled_fraction}")
        if self.method in ("semi", "semi-fine") and self.labeled_fraction == 0.0:
            raise UserError("Semi-StyleGAN needs labels: use --labeled-fraction > 0, or --method info for eta = 0")
        if self.cond_gan > 0 and self.method != "semi":
            raise UserError(f"--cond-gan needs --method semi (labelled pairs and a conditional generator), not {self.method}")
        if self.code_head not in ("regress", "classify"):
            raise UserError(f"--code-head must be regress or classify, got {self.code_head!r}")
        if self.code_head == "classify" and self.method not in ("semi", "info", "semi-fine"):
            raise UserError(f"--code-head classify needs --method semi, info or semi-fine, not {self.method}")
        if self.encoder not in ("shared", "separate"):
            raise UserError(f"--encoder must be shared or separate, got {self.encoder!r}")
        if self.encoder == "separate" and self.method not in ("semi", "info", "semi-fine"):
            raise UserError(f"--encoder separate needs --method semi, info or semi-fine, not {self.method}")
        if self.encoder_noise > 0 and self.encoder != "separate":
            raise UserError("--encoder-noise needs --encoder separate")
        if self.fake_classes > 0 and self.code_head != "classify":
            raise UserError("--fake-classes needs --code-head classify")
        if self.resolution < 4 or self.resolution & (self.resolution - 1):
            raise UserError(f"resolution must be a power of two >= 4, got {self.resolution}")
        for name in ("batch", "labeled_batch"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("gamma", "alpha", "r1_gamma", "lr", "kimg", "mixup_xi", "cond_gan", "fake_classes", "encoder_noise",
                     "gamma_G", "gamma_E", "beta", "alpha_E"):  # the last four may be None (= derived)
            v = getattr(self, name)
            if v is not None and not (v >= 0):  # also refuses NaN
                raise UserError(f"{name} must be a non-negative number, got {v}")
        for name in ("g_beta1", "g_beta2", "d_beta1", "d_beta2"):
            v = getattr(self, name)
            if not (0.0 <= v < 1.0):
                raise UserError(f"{name} must be in [0, 1), got {v}")
        if self.mixup_xi <= 0:
            raise UserError("mixup_xi must be positive")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device must be auto, cpu or cuda, got {self.device}")
        return self


# Presets: name -> overrides of the defaults above.
_CPU_SMALL = dict(z_dim=32, w_dim=64, mapping_layers=3, channel_base=2048, channel_max=64)
PRESETS: dict[str, dict] = {
    # 16x16, a few seconds per kimg: smoke tests.
    "tiny": dict(resolution=16, z_dim=8, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32,
                 batch=16, labeled_batch=16, kimg=1.0, snapshot_kimg=0.5, grid_kimg=0.5, log_every=5,
                 ema_kimg=0.5, metrics_samples=500),
    # The README's quick run: 32x32, narrow at 32x32 so a 2-core laptop finishes in minutes.
    "dsprites-quick": dict(dataset="dsprites", resolution=32, z_dim=16, w_dim=64, mapping_layers=3,
                           channel_base=512, channel_max=64, batch=32, labeled_batch=32, kimg=100.0,
                           snapshot_kimg=10.0, grid_kimg=10.0, ema_kimg=2.0, lr=0.002,
                           channels_last=True, bf16=True),  # 1.43x faster on CPU (BENCHMARKS.md)
    # The README's run: dsprites-quick's networks with the four changes that give its generator
    # control within a CPU budget (none of them in SPEC.md; BENCHMARKS.md section 3, session 4):
    # E a classifier of its own that reads through noise, and G without the equalised lr.
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


# Presets contributed by other modules (baselines, fine-grained editing); absent modules are skipped.
for _module in ("semistylegan.methods.presets",):
    try:
        PRESETS.update(__import__(_module, fromlist=["PRESETS"]).PRESETS)
    except ModuleNotFoundError as _e:
        if _e.name != _module:
            raise


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """Defaults <- preset <- explicit overrides (None values are ignored)."""
    name = preset or TrainConfig.preset
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'; choose one of: {', '.join(sorted(PRESETS))}")
    values = dict(PRESETS[name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["preset"] = name
    try:
        cfg = TrainConfig(**values)
    except TypeError as e:
        raise UserError(f"bad configuration: {e}") from None
    return cfg.validate()
