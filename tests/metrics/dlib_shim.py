"""Make disentanglement_lib 1.5's metric modules importable with a current gin-config.

dlib imports `gin.tf` (TensorFlow-only in old gin) and passes `blacklist=` to
`gin.configurable`, which gin-config >= 0.5 renamed to `denylist=`. Only needed by
make_reference.py and the benchmark; the tests never import disentanglement_lib.
Import this module before any disentanglement_lib module.
"""
import sys

import gin

if not getattr(gin, "_semistylegan_shim", False):
    _configurable = gin.configurable

    def _configurable_compat(*args, **kwargs):
        if "blacklist" in kwargs:
            kwargs["denylist"] = kwargs.pop("blacklist")
        if "whitelist" in kwargs:
            kwargs["allowlist"] = kwargs.pop("whitelist")
        return _configurable(*args, **kwargs)

    gin.configurable = _configurable_compat
    gin.tf = gin
    sys.modules["gin.tf"] = gin
    gin._semistylegan_shim = True


def bind_study_defaults():
    """The discretiser bindings of dlib's unsupervised study (20-bin histogram)."""
    gin.clear_config()
    gin.parse_config([
        "discretizer.discretizer_fn = @histogram_discretizer",
        "discretizer.num_bins = 20",
    ])
