"""A study's summary: results.csv, results.md (mean +- std over seeds in the paper's layout), plots."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np


from semistylegan.study.parse import METRIC_COLUMNS, METRIC_TITLES, Study, display_name, uses_labels

__all__ = ["aggregate", "summarise", "plot_study"]

# ---------------------------------------------------------------------------------------------
# Summary: results.csv, results.md, plots.

def _fmt(mean: float, std: float, n: int) -> str:
    digits = 3 if abs(mean) < 10 else 1
    s = f"{mean:.{digits}f}"
    return s + (f" +- {std:.{digits}f}" if n > 1 else "")


def _group_key(r: dict):
    return (r.get("label", ""), r["method"], r.get("eta", 0.0), r.get("gamma"))


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation (ddof = 1) over seeds, per (label, method, eta, gamma)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "done":
            groups.setdefault(_group_key(r), []).append(r)
    out = []
    for key, rs in groups.items():
        g = {"label": key[0], "method": key[1], "eta": key[2], "gamma": key[3], "seeds": len(rs)}
        for m in METRIC_COLUMNS:
            vals = [float(r[m]) for r in rs if isinstance(r.get(m), (int, float)) and math.isfinite(r[m])]
            if vals:
                g[m] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals))
        out.append(g)
    return out


def _row_name(g: dict, multi_eta: bool, multi_gamma: bool) -> str:
    name = g["label"] or display_name(g["method"])
    bits = []
    if multi_eta and uses_labels(g["method"]):
        bits.append(f"eta = {100 * g['eta']:g}%")
    if multi_gamma and g["gamma"] is not None:
        bits.append(f"gamma = {g['gamma']:g}")
    return name + (f" ({', '.join(bits)})" if bits else "")


def summarise(study: Study, rows: list[dict], out: Path) -> dict:
    """Write results.csv, results.md and the plots; returns {name: path} of what was written."""
    out = Path(out)
    written = {}
    cols = ["cell", "label", "method", "eta", "gamma", "seed", "preset", "kimg", "status", *METRIC_COLUMNS,
            "train_seconds", "eval_seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    (out / "results.csv").write_text(buf.getvalue())
    written["csv"] = out / "results.csv"

    groups = aggregate(rows)
    used = [m for m in METRIC_COLUMNS if any(m in g for g in groups)]
    etas = {g["eta"] for g in groups if uses_labels(g["method"])}
    gammas = {g["gamma"] for g in groups if g["gamma"] is not None}
    lines = [f"# {study.name}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    if study.budget:
        lines += [f"Budget: {study.budget.strip()}", ""]
    n_done = sum(r.get("status") == "done" for r in rows)
    lines += [f"{n_done} of {len(study.cells)} cells finished"
              + (f"; {len(rows) - n_done} failed or diverged (see results.csv)" if len(rows) > n_done else "")
              + ". Mean +- sample standard deviation over seeds; 'seeds' = finished seeds of the row.", ""]
    if groups:
        lines.append("| method | seeds | " + " | ".join(METRIC_TITLES[m] for m in used) + " |")
        lines.append("|---|---|" + "---|" * len(used))
        for g in groups:
            cells = [(_fmt(*g[m]) if m in g else "-") for m in used]
            row_name = _row_name(g, len(etas) > 1, len(gammas) > 1)
            lines.append(f"| {row_name} | {g['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    from semistylegan.study.claims import claims_table

    lines += claims_table(study.claims, groups)
    lines += ["Metrics: MIG and Factor score of the encoder (disentanglement_lib semantics); L2 = mean ||E(x) - c||_2 "
              "on real images (identified codes only); MIG-gen / L2-gen read generated images with two readers "
              "(CNN oracle, pixel MLP): the lowest MIG-gen, the highest L2-gen; oracle FID = Frechet distance of "
              "oracle-encoder features (not Inception FID).",
              f"Evaluation sample sizes: {json.dumps(study.metrics)}.", ""]
    plots = plot_study(groups, out)
    written.update(plots)
    for key, p in plots.items():
        lines.append(f"![{key}]({p.name})")
    if (out / "fig_curve.png").is_file():   # study --curve
        lines.append("![MIG-gen against kimg](fig_curve.png)")
    failed = [r for r in rows if r.get("status") != "done"]
    if failed:
        lines += ["", "Cells that failed or diverged (not in the table):", ""]
        lines += [f"- {r['cell']}: {r.get('status')}: {r.get('message', '')}".rstrip(": ") for r in failed]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    written["md"] = out / "results.md"
    return written


def plot_study(groups: list[dict], out: Path) -> dict:
    """fig_eta.png (Figure 2: MIG, L2, MIG-gen, L2-gen against eta, log axis) and fig_realism.png
    (oracle FID against MIG and MIG-gen, one point per gamma). A plot without data is not written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    curves: dict[tuple, list[dict]] = {}
    for g in groups:
        if uses_labels(g["method"]) and g["eta"] > 0:
            curves.setdefault((g["label"], g["method"], g["gamma"]), []).append(g)
    panels = ["mig", "l2", "mig_gen", "l2_gen"]
    if any(any(p in g for g in gs for p in panels) for gs in curves.values()):
        from matplotlib.ticker import FuncFormatter, NullFormatter

        keys = sorted(curves, key=str)
        colours = {k: f"C{i % 10}" for i, k in enumerate(keys)}   # one colour per curve in every panel
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
        for ax, metric in zip(axes, panels):
            for (label, method, gamma) in keys:
                gs = curves[(label, method, gamma)]
                pts = sorted((g["eta"], *g[metric][:2]) for g in gs if metric in g)
                if not pts:
                    continue
                x, y, e = map(np.asarray, zip(*pts))
                name = label or display_name(method)
                if gamma is not None:
                    name += f" (gamma={gamma:g})"
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=name, color=colours[(label, method, gamma)])
            ax.set_xscale("log")
            ax.set_xticks(sorted({g["eta"] for gs in curves.values() for g in gs}))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("eta (fraction of labelled images)")
            ax.set_title(METRIC_TITLES[metric])
            ax.grid(alpha=0.3)
        seen = {}
        for ax in axes:
            for h, nm in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(nm, h)
        handles, names = list(seen.values()), list(seen)
        if handles:
            fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=8)
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        fig.savefig(out / "fig_eta.png", dpi=110)
        plt.close(fig)
        written["eta curves"] = out / "fig_eta.png"
    pts = [g for g in groups if "ofid" in g and g["gamma"] is not None]
    if pts:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, metric in zip(axes, ("mig", "mig_gen")):
            for g in pts:
                if metric not in g:
                    continue
                name = g["label"] or display_name(g["method"])
                ax.errorbar(g[metric][0], g["ofid"][0], xerr=g[metric][1], yerr=g["ofid"][1], marker="o", capsize=3)
                eta = f" eta={100 * g['eta']:g}%" if uses_labels(g["method"]) else ""
                ax.annotate(f"{name} gamma={g['gamma']:g}" + eta,
                            (g[metric][0], g["ofid"][0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(METRIC_TITLES[metric] + " (disentanglement)")
            ax.set_ylabel("oracle FID (lower = more realistic)")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "fig_realism.png", dpi=110)
        plt.close(fig)
        written["realism vs disentanglement"] = out / "fig_realism.png"
    return written
