"""snnlib: spiking neural networks and adversarial attacks for reproducing Sharmin et al. (IJCNN 2019, ECCV 2020).

Core modules (one idea each): ``neurons`` (IF/LIF parameters, step functions and modules, surrogates), ``encoding``
(Poisson/direct encoders, quantisation), ``models`` (VGG ANN and its SNN twin), ``convert`` (threshold balancing),
``train`` (ANN and BPTT training with checkpoints), ``data`` (CIFAR), ``stats`` (exact intervals and paired tests),
``seeding`` (one random stream per purpose), ``attacks``; then ``robustness`` (per-image outcomes, evaluation, worst
case and cascade, masking checks), ``study`` (the book's runner, records and verdicts) and ``bench``.
Importing snnlib changes no logger and no random state.
"""
__version__ = "0.1.0"

from .encoding import DirectEncoder, PoissonEncoder, normalize, quantize  # noqa: F401
from .models import ARCHS, VGG, SpikingVGG, build_ann  # noqa: F401
from .neurons import (IF, LIF, SURROGATES, LIFParameters, LIFState, get_surrogate, lif_multistep,  # noqa: F401
                      lif_sequence, lif_step)

__all__ = ["DirectEncoder", "PoissonEncoder", "normalize", "quantize", "ARCHS", "VGG", "SpikingVGG", "build_ann",
           "IF", "LIF", "SURROGATES", "LIFParameters", "LIFState", "get_surrogate", "lif_multistep", "lif_sequence",
           "lif_step"]
