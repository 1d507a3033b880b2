"""Reproduction studies: a grid of methods x eta x gamma x seeds from a TOML file, run cell by
cell, resumable, summarised as results.csv, results.md (the paper's table layout, mean +- std
over seeds) and plots (the paper's Figure 2: MIG, L2, MIG-gen, L2-gen against eta; realism
against disentanglement for gamma).

    semistylegan study studies/dsprites.toml --jobs 2 --out studies-out/dsprites
    semistylegan study studies/paper_eta_curves.toml --gpus 0,1,2,3

Study file (TOML). Top level (all optional except at least one [[grid]]):
    name, description, budget        text (budget: the compute the study is sized for)
    preset, kimg, dataset, resolution defaults of every cell
    seeds = [0, 1, 2]   eta = [...]   gamma = [...]
    [metrics]   samples, factor_train, factor_eval, factor_variance, gen_samples, oracle_steps,
                fid_samples, gen (true/false), fid (true/false)
    [methods.NAME]   per-method defaults: preset, kimg, options = {field = value}
    data_path           the dataset's files (for datasets that are not procedural)
    [[grid]]   one block of cells: label, methods = [...], and optionally eta, gamma, seeds,
               preset, kimg, options (TrainConfig fields, e.g. alpha = 0 or gamma_E = 10)
Cells: methods x eta x gamma x seeds of each block. eta applies to methods that use labels
(semi, semi-fine, encoder-only, encoder-mixup; the others run with eta = 0), gamma to the
StyleGAN methods (semi, semi-fine, info). Cells with the same label, method, eta, gamma and seed
are one cell.

Resumability: every cell has a directory cells/<id>/ (a normal run directory). A cell is
finished when its result.json exists and is never rerun (--retry-failed reruns cells whose
status is not "done"); an unfinished cell with a snapshot resumes from it exactly (the
trainer's resume), so a killed study continues where it stopped. attempts.jsonl in each cell
records every (re)start.

Evaluation (`evaluate_cell`): encoder MIG and Factor score (disentanglement_lib semantics,
sample counts from [metrics]), L2 for methods whose codes are the factor codes, and for
conditional generators MIG-gen (and, with identified codes, L2-gen) read by the two model-based
readers, the CNN oracle and the pixel MLP: the lowest MIG-gen and the highest L2-gen over them,
each reader's own under "readers" (docs/method.md, "Generator metrics"); "ofid" is a
Frechet distance between oracle-encoder features of real and generated images (a realism
proxy that needs no Inception weights; not comparable with published FIDs).
"""
from __future__ import annotations

from semistylegan.study.parse import (METRIC_COLUMNS, METRIC_TITLES, Cell, Study, display_name, load_study,
                                      parse_study, takes_gamma, uses_labels)
from semistylegan.study.report import aggregate, plot_study, summarise
from semistylegan.study.run import (_frechet, _study_trainer_class, cell_dir, cell_result, claim, clear_claims,
                                    evaluate_cell, run_cell, run_parallel, run_study)

__all__ = ["Cell", "Study", "load_study", "parse_study", "run_study", "run_cell", "run_parallel", "evaluate_cell",
           "summarise", "aggregate", "plot_study", "claim", "clear_claims", "cell_dir", "cell_result", "display_name",
           "uses_labels", "takes_gamma", "METRIC_COLUMNS", "METRIC_TITLES", "_frechet", "_study_trainer_class"]
