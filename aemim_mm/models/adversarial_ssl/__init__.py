"""The survey's adversaries for joint-embedding algorithms (SimCLR, BYOL,
SimSiam): one module per method over the shared pieces of ``base.py`` and
``joint_embedding.py`` (``docs/design.md``, ``docs/survey.md``)."""
from .a_infonce import AAdvCL, ARoCL
from .acl import ACL
from .adios import ADIOS
from .adco import AdCo
from .advcl import AdvCL
from .base import AdversarialSSLWrapper, Attack
from .byorl import BYORL
from .caco import CaCo
from .clae import CLAE
from .joint_embedding import (BYOLInterface, ContrastiveInterface,
                              JointEmbedding, SimSiamInterface,
                              build_joint_embedding)
from .frequency import high_frequency
from .hcl import HCL, hcl_loss
from .ifm import IFM
from .losses import HardNegatives, info_nce, nt_xent, supcon
from .masking_net import MaskingUNet
from .memory_bank import MemoryBank, bank_logits
from .mochi import MoCHi
from .rocl import RoCL

__all__ = [
    'AAdvCL', 'ACL', 'ADIOS', 'MaskingUNet', 'ARoCL', 'AdCo', 'AdvCL', 'CaCo', 'HCL', 'IFM', 'MoCHi',
    'hcl_loss', 'MemoryBank', 'bank_logits', 'AdversarialSSLWrapper', 'HardNegatives',
    'high_frequency', 'info_nce', 'supcon', 'Attack', 'BYORL', 'CLAE',
    'BYOLInterface', 'ContrastiveInterface', 'JointEmbedding',
    'SimSiamInterface', 'build_joint_embedding', 'nt_xent', 'RoCL'
]
