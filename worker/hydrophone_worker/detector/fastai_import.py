"""Convert the 2020 fastai v1 `model.pkl` (a `Learner.export`) into a model directory, without fastai.

`Learner.export` is `torch.save` of a dict holding the model (`Sequential[backbone, head]`) beside the
optimiser factory, loss, metrics, callbacks and the data pipeline's state, all as pickled fastai,
fastai_audio, torchvision and torch.nn objects. We only want the tensors, so the file is read by torch's
own loader (zip or legacy format) driven by a restricted unpickler:

- every class or function of the modules in STUB_MODULES becomes an inert stub that only records the
  arguments and state the pickle hands it; nothing of fastai, torch.nn, pandas etc. is imported or run;
- torch's tensor rebuild functions, OrderedDict, plain builtin data types (int, list, set, slice, ...),
  torch.Size/dtype/device and a latin1-only `_codecs.encode` (protocol 2's spelling of bytes) are the
  only real callables;
- any other global (os.system, builtins.eval, subprocess.Popen, ...) stops the load with UnsafePickleError
  before it can be called: pickle resolves a global before it can apply it.
The module tree of stubs is then walked for `_parameters` / `_buffers`, exactly as `state_dict()` would.

Hostile files are bounded, not just refused when they call something: the file size, the items any allowed
constructor may build (`list(range(10**12))`), the depth and size of the module tree (a "billion laughs" of
shared memo references makes a 2^60-module tree of a few hundred bytes), and error messages describe values
instead of repr()-ing them.
"""

from __future__ import annotations

import _compat_pickle
import collections
import functools
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, ClassVar, TypeGuard

import torch

from hydrophone_worker.detector.modeldir import ModelConfig, ModelDirError, NetworkSection, save_model_dir
from hydrophone_worker.detector.params import DetectionParams

# The production weights' name (its image tag without the release suffix, UPSTREAM §5).
DEFAULT_NAME = "11-15-20.FastAI.R1-12"

# Modules whose classes and functions a fastai v1 export names; all are replaced by inert stubs.
# `audio` is fastai_audio's import name; `__main__` holds metrics or losses defined in a training notebook.
STUB_MODULES = (
    "fastai",
    "fastai_audio",
    "audio",
    "fastprogress",
    "torchvision",
    "torchaudio",
    "__main__",
    "torch.nn",
    "torch.optim",
    "pandas",
    "numpy",
    "functools",
    "pathlib",
    "enum",
    "collections",  # OrderedDict stays real (below); defaultdict and the like become stubs
)

# Plain data constructors: calling them with any arguments only builds a value.
_HARMLESS_BUILTINS = (bool, int, float, complex, str, list, tuple, dict, set, frozenset, slice, range)
# The 2020 export is ~100 MB and its ResNet-50 tree is 5 modules deep with ~170 modules; these bounds are
# far above any real export and far below what hangs a machine.
MAX_FILE_BYTES = 1 << 30
MAX_BUILT_ITEMS = 1_000_000
MAX_MODULE_DEPTH = 64
MAX_MODULES = 100_000


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """How protocol 2 spells a bytes object (numpy data in the export): `_codecs.encode(text, "latin1")`."""
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}: bytes use latin1")
    return text.encode("latin1")


def _bounded(kind: Any) -> Any:
    """`kind`, refusing to build more than MAX_BUILT_ITEMS items (a range argument is cheap to pickle)."""

    @functools.wraps(kind)
    def build(*args: Any, **kwargs: Any) -> Any:
        for arg in args:
            if isinstance(arg, range | list | tuple | set | frozenset | dict) and len(arg) > MAX_BUILT_ITEMS:
                raise UnsafePickleError(
                    f"refused {kind.__name__}() of {len(arg)} items (at most {MAX_BUILT_ITEMS}): no export "
                    "needs that"
                )
            plain = isinstance(arg, str | bytes | int | float | range | list | tuple | set | frozenset | dict)
            if not plain and hasattr(arg, "__iter__") and kind in _CONTAINERS:
                raise UnsafePickleError(f"refused {kind.__name__}() of a {type(arg).__name__}")
        return kind(*args, **kwargs)

    return build


_CONTAINERS = (list, tuple, dict, set, frozenset, collections.OrderedDict, torch.Size)

_REAL_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): _bounded(collections.OrderedDict),
    **{("builtins", kind.__name__): _bounded(kind) for kind in _HARMLESS_BUILTINS},
    ("torch", "Size"): _bounded(torch.Size),
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
}

