"""Training methods. `build_method(cfg, dataset_info)` picks one by `cfg.method`."""
from __future__ import annotations

import importlib

from semistylegan.errors import UserError
from semistylegan.methods.base import Batch, Method, StepContext

__all__ = ["Batch", "Method", "StepContext", "build_method", "METHOD_CLASSES"]

# method name -> "module:Class"; modules are imported on first use.
METHOD_CLASSES = {
    "semi": "semistylegan.methods.semistylegan:SemiStyleGAN",
    "info": "semistylegan.methods.semistylegan:SemiStyleGAN",
    "semi-fine": "semistylegan.methods.semistylegan_fine:SemiStyleGANFine",
    "beta-vae": "semistylegan.methods.vae:BetaVAE",
    "beta-tcvae": "semistylegan.methods.vae:BetaTCVAE",
    "factor-vae": "semistylegan.methods.vae:FactorVAE",
    "infogan-cr": "semistylegan.methods.infogan_cr:InfoGANCR",
    "encoder-only": "semistylegan.methods.encoder_only:EncoderOnly",
    "encoder-mixup": "semistylegan.methods.encoder_only:EncoderMixup",
}


def build_method(cfg, dataset_info: dict) -> Method:
    if cfg.method not in METHOD_CLASSES:
        raise UserError(f"unknown method '{cfg.method}'; choose one of: {', '.join(METHOD_CLASSES)}")
    module_name, cls_name = METHOD_CLASSES[cfg.method].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise UserError(f"method '{cfg.method}' is not available in this version") from None
        raise
    return getattr(module, cls_name)(cfg, dataset_info)
