"""What each method can do is said once, by its class (methods/base.Method); the study runner and
the traversal grid read it there. The table below is what the hard-coded tuples of study.py and
the getattr fallbacks said before issue 20."""
import pytest

from semistylegan import study
from semistylegan.config import make_config
from semistylegan.errors import UserError
from semistylegan.methods import METHOD_CLASSES, method_class
from semistylegan.methods.semistylegan import InfoStyleGAN, SemiStyleGAN

# name: (display name, uses labels, identified codes, conditional generator, prior samples, generator)
CAPABILITIES = {
    "semi": ("Semi-StyleGAN", True, True, True, True, True),
    "info": ("Info-StyleGAN", False, False, True, True, True),
    "semi-fine": ("Semi-StyleGAN-fine", True, True, True, True, True),
    "beta-vae": ("beta-VAE", False, False, False, False, True),
    "beta-tcvae": ("beta-TCVAE", False, False, False, False, True),
    "factor-vae": ("FactorVAE", False, False, False, False, True),
    "infogan-cr": ("InfoGAN-CR", False, False, False, True, True),
    "encoder-only": ("Encoder-only", True, True, False, False, False),
    "encoder-mixup": ("Encoder-only with MixUp", True, True, False, False, False),
}


@pytest.mark.parametrize("name", list(CAPABILITIES))
def test_class_attributes(name):
    cls = method_class(name)
    got = (cls.display_name, cls.uses_labels, cls.identified_codes, cls.conditional_generator, cls.prior_samples,
           cls.has_generator)
    assert got == CAPABILITIES[name]
    assert cls.name == name
    # the study runner's view: eta multiplies labelled methods, gamma the StyleGAN ones
    assert study.uses_labels(name) is CAPABILITIES[name][1] and study.display_name(name) == CAPABILITIES[name][0]
    assert study.takes_gamma(name) is (name in ("semi", "info", "semi-fine"))


def test_every_method_is_in_the_table_and_unknown_names_are_refused():
    assert set(METHOD_CLASSES) == set(CAPABILITIES)
    assert issubclass(InfoStyleGAN, SemiStyleGAN) and method_class("info") is InfoStyleGAN
    with pytest.raises(UserError, match=r"^unknown method 'semi-stylegan'; choose one of: semi, info, "):
        method_class("semi-stylegan")
    assert study.display_name("semi-stylegan") == "semi-stylegan"


def test_traversed_factors():
    from semistylegan.data import make_dataset
    from semistylegan.methods import build_method

    semi = build_method(make_config("tiny"), make_dataset("dsprites", 16).info())
    assert semi.traversed_factors() == [0, 1, 2, 3, 4]
    info = {"name": "shapes3d", "resolution": 16, "channels": 3, "num_images": 480000,
            "factors": {"names": ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"],
                        "sizes": [10, 10, 10, 8, 4, 15]}}
    cfg = make_config("tiny", method="semi-fine", dataset="shapes3d", fine_factors="orientation,wall_hue")
    fine = build_method(cfg, info)
    assert fine.traversed_factors() == [1, 5]  # the fine factors only, in storage order
