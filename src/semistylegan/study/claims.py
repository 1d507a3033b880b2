"""Claims in a study file, judged against its results.

A `[[claim]]` block names two rows of the study's table (or one row and a value) and what the paper
says of them; the summary gives each a verdict, judged against the spread over seeds:

    [[claim]]
    name = "(b) the smoothness term helps G"
    paper = "Isaac3D MIG-gen 0.965 against 0.945"
    kind = "better"                       # better | close | below
    metric = "mig_gen"
    row = {method = "semi", eta = 0.01}   # a row: its label (default ""), method and eta
    other = {label = "alpha = 0"}         # better / close: the row it is compared with
    # close: within = 0.1 (a relative shortfall); below: value = 0.1

The rule. d is the row's advantage over the other row on the metric (higher is better for MIG,
Factor score, DCI and MIG-gen; lower for L2, L2-gen and oracle FID), and se = sqrt(s1^2/n1 + s2^2/n2)
its standard error from the sample standard deviations over seeds.
  better: "reproduced" if d > 2 se, "opposite" if d < -2 se, else "not reproduced (within the spread)".
  close:  "reproduced" if the row falls short of the other by at most `within` times the other's
          value, plus 2 se; else "not reproduced".
  below:  "reproduced" if the row's mean + 2 se (se = s / sqrt(n)) is below `value`, "opposite" if its
          mean - 2 se is above it, else "not reproduced (within the spread)".
A verdict needs at least two finished seeds of every row it reads ("pending" before).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from semistylegan.study.parse import METRIC_COLUMNS, METRIC_TITLES

__all__ = ["Claim", "parse_claims", "judge", "claims_table", "LOWER_IS_BETTER", "KINDS"]

LOWER_IS_BETTER = {"l2", "l2_gen", "ofid"}
KINDS = ("better", "close", "below")
_KEYS = {"name", "paper", "kind", "metric", "row", "other", "within", "value"}
_ROW_KEYS = {"label", "method", "eta"}


@dataclass
class Claim:
    name: str
    paper: str
    kind: str
    metric: str
    row: dict
    other: dict | None = None
    within: float = 0.1
    value: float | None = None
    line: int | None = None


def _matches(sel: dict, label: str, method: str, eta: float) -> bool:
    return (sel.get("label", "") == label and ("method" not in sel or sel["method"] == method)
            and ("eta" not in sel or math.isclose(float(sel["eta"]), eta, rel_tol=1e-9, abs_tol=1e-12)))


def _describe(sel: dict) -> str:
    return ", ".join(f"{k} = {sel[k]!r}" for k in ("label", "method", "eta") if k in sel)


def parse_claims(blocks, cells, check) -> list[Claim]:
    """Check the [[claim]] blocks (errors name the file's line) and that each names rows of the grid."""
    if not isinstance(blocks, list):
        raise check.fail("claims must be written as [[claim]] blocks", "claim")
    rows = {(c.label, c.method, c.eta) for c in cells}
    claims = []
    for i, b in enumerate(blocks):
        where = ("claim", i)
        for key in b:
            if key not in _KEYS:
                raise check.fail(f"unknown key '{key}' in a claim (expected one of: {', '.join(sorted(_KEYS))})",
                                 *where, key)
        for key in ("name", "kind", "metric", "row"):
            if key not in b:
                raise check.fail(f"a [[claim]] block needs '{key}'", *where)
        if b["kind"] not in KINDS:
            raise check.fail(f"claim kind must be one of {', '.join(KINDS)}, got {b['kind']!r}", *where, "kind")
        if b["metric"] not in METRIC_COLUMNS:
            raise check.fail(f"unknown claim metric {b['metric']!r} (one of: {', '.join(METRIC_COLUMNS)})",
                             *where, "metric")
        need_other = b["kind"] in ("better", "close")
        if need_other and "other" not in b:
            raise check.fail(f"a '{b['kind']}' claim needs 'other = {{...}}', the row it is compared with", *where)
        if b["kind"] == "below" and not isinstance(b.get("value"), (int, float)):
            raise check.fail("a 'below' claim needs 'value = <number>'", *where)
        for key in ("row", "other") if need_other else ("row",):
            sel = b[key]
            if not isinstance(sel, dict) or not sel or set(sel) - _ROW_KEYS:
                raise check.fail(f"claim '{key}' must be a table of label / method / eta", *where, key)
            found = [r for r in rows if _matches(sel, *r)]
            if len(found) != 1:   # rows are (label, method, eta): one match is one row
                what = "no row" if not found else f"{len(found)} rows"
                raise check.fail(f"claim '{key}' ({_describe(sel)}) matches {what} of the grid; it must name one",
                                 *where, key)
        claims.append(Claim(str(b["name"]), str(b.get("paper", "")), b["kind"], b["metric"], dict(b["row"]),
                            dict(b["other"]) if need_other else None, float(b.get("within", 0.1)),
                            float(b["value"]) if "value" in b else None, check.lines.line(*where)))
    return claims


def _find(groups: list[dict], sel: dict) -> dict | None:
    hits = [g for g in groups if _matches(sel, g["label"], g["method"], g["eta"])]
    return hits[0] if len(hits) == 1 else None


def judge(claim: Claim, groups: list[dict]) -> dict:
    """{"ours": text, "verdict": text} of one claim from the aggregated rows (study.report.aggregate)."""
    m = claim.metric
    sign = -1.0 if m in LOWER_IS_BETTER else 1.0
    a = _find(groups, claim.row)
    b = _find(groups, claim.other) if claim.other is not None else None
    stats = [g[m] if g is not None and m in g else None for g in ([a, b] if claim.other is not None else [a])]

    def show(s):
        if s is None:
            return "-"
        return f"{s[0]:.3f} +- {s[1]:.3f} ({s[2]})" if s[2] > 1 else f"{s[0]:.3f} (1)"

    ours = " vs ".join(show(s) for s in stats)
    if claim.kind == "below":
        ours += f" (threshold {claim.value:g})"
    if any(s is None or s[2] < 2 for s in stats):
        return {"ours": ours, "verdict": "pending (fewer than 2 seeds)"}
    if claim.kind == "below":
        mean, sd, n = stats[0]
        se = sd / math.sqrt(n)
        if mean + 2 * se < claim.value:
            verdict = "reproduced"
        elif mean - 2 * se > claim.value:
            verdict = "opposite"
        else:
            verdict = "not reproduced (within the spread)"
        return {"ours": ours, "verdict": verdict}
    (ma, sa, na), (mb, sb, nb) = stats
    d = sign * (ma - mb)
    se = math.sqrt(sa ** 2 / na + sb ** 2 / nb)
    if claim.kind == "better":
        verdict = ("reproduced" if d > 2 * se else "opposite" if d < -2 * se
                   else "not reproduced (within the spread)")
    else:
        verdict = "reproduced" if -d <= claim.within * abs(mb) + 2 * se else "not reproduced"
    return {"ours": ours, "verdict": verdict}


def claims_table(claims: list[Claim], groups: list[dict]) -> list[str]:
    """Markdown lines: one row per claim (the rule is in this module's docstring and docs/results.md)."""
    if not claims:
        return []
    lines = ["## Claims", "",
             "| claim | metric | paper | ours: row vs other (seeds) | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        j = judge(c, groups)
        lines.append(f"| {c.name} | {METRIC_TITLES[c.metric]} | {c.paper} | {j['ours']} | {j['verdict']} |")
    lines += ["", "Verdicts: d = the row's advantage on the metric, se = its standard error over seeds; "
              "better: reproduced if d > 2 se, opposite if d < -2 se; close: the row at most `within` (relative) "
              "+ 2 se short of the other; below: mean + 2 se under the threshold. Two seeds at least.", ""]
    return lines
