"""Disentanglement, controllability and image-quality metrics (pure functions over arrays).

Encoder metrics follow disentanglement_lib 1.5 exactly (same numbers on the same inputs,
dlib's dict keys); each has a fixed-array entry point and a sampled one that replays dlib's
RandomState stream. See the module docstrings for the few documented deviations.
"""
from semistylegan.metrics.beta_vae import beta_vae_score, beta_vae_score_from_features
from semistylegan.metrics.dci import dci, dci_from_dataset
from semistylegan.metrics.factor_vae import factor_vae_score, factor_vae_score_from_codes
from semistylegan.metrics.mig import mig, mig_from_dataset, mig_per_factor
from semistylegan.metrics.modularity import modularity_explicitness, modularity_explicitness_from_dataset
from semistylegan.metrics.sap import sap, sap_from_dataset

__all__ = [
    "mig", "mig_per_factor", "mig_from_dataset",
    "sap", "sap_from_dataset",
    "modularity_explicitness", "modularity_explicitness_from_dataset",
    "dci", "dci_from_dataset",
    "factor_vae_score", "factor_vae_score_from_codes",
    "beta_vae_score", "beta_vae_score_from_features",
]