# fastai v1 `Sequential[backbone, head]` key prefix -> the 2026 release's (UPSTREAM §3). The other
# indices (ReLU, MaxPool, concat pool, Flatten, Dropout) hold no tensors.
FASTAI_V1_PREFIXES: tuple[tuple[str, str], ...] = (
    ("0.0.", "model.conv1."),
    ("0.1.", "model.bn1."),
    ("0.4.", "model.layer1."),
    ("0.5.", "model.layer2."),
    ("0.6.", "model.layer3."),
    ("0.7.", "model.layer4."),
    ("1.2.", "model.fc.1."),
    ("1.4.", "model.fc.3."),
    ("1.6.", "model.fc.5."),
    ("1.8.", "model.fc.7."),
)


class FastaiImportError(ModelDirError):
    """The file is not a fastai v1 export we can convert; the message says why."""


class UnsafePickleError(FastaiImportError):
    """The pickle names a global that is neither a tensor builder nor a stubbed class: refused, not run."""


class InertStub:
    """Stands in for a class or function named by the pickle. Calling it records, never runs, anything."""

    stub_of: ClassVar[str] = "?"
    stub_args: tuple[Any, ...]
    stub_kwargs: dict[str, Any]
    # Read by torch's legacy loader when the pickled module source differs from the "current" one.
    dump_patches: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> InertStub:
        # Both a call (REDUCE) and NEWOBJ end here; no __init__, so neither runs anything else.
        instance = super().__new__(cls)
        instance.stub_args = args
        instance.stub_kwargs = kwargs
        instance.stub_state = None
        return instance

    def __setstate__(self, state: Any) -> None:
        self.stub_state = state

    # A pickled dict or list subclass (defaultdict, fastai's ItemLists) gets its items through these.
    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("stub_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("stub_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("stub_list", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.stub_of}>"


@functools.cache
def _stub_class(module: str, name: str) -> type[InertStub]:
    return type(name, (InertStub,), {"stub_of": f"{module}.{name}", "__module__": module})


def _is_stubbed(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in STUB_MODULES)


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # torch.save writes protocol 2, which spells some names the Python 2 way (__builtin__.set);
        # pickle's own find_class translates them, an override has to do it itself.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        real = _REAL_GLOBALS.get((module, name))
        if real is not None:
            return real
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if _is_stubbed(module):
            return _stub_class(module, name)
        raise UnsafePickleError(
            f"refused to load global {module}.{name}: a fastai v1 export only needs torch tensors and "
            "fastai/torch.nn classes (stubbed); this file would call something else, so it was not run"
        )


class _RestrictedPickleModule:
    """What torch.load(pickle_module=...) needs: an Unpickler class and a load() for the legacy format."""

    __name__ = "hydrophone_worker.restricted_pickle"
    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def _is_torchscript(path: Path) -> bool:
    """torch.load hands a TorchScript archive to torch.jit.load, past any pickle_module: never let it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def read_pickle(path: Path) -> Any:
    """Unpickle a torch.save file with the restricted unpickler: tensors are real, everything else inert."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UnsafePickleError(f"{size} bytes; a fastai v1 export is ~100 MB (at most {MAX_FILE_BYTES})")
        if _is_torchscript(path):
            raise UnsafePickleError("a TorchScript archive, not a fastai export; refused without loading it")
        with path.open("rb") as file, warnings.catch_warnings():
            # The legacy format carries module source code and warns that our stubs differ from it.
            warnings.simplefilter("ignore")
            # weights_only=False only because torch refuses a custom pickle_module otherwise; the
            # restricted unpickler is stricter than weights_only about what may be called. An open file,
            # not a path: torch.load would read a path ending in .safetensors another way.
            return torch.load(
                file, map_location="cpu", pickle_module=_RestrictedPickleModule, weights_only=False
            )
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise FastaiImportError(f"{path}: no such file") from None
    except RecursionError:
        raise UnsafePickleError(f"{path}: nested too deeply to be a fastai export") from None
    except MemoryError:
        raise UnsafePickleError(f"{path}: would need more memory than any fastai export") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, TypeError) as exc:
        raise FastaiImportError(f"{path}: not a readable torch.save/fastai export: {exc}") from None


