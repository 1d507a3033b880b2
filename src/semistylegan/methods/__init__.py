"""Training methods. `build_method(cfg, dataset_info)` picks one by `cfg.method`."""
from __future__ import annotations

import importlib

from semistylegan.errors import UserError
from semistylegan.methods.base import Batch, Method, StepContext, StepPlan

__all__ = ["Batch", "Method", "StepContext", "StepPlan", "build_method", "method_class", "METHOD_CLASSES"]

# method name -> "module:Class"; modules are imported on first use.
METHOD_CLASSES = {
    "semi": "semistylegan.methods.semistylegan:SemiStyleGAN",
    "info": "semistylegan.methods.semistylegan:InfoStyleGAN",
    "semi-fine": "semistylegan.methods.semistylegan_fine:SemiStyleGANFine",
    "beta-vae": "semistylegan.methods.vae:BetaVAE",
    "beta-tcvae": "semistylegan.methods.vae:BetaTCVAE",
    "factor-vae": "semistylegan.methods.vae:FactorVAE",
    "infogan-cr": "semistylegan.methods.infogan_cr:InfoGANCR",
    "encoder-only": "semistylegan.methods.encoder_only:EncoderOnly",
    "encoder-mixup": "semistylegan.methods.encoder_only:EncoderMixup",
}


def method_class(name: str) -> type[Method]:
    """The class behind a --method name; its attributes say what the method can do."""
    if name not in METHOD_CLASSES:
        raise UserError(f"unknown method '{name}'; choose one of: {', '.join(METHOD_CLASSES)}")
    module_name, cls_name = METHOD_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def build_method(cfg, dataset_info: dict) -> Method:
    return method_class(cfg.method)(cfg, dataset_info)
