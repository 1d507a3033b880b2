"""The shipped study files load, and the dSprites study compares its encoders fairly."""
from pathlib import Path

import pytest

from semistylegan import study as S
from semistylegan.methods import build_method

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize("name", sorted(p.name for p in STUDIES.glob("*.toml")))
def test_study_file_loads(name):
    st = S.load_study(STUDIES / name, validate_methods=False)
    assert st.cells and st.budget


def test_encoder_cells_match_their_semistylegan_cells():
    """Every Encoder-only (+MixUp) cell has a Semi-StyleGAN cell of the same eta and seed with the same
    E (parameter shapes, head, input noise), labelled batch and number of steps."""
    st = S.load_study(STUDIES / "dsprites.toml", validate_methods=False)
    info = {"channels": 1, "factors": {"names": ["shape", "scale", "orientation", "posX", "posY"],
                                       "sizes": [3, 6, 40, 32, 32]}}
    semi = {(c.eta, c.seed): c.config(st.top) for c in st.cells if c.method == "semi" and not c.label}
    encoders = [c for c in st.cells if c.method in ("encoder-only", "encoder-mixup")]
    assert len(encoders) == 18
    shapes = {}
    for c in encoders:
        e_cfg, s_cfg = c.config(st.top), semi[(c.eta, c.seed)]
        steps = [round(cfg.kimg * 1000 / cfg.batch) for cfg in (e_cfg, s_cfg)]
        assert steps[0] == steps[1] and e_cfg.labeled_batch == s_cfg.labeled_batch == e_cfg.batch
        for key in ("encoder", "encoder_noise", "code_head", "lr", "bf16", "channels_last", "resolution"):
            assert getattr(e_cfg, key) == getattr(s_cfg, key), key
        key = (c.method, c.eta)
        if key not in shapes:
            e = build_method(e_cfg, info).build_networks()["E"]
            d = build_method(s_cfg, info).build_networks()["D"]
            shapes[key] = ([(n, p.shape) for n, p in e.named_parameters()],
                           [(n, p.shape) for n, p in d.named_parameters()])
        assert shapes[key][0] == shapes[key][1]
