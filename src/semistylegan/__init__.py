"""semistylegan: Semi-Supervised StyleGAN for disentanglement learning (Nie et al., ICML 2020)."""
__version__ = "0.1.0"
