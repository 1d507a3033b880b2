"""Export a trained generator and its encoder for use without training code.

`export_run(run_dir, out_dir)` writes:

  generator.safetensors  the EMA generator's state_dict (weights and buffers, incl. w_avg)
  encoder.safetensors    the state_dict of the network E reads with (D with its code head, or
                         D with a separate encoder)
  generator.pt2          torch.export program:  semi / info:  images = g(codes, z, psi)
                                                semi-fine:    images = g(codes, z, psi, image)
  generator.onnx         the same graph in ONNX (inputs named codes, z, psi[, image]; output images)
  encoder.pt2            torch.export program:  codes = e(image)
  encoder.onnx           the same in ONNX (input image, output codes)
  model.json             factor names, value grids, resolution, input shapes and their meaning

Inputs: codes (N, F) float32 in [0, 1] (the factors of model.json, in that order; a factor with
m values has class j at code j / (m - 1)), z (N, z_dim) float32 ~ N(0, I), psi a 0-d float32
tensor (truncation, 1 = none), image (N, C, R, R) float32 in [-1, 1] (semi-fine: its box
downsample is the coarse content). Output (N, C, R, R), about [-1, 1]: clamp before converting
((x.clamp(-1, 1) + 1) * 127.5). The batch size N is free; R is fixed.

Loading needs only torch (and safetensors for the loaders here):
`torch.export.load("generator.pt2").module()`, onnxruntime's InferenceSession("generator.onnx"),
or `semistylegan.load_generator(dir)` / `load_encoder(dir)`, which take the program from the
.pt2 file and the weights from the .safetensors file (so edited weights can be swapped in).
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import torch
import torch.nn as nn

from semistylegan.errors import UserError

__all__ = ["EXPORT_FORMAT", "EXPORT_FILES", "export_run", "GeneratorExport", "EncoderExport", "load_generator",
           "load_encoder", "ExportedGenerator", "ExportedEncoder"]

EXPORT_FORMAT = "semistylegan-export-v2"
EXPORT_FILES = ("model.json", "generator.safetensors", "encoder.safetensors", "generator.pt2", "encoder.pt2",
                "generator.onnx", "encoder.onnx")
ONNX_OPSET = 18


class _PassW(nn.Module):
    """Stands in for G's mapping network: returns its first input, the already truncated w."""

    def forward(self, c, z, truncation_psi=1.0, update_w_avg=False, w_avg_rows=None):
        return c


class GeneratorExport(nn.Module):
    """(codes, z, psi[, image]) -> images, with the truncation as a tensor input.

    G's own forward takes psi as a Python float (and skips the lerp at 1.0), which an exported
    graph would freeze. Here the mapping runs first and the truncation is written out; then G's
    own forward runs on a view of G whose mapping passes that w through, so whatever G does
    after the mapping (coarse input, skips, ...) is exported exactly as trained.
    """

    def __init__(self, G: nn.Module, fine: bool):
        super().__init__()
        self.G = G
        self.fine = fine
        view = copy.copy(G)
        view._modules = dict(G._modules)  # a copy of the module table: G itself keeps its mapping
        view._modules["mapping"] = _PassW()
        object.__setattr__(self, "_after_mapping", view)  # not registered: its weights are G's

    def forward(self, codes: torch.Tensor, z: torch.Tensor, psi: torch.Tensor, image: torch.Tensor | None = None):
        w = self.G.mapping(codes, z)
        w_avg = self.G.mapping.w_avg
        w = w_avg + psi * (w - w_avg)
        if self.fine:
            return self._after_mapping(w, z, image)
        return self._after_mapping(w, z)


class EncoderExport(nn.Module):
    """image -> codes: E's reading (D.read_codes), codes in [0, 1] for a classifier head, raw
    regression outputs otherwise (clip to [0, 1] before feeding G)."""

    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.D.read_codes(image)


def _model_identity(model: dict) -> tuple:
    src = model.get("source", {}) if isinstance(model, dict) else {}
    return (src.get("snapshot"), src.get("kimg"))


