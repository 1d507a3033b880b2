"""[[claim]] blocks: checked against the grid when the file loads, judged against the seeds' spread."""
import textwrap

import pytest

from semistylegan import study as S
from semistylegan.errors import UserError
from semistylegan.study.claims import Claim, judge
from tiny_study import metrics_block  # noqa: E402  (tests/ is on sys.path under pytest)

BASE = textwrap.dedent("""\
    preset = "tiny"
    kimg = 0.016
    seeds = [0, 1]
    [[grid]]
    methods = ["encoder-only", "encoder-mixup"]
    eta = [0.01, 1.0]
    [[grid]]
    label = "no mixing"
    methods = ["encoder-mixup"]
    eta = [0.01]
    options = {alpha = 0}
    """) + metrics_block(gen=False, fid=False, dci=False)
CLAIM = textwrap.dedent("""\
    [[claim]]
    name = "MixUp helps E"
    paper = "0.834 vs 0.731"
    kind = "better"
    metric = "mig"
    row = {method = "encoder-mixup", eta = 0.01}
    other = {label = "no mixing"}
    """)


def _load(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return S.load_study(p), p


def test_claim_rows_must_exist(tmp_path):
    st, _ = _load(tmp_path, BASE + CLAIM)
    assert [c.name for c in st.claims] == ["MixUp helps E"] and st.claims[0].other == {"label": "no mixing"}
    for old, new, words in [
        ('other = {label = "no mixing"}', 'other = {label = "no mixin"}', "matches no row of the grid"),
        ('row = {method = "encoder-mixup", eta = 0.01}', 'row = {method = "encoder-mixup"}', "matches 2 rows"),
        ('kind = "better"', 'kind = "larger"', "claim kind must be one of better, close, below"),
        ('metric = "mig"', 'metric = "mgi"', "unknown claim metric 'mgi'"),
        ('paper = ', 'source = ', "unknown key 'source' in a claim"),
    ]:
        with pytest.raises(UserError) as e:
            _load(tmp_path, BASE + CLAIM.replace(old, new))
        msg = str(e.value)
        text = (BASE + CLAIM.replace(old, new)).splitlines()
        key = new.split(" =")[0]
        line = 1 + next(i for i, ln in enumerate(text) if ln.startswith(key + " ="))
        assert msg.startswith(f"{tmp_path / 'c.toml'}:{line}: ") and words in msg, msg
        assert len(msg.splitlines()) == 1


def _groups(a, b):
    return [{"label": "", "method": "encoder-mixup", "eta": 0.01, "gamma": None, "seeds": a[2], "mig": a},
            {"label": "no mixing", "method": "encoder-mixup", "eta": 0.01, "gamma": None, "seeds": b[2], "mig": b}]


@pytest.mark.parametrize("a,b,verdict", [
    ((0.50, 0.01, 3), (0.40, 0.01, 3), "reproduced"),
    ((0.40, 0.01, 3), (0.50, 0.01, 3), "opposite"),
    ((0.45, 0.05, 3), (0.44, 0.05, 3), "not reproduced (within the spread)"),
    ((0.50, 0.00, 1), (0.40, 0.01, 3), "pending (fewer than 2 seeds)"),
])
def test_better_rule(a, b, verdict):
    c = Claim("x", "", "better", "mig", {"method": "encoder-mixup", "eta": 0.01}, {"label": "no mixing"})
    assert judge(c, _groups(a, b))["verdict"] == verdict


def test_lower_is_better_close_and_below():
    groups = [{"label": "", "method": "semi", "eta": 0.01, "gamma": 1.0, "seeds": 3, "l2": (0.30, 0.01, 3),
               "mig_gen": (0.05, 0.02, 3)},
              {"label": "", "method": "semi", "eta": 1.0, "gamma": 1.0, "seeds": 3, "l2": (0.40, 0.01, 3),
               "mig_gen": (0.60, 0.02, 3)}]
    low, full = {"method": "semi", "eta": 0.01}, {"method": "semi", "eta": 1.0}
    assert judge(Claim("l2", "", "better", "l2", low, full), groups)["verdict"] == "reproduced"   # 0.30 < 0.40
    assert judge(Claim("c", "", "close", "mig_gen", low, full, within=0.1), groups)["verdict"] == "not reproduced"
    assert judge(Claim("c", "", "close", "mig_gen", full, low, within=0.1), groups)["verdict"] == "reproduced"
    assert judge(Claim("z", "", "below", "mig_gen", low, value=0.1), groups)["verdict"] == "reproduced"
    assert judge(Claim("z", "", "below", "mig_gen", full, value=0.1), groups)["verdict"] == "opposite"


def test_results_md_has_the_claims_table(tmp_path):
    st, _ = _load(tmp_path, BASE + CLAIM)
    out = tmp_path / "out"
    S.run_study(st, out, log=lambda *a: None)
    md = (out / "results.md").read_text()
    assert "## Claims" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| MixUp helps E |"))
    assert "| MIG | 0.834 vs 0.731 |" in row and "(2) vs " in row
    assert row.rstrip(" |").endswith(("reproduced", "opposite", "(within the spread)"))
