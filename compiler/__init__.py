"""tinyc: an ahead-of-time compiler from ONNX to dependency-free C for Arm Cortex-M.

The Python API (docs/api.md): tinyc.load, tinyc.compile, tinyc.inspect, and the exceptions TinycError
and UnsupportedError. They are imported on first use, so that `import tinyc` (and the CLI's start)
does not load onnx and numpy.
"""
__version__ = "0.1.0"

_API = {"load": "api", "compile": "api", "inspect": "api", "Artifact": "api", "Model": "api",
        "TinycError": "errors", "UnsupportedError": "errors"}


def __getattr__(name: str):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
