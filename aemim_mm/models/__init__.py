"""Models: adapters, the attacks, the AEMIM wrapper, the survey's methods,
backbones, and the classifiers and preprocessors of the robustness
protocols."""
from .adapters import (AdapterLayerNorm, adapter_route, convert_adapters,
                       adversarial_state_dict_keys)
from .adversarial_classifier import AdversarialImageClassifier
from .algorithms import (MIMInterface, build_mim_interface,
                         register_mim_interface, supported_algorithms)
from .adversarial_ssl import (AAdvCL, ACL, ARoCL, BYORL, CLAE, HCL, IFM,
                              AdCo, AdvCL, CaCo, MoCHi, RoCL)
from .adversarial_ssl import ADIOS, MaskingUNet  # noqa: F401
from .attack import FeatureDistancePGD, PixelPGD
from .adversarial_mask_simmim import AdversarialMaskSimMIM
from .adversarial_positions import AdversarialPositions
from .backbones import (MAEPlusPretrainDecoder, MAEPlusViT, SimMIMViT,
                        TimmMAEViT)
from .noise_preprocessor import GaussianNoiseClsDataPreprocessor
from .profiling import phase_seconds
from .views_as_batch import ViewsAsBatchDataPreprocessor
from .wrapper import AdversarialMIMWrapper

__all__ = [
    'AdapterLayerNorm', 'adapter_route', 'convert_adapters',
    'adversarial_state_dict_keys', 'MIMInterface', 'build_mim_interface',
    'register_mim_interface', 'supported_algorithms',
    'FeatureDistancePGD', 'PixelPGD', 'TimmMAEViT', 'AdversarialMIMWrapper',
    'GaussianNoiseClsDataPreprocessor', 'AdversarialImageClassifier',
    'AAdvCL', 'ACL', 'ARoCL', 'AdCo', 'AdvCL', 'BYORL', 'CaCo', 'CLAE', 'HCL',
    'IFM',
    'MoCHi', 'RoCL',
    'phase_seconds', 'AdversarialPositions', 'MAEPlusPretrainDecoder',
    'MAEPlusViT', 'SimMIMViT', 'ViewsAsBatchDataPreprocessor',
    'AdversarialMaskSimMIM'
]
