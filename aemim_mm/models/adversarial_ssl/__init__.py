"""The survey's adversaries for joint-embedding algorithms (SimCLR, BYOL,
SimSiam): one module per method over the shared pieces of ``base.py`` and
``joint_embedding.py`` (``docs/design.md``, ``docs/survey.md``)."""
from .acl import ACL
from .base import AdversarialSSLWrapper, Attack
from .byorl import BYORL
from .clae import CLAE
from .joint_embedding import (BYOLInterface, ContrastiveInterface,
                              JointEmbedding, SimSiamInterface,
                              build_joint_embedding)
from .losses import nt_xent
from .rocl import RoCL

__all__ = [
    'ACL', 'AdversarialSSLWrapper', 'Attack', 'BYORL', 'CLAE',
    'BYOLInterface', 'ContrastiveInterface', 'JointEmbedding',
    'SimSiamInterface', 'build_joint_embedding', 'nt_xent', 'RoCL'
]
