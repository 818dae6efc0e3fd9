"""Import a file that is not on ``sys.path`` as a module, for tests.

``tools/`` holds scripts, not a package; ``tests/test_models/tiny_models.py``
is on ``sys.path`` only for the tests in its own folder.
"""
import importlib.util
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent
TOOLS = TESTS.parent / 'tools'


def load_module(path: Path, name: str) -> ModuleType:
    """Execute the file ``path`` as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py``, executed as a fresh module ``_tool_<name>``."""
    return load_module(TOOLS / f'{name}.py', f'_tool_{name}')


def load_tiny_models() -> ModuleType:
    """``tests/test_models/tiny_models.py``: the tiny MAE / SimMIM builders."""
    return load_module(TESTS / 'test_models' / 'tiny_models.py',
                       '_tiny_models')
