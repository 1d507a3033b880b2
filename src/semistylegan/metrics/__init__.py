"""Disentanglement, controllability and image-quality metrics (pure functions over arrays).

Encoder metrics follow disentanglement_lib 1.5 exactly (same numbers on the same inputs,
dlib's dict keys); each has a fixed-array entry point and a sampled one that replays dlib's
RandomState stream. See the module docstrings for the few documented deviations.

`codes` are float arrays (N, d); `factors` are integer class arrays (N, K).
"""
from semistylegan.metrics.beta_vae import beta_vae_score, beta_vae_score_from_features
from semistylegan.metrics.dci import dci, dci_from_dataset
from semistylegan.metrics.factor_vae import factor_vae_score, factor_vae_score_from_codes
from semistylegan.metrics.fid import (fid_from_features, frechet_distance, inception_fid, kid_from_features,
                                      precision_recall)
from semistylegan.metrics.generator import generator_metrics
from semistylegan.metrics.l2 import l2, l2_from_dataset
from semistylegan.metrics.mig import mig, mig_from_dataset, mig_per_factor
from semistylegan.metrics.modularity import modularity_explicitness, modularity_explicitness_from_dataset
from semistylegan.metrics.oracle import Oracle, get_oracle, train_oracle
from semistylegan.metrics.report import evaluate_all, write_metrics_json
from semistylegan.metrics.sap import sap, sap_from_dataset

__all__ = [
    "mig", "mig_per_factor", "mig_from_dataset",
    "sap", "sap_from_dataset",
    "modularity_explicitness", "modularity_explicitness_from_dataset",
    "dci", "dci_from_dataset",
    "factor_vae_score", "factor_vae_score_from_codes",
    "beta_vae_score", "beta_vae_score_from_features",
    "l2", "l2_from_dataset",
    "Oracle", "get_oracle", "train_oracle",
    "generator_metrics",
    "frechet_distance", "fid_from_features", "kid_from_features", "precision_recall", "inception_fid",
    "evaluate_all", "write_metrics_json",
]
