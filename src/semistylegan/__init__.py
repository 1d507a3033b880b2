"""semistylegan: Semi-Supervised StyleGAN for disentanglement learning (Nie et al., ICML 2020)."""
__version__ = "0.1.0"

__all__ = ["load_generator", "load_encoder"]


def load_generator(folder):
    """The generator of a `semistylegan export` folder (needs only torch and safetensors):
    `g(codes, z, psi=1.0[, image])` -> images in about [-1, 1]. See semistylegan.export."""
    from semistylegan.export import load_generator as load

    return load(folder)


def load_encoder(folder):
    """The encoder of a `semistylegan export` folder (needs only torch and safetensors):
    `e(image)` -> codes. See semistylegan.export."""
    from semistylegan.export import load_encoder as load

    return load(folder)
