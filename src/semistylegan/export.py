"""Export a trained generator (and its encoder) for use without this package.

`export_run(run_dir, out_dir)` writes:

  generator.safetensors  the EMA generator's state_dict (weights and buffers, incl. w_avg)
  generator.pt           TorchScript (torch.jit.trace) of the generator:
                           semi / info:  images = g(codes, z, psi)
                           semi-fine:    images = g(codes, z, psi, image)
                         codes (N, F) float32 in [0, 1] (the factors listed in model.json, in
                         that order), z (N, z_dim) float32 ~ N(0, I), psi a 0-d float32 tensor
                         (truncation, 1 = none), image (N, C, R, R) float32 in [-1, 1] (its
                         box downsample is the coarse content); output (N, C, R, R) in [-1, 1]
                         (clamp before converting: (x.clamp(-1, 1) + 1) * 127.5).
  encoder.pt             TorchScript of the encoder: codes = e(image), image (N, C, R, R) in
                         [-1, 1], codes (N, F) (unclipped; clip to [0, 1] before feeding g).
  model.json             factor names, value counts and ranges, shapes, and the above usage.

Loading needs only torch: `torch.jit.load("generator.pt")`.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from semistylegan.errors import UserError

__all__ = ["EXPORT_FORMAT", "export_run", "GeneratorExport", "EncoderExport"]

EXPORT_FORMAT = "semistylegan-export-v1"


class GeneratorExport(nn.Module):
    """(codes, z, psi[, image]) -> images; truncation written out so psi can be a tensor input."""

    def __init__(self, G: nn.Module, fine: bool):
        super().__init__()
        self.G = G
        self.fine = fine

    def forward(self, codes: torch.Tensor, z: torch.Tensor, psi: torch.Tensor, image: torch.Tensor | None = None):
        w = self.G.mapping(codes, z)
        w_avg = self.G.mapping.w_avg
        w = w_avg + psi * (w - w_avg)
        if self.fine:
            return self.G.synthesis(w, x=self.G.input_conv(self.G.coarse(image)))
        return self.G.synthesis(w)


class EncoderExport(nn.Module):
    def __init__(self, method, D: nn.Module, fine: bool):
        super().__init__()
        self.D = D
        self.fine = fine

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.D.read_codes(image)


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, batch: int = 2) -> dict:
    """Write the export files of the newest snapshot of `run_dir` into `out_dir`; returns model.json."""
    from safetensors.torch import save_file

    from semistylegan.editing import load_editor

    editor = load_editor(run_dir, device="cpu")
    method, nets = editor.method, editor.nets
    G, D = nets["G"].eval(), nets["D"].eval()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    state = {k: v.detach().contiguous().clone() for k, v in G.state_dict().items()}
    save_file(state, str(out / "generator.safetensors"),
              metadata={"format": EXPORT_FORMAT, "method": editor.run.cfg.method})

    gen = GeneratorExport(G, editor.fine).eval()
    enc = EncoderExport(method, D, editor.fine).eval()
    g = torch.Generator().manual_seed(0)
    n, f, r, c = batch, len(editor.names), editor.resolution, editor.channels
    ex_codes = torch.rand(n, f, generator=g)
    ex_z = torch.randn(n, editor.z_dim, generator=g)
    ex_psi = torch.tensor(1.0)
    ex_img = torch.rand(n, c, r, r, generator=g) * 2 - 1
    args = (ex_codes, ex_z, ex_psi, ex_img) if editor.fine else (ex_codes, ex_z, ex_psi)
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks become constants of the trace: the image size is fixed at R x R.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.9 deprecates jit.trace; it still works
        traced_g = torch.jit.trace(gen, args, check_trace=False)
        traced_e = torch.jit.trace(enc, (ex_img,), check_trace=False)
    traced_g.save(str(out / "generator.pt"))
    traced_e.save(str(out / "encoder.pt"))

    info = editor.describe()
    cfg = editor.run.cfg
    model = {
        "format": EXPORT_FORMAT,
        "source": {"run": str(run_dir), "snapshot": str(editor.run.snapshot), "kimg": editor.run.kimg},
        **info,
        "all_factors": [{"name": nm, "values": s} for nm, s in zip(editor.all_names, editor.sizes)],
        "code_convention": "factor with m values: class j has code j / (m - 1), in [0, 1]",
        "architecture": {k: getattr(cfg, k) for k in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max")},
        "files": {
            "generator.safetensors": "EMA generator state_dict (semistylegan.nets Generator/FineGenerator)",
            "generator.pt": ("TorchScript: g(codes, z, psi, image) -> images" if editor.fine
                             else "TorchScript: g(codes, z, psi) -> images"),
            "encoder.pt": "TorchScript: e(image) -> codes (clip to [0, 1])",
        },
        "inputs": {
            "codes": f"float32 (N, {f}) in [0, 1], columns in the order of 'factors'",
            "z": f"float32 (N, {editor.z_dim}), standard normal",
            "psi": "float32 0-d tensor, truncation in [0, 1] (1 = none)",
            **({"image": f"float32 (N, {c}, {r}, {r}) in [-1, 1] (exactly this size); only its box downsample to "
                         f"{method.input_res}x{method.input_res} is used"} if editor.fine else {}),
        },
        "output": f"float32 (N, {c}, {r}, {r}), about [-1, 1]; uint8 = round((x.clamp(-1, 1) + 1) * 127.5)",
    }
    if editor.fine:
        model["fine_input_resolution"] = method.input_res
    (out / "model.json").write_text(json.dumps(model, indent=2) + "\n")
    return model
