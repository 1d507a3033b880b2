"""MIG-gen against kimg: the generator readings of every snapshot a study's cells kept (one seed),
to show where the study's training budget stands on the curve (`semistylegan study FILE --curve`).

A cell takes part when its method has a conditional generator and it kept more than one snapshot
(`keep_snapshots` in its options). Each snapshot's reading is stored in the cell's curve.json, so a
stopped curve resumes; the table goes to curve.csv and the plot to fig_curve.png.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from semistylegan.study.parse import Cell, Study, display_name
from semistylegan.study.run import _atomic_json, cell_dir, generator_readings

__all__ = ["curve_cells", "generator_curve"]


def curve_cells(study: Study, out: Path, seed: int | None = None) -> list[Cell]:
    """The cells of `seed` (default: the study's first seed) with a conditional generator and more
    than one kept snapshot."""
    from semistylegan.checkpoint import list_snapshots
    from semistylegan.methods import method_class

    if seed is None:
        seed = min(c.seed for c in study.cells)
    return [c for c in study.cells if c.seed == seed and method_class(c.method).conditional_generator
            and len(list_snapshots(cell_dir(out, c))) > 1]


def generator_curve(study: Study, out: str | Path, seed: int | None = None, log=print) -> list[dict]:
    """Read every kept snapshot of the curve cells; write curve.csv and fig_curve.png. Returns the rows."""
    from semistylegan.checkpoint import list_snapshots
    from semistylegan.evaluation import load_run

    out = Path(out)
    rows, datasets = [], {}
    for cell in curve_cells(study, out, seed):
        d = cell_dir(out, cell)
        cache_path = d / "curve.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        for snap in list_snapshots(d):
            if snap.name not in cache:
                run = load_run(snap)
                key = (run.cfg.dataset, run.cfg.resolution, run.cfg.data_path)
                if key not in datasets:
                    datasets[key] = run.dataset()
                reading = generator_readings(run.method, run.nets, datasets[key], study.metrics, run.device,
                                             seed=cell.seed)
                cache[snap.name] = {"kimg": run.kimg, **reading}
                _atomic_json(cache_path, cache)
                log(f"{cell.cell_id} at {run.kimg:g} kimg: MIG-gen {reading['mig_gen']:.3f}")
            r = cache[snap.name]
            row = {"cell": cell.cell_id, "row": cell.row_name, "eta": cell.eta, "seed": cell.seed, "kimg": r["kimg"],
                   "mig_gen": r["mig_gen"], "l2_gen": r.get("l2_gen")}
            row.update({f"mig_gen_{name}": v["mig_gen"] for name, v in r["readers"].items()})
            rows.append(row)
    if rows:
        _write(rows, out)
    return rows


def _write(rows: list[dict], out: Path):
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows({k: ("" if r.get(k) is None else r[k]) for k in cols} for r in rows)
    (out / "curve.csv").write_text(buf.getvalue())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for cell in dict.fromkeys(r["cell"] for r in rows):
        rs = sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["kimg"])
        name = rs[0]["row"]
        if name == display_name("semi"):   # the eta rows share their name
            name += f", eta = {100 * rs[0]['eta']:g}%"
        ax.plot([r["kimg"] for r in rs], [r["mig_gen"] for r in rs], marker="o", ms=3, label=name)
    ax.set_xlabel("kimg")
    ax.set_ylabel("MIG-gen (lowest reader)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"MIG-gen against training length (seed {rows[0]['seed']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig_curve.png", dpi=100)
    plt.close(fig)
