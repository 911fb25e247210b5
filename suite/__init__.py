"""rlrepro: one compact trainer for reproducing five 2025 RL-for-LLM papers."""

__version__ = "0.1.0"


def import_object(ref, what: str):
    """The object a ``"module:name"`` reference names (plug-ins: methods, custom tasks, dataset
    generators, report hooks); a callable is returned as is. ``what`` says where the reference came from."""
    if callable(ref):
        return ref
    import importlib

    module, sep, name = str(ref).partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{what}: {ref!r} is not a 'module:name' reference")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{what}: cannot load {ref!r}: {err}") from err
