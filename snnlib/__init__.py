"""snnlib: spiking neural networks and adversarial attacks for reproducing Sharmin et al. (IJCNN 2019, ECCV 2020).

Modules (one idea each): ``neurons`` (IF/LIF, surrogates), ``encoding`` (Poisson/direct encoders, quantisation),
``models`` (VGG ANN and its SNN twin), ``convert`` (threshold balancing), ``train`` (ANN and BPTT training with
checkpoints), ``data`` (CIFAR), ``stats`` (Clopper-Pearson), ``evaluate``, ``attacks``, ``artifacts``, ``study``.
"""
__version__ = "0.1.0"

from .encoding import DirectEncoder, PoissonEncoder, normalize, quantize  # noqa: F401
from .models import ARCHS, VGG, SpikingVGG, build_ann  # noqa: F401
from .neurons import IF, LIF, SURROGATES, get_surrogate, lif_multistep, lif_step  # noqa: F401

import logging as _logging

# torch.compile's C++ toolchain probe logs a CUDA warning on CPU-only machines; it is noise for snnlib users
_logging.getLogger("torch.utils.cpp_extension").setLevel(_logging.ERROR)
