"""Presets of the baselines (merged into `semistylegan.config.PRESETS`).

Paper-sized presets carry the budgets of the baselines' papers on dSprites 64x64; CPU presets
fit a 2-core machine (BENCHMARKS.md has measured speeds). Method fields (vae_beta, latent_dim,
...) keep their defaults here; the command line overrides them (`--vae-beta 2`).

  vae64          beta-VAE / beta-TCVAE / FactorVAE as in disentanglement_lib's study:
                 batch 64, Adam lr 1e-4, 300,000 steps = 19,200 kimg.
  vae-cpu32      the same networks at 32x32, batch 64, lr 5e-4 (a higher rate than the papers'
                 to learn something in a CPU budget), 200 kimg.
  vae-cpu16      16x16, for quick checks.
  infogancr64    InfoGAN-CR: batch 64, lr 2e-4 (recalled), 230,000 steps ~ 14,700 kimg
                 (about 20 dSprites epochs; the paper's exact length was not verifiable here).
  infogancr-cpu32 32x32, batch 64, lr 5e-4, 200 kimg.
  encoder64      Encoder-only / Encoder-only with MixUp with Semi-StyleGAN's dsprites64 encoder
                 widths: batch = labelled batch 64, lr 1e-3, 2,000 kimg of labelled images.
  encoder-cpu32  Semi-StyleGAN's dsprites-cpu32 encoder widths, batch 32, lr 2e-3, 100 kimg.
  encoder-quick32 Semi-StyleGAN's dsprites-quick encoder widths (the CPU study compares the two
                 at equal architecture and equal steps).
"""
from __future__ import annotations

_BOOKKEEPING_GPU = dict(snapshot_kimg=500.0, grid_kimg=500.0, metrics_kimg=2000.0, log_every=100)
_BOOKKEEPING_CPU = dict(snapshot_kimg=10.0, grid_kimg=50.0, metrics_kimg=0.0, log_every=20)

PRESETS: dict[str, dict] = {
    "vae64": dict(dataset="dsprites", resolution=64, batch=64, labeled_batch=64, lr=1e-4, kimg=19200.0,
                  **_BOOKKEEPING_GPU),
    "vae-cpu32": dict(dataset="dsprites", resolution=32, batch=64, labeled_batch=64, lr=5e-4, kimg=200.0,
                      **_BOOKKEEPING_CPU),
    "vae-cpu16": dict(dataset="dsprites", resolution=16, batch=64, labeled_batch=64, lr=5e-4, kimg=20.0,
                      snapshot_kimg=5.0, grid_kimg=10.0, log_every=10, metrics_samples=1000),
    "infogancr64": dict(dataset="dsprites", resolution=64, batch=64, labeled_batch=64, lr=2e-4, kimg=14720.0,
                        ema_kimg=10.0, **_BOOKKEEPING_GPU),
    "infogancr-cpu32": dict(dataset="dsprites", resolution=32, batch=64, labeled_batch=64, lr=5e-4, kimg=200.0,
                            ema_kimg=2.0, **_BOOKKEEPING_CPU),
    "encoder64": dict(dataset="dsprites", resolution=64, channel_base=16384, channel_max=256, batch=64,
                      labeled_batch=64, lr=1e-3, kimg=2000.0, **_BOOKKEEPING_GPU),
    "encoder-cpu32": dict(dataset="dsprites", resolution=32, channel_base=2048, channel_max=64, batch=32,
                          labeled_batch=32, lr=2e-3, kimg=100.0, **_BOOKKEEPING_CPU),
    # Must match dsprites-quick's encoder (widths, bf16 autocast, channels_last); a test checks it.
    "encoder-quick32": dict(dataset="dsprites", resolution=32, z_dim=16, w_dim=64, mapping_layers=3, channel_base=512,
                            channel_max=64, batch=32, labeled_batch=32, lr=2e-3, kimg=40.0, channels_last=True,
                            bf16=True, **_BOOKKEEPING_CPU),
}
# Same sizes on 3DShapes (CPU study) and at the paper resolutions of the ablation datasets.
for _name in ("vae-cpu32", "infogancr-cpu32", "encoder-cpu32", "encoder-quick32"):
    _prefix, _size = _name.rsplit("-", 1)
    PRESETS[f"{_prefix}-shapes3d-{_size}"] = dict(PRESETS[_name], dataset="shapes3d")
for _ds, _res in (("isaac3d", 128), ("falcor3d", 128)):
    PRESETS[f"encoder-{_ds}{_res}"] = dict(dataset=_ds, resolution=_res, channel_base=32768, channel_max=512,
                                           batch=32, labeled_batch=32, lr=1.5e-3, kimg=2000.0, **_BOOKKEEPING_GPU)