def describe(value: Any) -> str:
    """A short description of any unpickled value; repr() of a memo 'billion laughs' would never end."""
    if value is None or isinstance(value, bool | int | float | InertStub):
        return repr(value)[:80]
    if isinstance(value, str | bytes):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, torch.Tensor):
        return f"a tensor {list(value.shape)}"
    if hasattr(value, "__len__"):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _stub_module_state(module: Any, where: str) -> Mapping[str, Any]:
    state = module.stub_state if isinstance(module, InertStub) else None
    if not isinstance(state, Mapping) or "_modules" not in state:
        raise FastaiImportError(f"{where} is {describe(module)}, not a pickled torch module")
    return state


def _collect_tensors(root: Any, out: dict[str, torch.Tensor]) -> None:
    """The entries `module.state_dict()` would have, read from the pickled modules' attributes.

    Iterative (a deep tree cannot overflow the stack) and bounded in depth and in modules visited.
    """
    pending: list[tuple[Any, str, int]] = [(root, "", 0)]
    visited = 0
    while pending:
        module, prefix, depth = pending.pop()
        visited += 1
        if visited > MAX_MODULES:
            raise UnsafePickleError(f"more than {MAX_MODULES} modules in the model tree: not a fastai export")
        if depth > MAX_MODULE_DEPTH:
            raise UnsafePickleError(
                f"the model tree is deeper than {MAX_MODULE_DEPTH} modules at {prefix[:80]}: "
                "not a fastai export"
            )
        state = _stub_module_state(module, prefix.rstrip(".") or "learner.model")
        transient = set(state.get("_non_persistent_buffers_set", ()))
        for attribute in ("_parameters", "_buffers"):
            for name, tensor in (state.get(attribute) or {}).items():
                if tensor is None or name in transient:
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise FastaiImportError(f"{prefix}{name} is {describe(tensor)}, not a tensor")
                out[prefix + name] = tensor.detach()
        children = [(n, c) for n, c in (state.get("_modules") or {}).items() if c is not None]
        pending.extend((child, f"{prefix}{name}.", depth + 1) for name, child in reversed(children))


def _is_state_dict(value: Any) -> TypeGuard[Mapping[str, torch.Tensor]]:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def fastai_state_dict(exported: Any) -> dict[str, torch.Tensor]:
    """The model's tensors, keyed fastai-style (`0.0.weight`, ...), from what a fastai v1 file unpickled to.

    Accepts `Learner.export` (a dict with the model), `Learner.save` (a dict with a state dict under
    'model', or the state dict itself).
    """
    model = exported.get("model") if isinstance(exported, Mapping) else None
    if _is_state_dict(exported):
        return dict(exported)
    if _is_state_dict(model):
        return dict(model)
    if model is None:
        raise FastaiImportError(
            f"expected a fastai v1 Learner export (a dict with a 'model' entry), got {describe(exported)}"
        )
    tensors: dict[str, torch.Tensor] = {}
    _collect_tensors(model, tensors)
    return tensors


def to_release_keys(fastai_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename fastai v1 keys to the 2026 release's by FASTAI_V1_PREFIXES; unknown keys are an error."""
    renamed: dict[str, torch.Tensor] = {}
    unmatched = []
    for key, tensor in fastai_state.items():
        target = next((new + key[len(old) :] for old, new in FASTAI_V1_PREFIXES if key.startswith(old)), None)
        if target is None:
            unmatched.append(key)
        else:
            renamed[target] = tensor
    if unmatched:
        known = ", ".join(old for old, _ in FASTAI_V1_PREFIXES)
        listed = ", ".join(unmatched[:12])
        raise FastaiImportError(
            f"{len(unmatched)} tensors fit no fastai v1 ResNet-50 key prefix ({known}): {listed}"
        )
    return renamed


def config_2020(name: str = DEFAULT_NAME) -> ModelConfig:
    """The 2020-2025 production rules the fastai model ran with (UPSTREAM §3)."""
    return ModelConfig(
        model=NetworkSection(architecture="resnet50", name=name),
        detection=DetectionParams(
            window_s=2.0,
            hop_s=1.0,
            normalize=False,
            aggregation="positive_count",
            local_threshold=0.5,
            global_threshold=3,
        ),
    )


def import_fastai_v1(
    pkl: str | Path, outdir: str | Path, *, name: str = DEFAULT_NAME, overwrite: bool = False
) -> Path:
    """Convert a fastai v1 `model.pkl` into a model directory; the full key set is verified before writing."""
    pkl = Path(pkl)
    state = to_release_keys(fastai_state_dict(read_pickle(pkl)))
    return save_model_dir(
        outdir, state, config_2020(name), overwrite=overwrite, source=f"{pkl} (renamed keys)"
    )