def check_out_dir(out: Path, identity: tuple, force: bool) -> None:
    """Refuse a folder that holds another model's export (unless force); before anything is written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if force or not out.is_dir():
        return
    present = [name for name in EXPORT_FILES if (out / name).exists()]
    if not present:
        return
    try:
        old = json.loads((out / "model.json").read_text())
    except (OSError, ValueError):
        old = None
    if old is None or _model_identity(old) != identity:
        raise UserError(f"{out} already holds another model's export ({', '.join(present[:3])}"
                        f"{', ...' if len(present) > 3 else ''}); use --force to replace it")


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False, onnx: bool = True,
               log=None) -> dict:
    """Write the export files of the newest snapshot of `run_dir` into `out_dir`; returns model.json.

    The files are written to a temporary folder next to `out_dir` and moved in at the end, so a
    failure leaves `out_dir` as it was. `log(message)` is called at each stage once the inputs are
    checked (bad input is one line on stderr, with no progress line before it).
    """
    from safetensors.torch import save_file

    from semistylegan.editing import load_editor

    log = log or (lambda message: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    editor = load_editor(run_dir, device="cpu")
    method, nets = editor.method, editor.nets
    G, D = nets["G"].eval(), nets["D"].eval()
    identity = (str(Path(editor.run.snapshot).resolve()), editor.run.kimg)
    check_out_dir(out, identity, force)
    if onnx:
        try:
            import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        except ImportError:
            raise UserError("ONNX export needs the onnx and onnxscript packages: pip install 'semistylegan[export]' "
                            "(or pass --no-onnx)") from None

    gen = GeneratorExport(G, editor.fine).eval()
    enc = EncoderExport(D).eval()
    g = torch.Generator().manual_seed(0)
    n, f, r, c = 2, len(editor.names), editor.resolution, editor.channels
    ex_img = torch.rand(n, c, r, r, generator=g) * 2 - 1
    gen_args = (torch.rand(n, f, generator=g), torch.randn(n, editor.z_dim, generator=g), torch.tensor(1.0))
    gen_names = ["codes", "z", "psi"]
    if editor.fine:
        gen_args, gen_names = gen_args + (ex_img,), gen_names + ["image"]
    batch = torch.export.Dim("batch")
    gen_shapes = tuple(None if name == "psi" else {0: batch} for name in gen_names)
    enc_shapes = ({0: batch},)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        meta = {"format": EXPORT_FORMAT, "method": editor.run.cfg.method}
        save_file({k: v.detach().contiguous().clone() for k, v in G.state_dict().items()},
                  str(tmp / "generator.safetensors"), metadata=meta)
        save_file({k: v.detach().contiguous().clone() for k, v in D.state_dict().items()},
                  str(tmp / "encoder.safetensors"), metadata=meta)
        with torch.no_grad():
            log("torch.export: generator")
            torch.export.save(torch.export.export(gen, gen_args, dynamic_shapes=gen_shapes), str(tmp / "generator.pt2"))
            log("torch.export: encoder")
            torch.export.save(torch.export.export(enc, (ex_img,), dynamic_shapes=enc_shapes), str(tmp / "encoder.pt2"))
            if onnx:
                log("ONNX: generator")
                _onnx(gen, gen_args, gen_shapes, gen_names, ["images"], tmp / "generator.onnx")
                log("ONNX: encoder")
                _onnx(enc, (ex_img,), enc_shapes, ["image"], ["codes"], tmp / "encoder.onnx")
        model = _model_json(editor, method, identity, onnx)
        (tmp / "model.json").write_text(json.dumps(model, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        for path in tmp.iterdir():  # safetensors writes its files owner-only; give them the usual mode
            path.chmod(0o666 & ~umask)
        out.mkdir(parents=True, exist_ok=True)
        for name in EXPORT_FILES:  # a --force over another export must not leave its files behind
            if (out / name).exists() and not (tmp / name).exists():
                (out / name).unlink()
        for name in EXPORT_FILES:
            if (tmp / name).exists():
                os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


def _onnx(module, args, shapes, input_names, output_names, path: Path) -> None:
    # The exporter prints its stages on stdout and logs that torchvision is absent: neither concerns a user.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=shapes, input_names=input_names,
                                        output_names=output_names, opset_version=ONNX_OPSET, verbose=False)
    finally:
        registration.setLevel(level)
    program.save(str(path))


def _model_json(editor, method, identity, onnx: bool) -> dict:
    info = editor.describe()
    cfg = editor.run.cfg
    factors = editor.run.dataset_info["factors"]
    values = factors.get("values")
    grid = {}
    for k, (name, size) in enumerate(zip(factors["names"], factors["sizes"])):
        m = int(size)
        grid[name] = {"values": m, "codes": [j / (m - 1) if m > 1 else 0.0 for j in range(m)]}
        if values is not None and k < len(values) and values[k] is not None:
            grid[name]["factor_values"] = list(values[k])  # the dataset's value of each class
    for item in info["factors"]:
        item.update(grid[item["name"]])
    f, r, c, fine = len(editor.names), editor.resolution, editor.channels, editor.fine
    inputs = ["codes", "z", "psi"] + (["image"] if fine else [])
    model = {
        "format": EXPORT_FORMAT,
        "source": {"run": str(editor.run.snapshot.parent), "snapshot": identity[0], "kimg": identity[1]},
        **info,
        "all_factors": [{"name": nm, **grid[nm]} for nm in factors["names"]],
        "code_convention": "factor with m values: class j has code j / (m - 1), in [0, 1]",
        "architecture": {k: getattr(cfg, k)
                         for k in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max")},
        "files": {
            "generator.safetensors": "EMA generator state_dict (semistylegan.nets)",
            "encoder.safetensors": "state_dict of the network E reads with (D and its code head or separate E)",
            "generator.pt2": f"torch.export program: g({', '.join(inputs)}) -> images",
            "encoder.pt2": "torch.export program: e(image) -> codes",
            **({"generator.onnx": f"ONNX opset {ONNX_OPSET}: inputs {', '.join(inputs)}; output images",
                "encoder.onnx": f"ONNX opset {ONNX_OPSET}: input image; output codes"} if onnx else {}),
        },
        "inputs": {
            "codes": f"float32 (N, {f}) in [0, 1], columns in the order of 'factors'",
            "z": f"float32 (N, {editor.z_dim}), standard normal",
            "psi": "float32 0-d tensor, truncation in [0, 1] (1 = none)",
            **({"image": f"float32 (N, {c}, {r}, {r}) in [-1, 1] (exactly this size); only its box downsample to "
                         f"{method.input_res}x{method.input_res} is used"} if fine else {}),
        },
        "output": f"float32 (N, {c}, {r}, {r}), about [-1, 1]; uint8 = round((x.clamp(-1, 1) + 1) * 127.5)",
        "encoder_output": f"float32 (N, {f}) codes of 'factors' (clip to [0, 1] before feeding the generator)",
    }
    if fine:
        model["fine_input_resolution"] = method.input_res
    return model


# Loading: torch and safetensors only (no numpy, no other part of this package) ------------------

def _read_export(folder: str | os.PathLike, kind: str):
    folder = Path(folder)
    try:
        model = json.loads((folder / "model.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{folder}: not an export folder (no model.json)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / 'model.json'}: unreadable ({e})") from None
    if not isinstance(model, dict) or model.get("format") != EXPORT_FORMAT:
        found = model.get("format") if isinstance(model, dict) else None
        raise UserError(f"{folder}: export format {found!r}, this version reads {EXPORT_FORMAT!r} "
                        "(export the run again)")
    for name in (f"{kind}.pt2", f"{kind}.safetensors"):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: {name} is missing")
    from safetensors.torch import load_file

    program = torch.export.load(str(folder / f"{kind}.pt2")).module()
    state = load_file(str(folder / f"{kind}.safetensors"))
    prefix = "G." if kind == "generator" else "D."
    try:
        program.load_state_dict({prefix + k: v for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0][:160]
        raise UserError(f"{folder}: {kind}.safetensors does not fit {kind}.pt2 ({first})") from None
    return model, program


class ExportedGenerator(nn.Module):
    """An exported generator: `g(codes, z, psi=1.0, image=None)`; `factors`, `model` from model.json."""

    def __init__(self, model: dict, program: nn.Module):
        super().__init__()
        self.model = model
        self.program = program
        self.factors = [f["name"] for f in model["factors"]]
        self.z_dim = int(model["z_dim"])
        self.needs_image = bool(model["needs_image"])

    def forward(self, codes: torch.Tensor, z: torch.Tensor, psi: float | torch.Tensor = 1.0,
                image: torch.Tensor | None = None) -> torch.Tensor:
        psi = torch.as_tensor(psi, dtype=torch.float32)
        if self.needs_image:
            if image is None:
                raise ValueError("this generator (semi-fine) needs `image`, the source of the coarse content")
            return self.program(codes, z, psi, image)
        return self.program(codes, z, psi)


class ExportedEncoder(nn.Module):
    """An exported encoder: `e(image) -> codes`; `factors`, `model` from model.json."""

    def __init__(self, model: dict, program: nn.Module):
        super().__init__()
        self.model = model
        self.program = program
        self.factors = [f["name"] for f in model["factors"]]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.program(image)


def load_generator(folder: str | os.PathLike) -> ExportedGenerator:
    """The generator of an export folder: program from generator.pt2, weights from generator.safetensors."""
    return ExportedGenerator(*_read_export(folder, "generator"))


def load_encoder(folder: str | os.PathLike) -> ExportedEncoder:
    """The encoder of an export folder: program from encoder.pt2, weights from encoder.safetensors."""
    return ExportedEncoder(*_read_export(folder, "encoder"))
