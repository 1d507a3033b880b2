"""Networks: StyleGAN2-style generator with conditional styles, discriminator with code head."""
from semistylegan.nets.discriminator import Discriminator
from semistylegan.nets.generator import Generator, MappingNetwork, SynthesisNetwork

__all__ = ["Generator", "MappingNetwork", "SynthesisNetwork", "Discriminator"]
