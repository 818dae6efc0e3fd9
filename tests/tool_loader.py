"""Import a script of ``tools/`` (not a package) as a module, for tests."""
import importlib.util
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / 'tools'


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py``, executed as a fresh module ``_tool_<name>``."""
    spec = importlib.util.spec_from_file_location(f'_tool_{name}',
                                                  TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
