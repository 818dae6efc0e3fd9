"""Model tests run in the mmpretrain scope with aemim_mm registered."""
import pytest
from mmengine.registry import init_default_scope


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    import aemim_mm  # noqa: F401  (registers the components)
    init_default_scope('mmpretrain')
