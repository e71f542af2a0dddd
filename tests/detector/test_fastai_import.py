"""Import of the 2020 fastai v1 `model.pkl` without fastai: faithful weights, and no code ever run."""

from __future__ import annotations

import builtins
import collections
import contextlib
import copy
import functools
import io
import os
import pickle
import re
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hydrophone_worker.cli import main
from hydrophone_worker.detector import network as layout
from hydrophone_worker.detector.fastai_import import (
    FastaiImportError,
    InertStub,
    RestrictedUnpickler,
    UnsafePickleError,
    fastai_state_dict,
    import_fastai_v1,
    read_pickle,
    to_release_keys,
)
from hydrophone_worker.detector.modeldir import ModelDirError, load_model_dir
from torch import nn

FAKE_MODULES = ("fastai", "fastai.basic_train", "fastai.layers", "torchvision", "torchvision.models.resnet")


@contextlib.contextmanager
def fake_modules() -> Iterator[dict[str, types.ModuleType]]:
    """fastai v1 / torchvision module names, present only while the test pickles with them."""
    modules = {name: types.ModuleType(name) for name in FAKE_MODULES}
    assert not set(modules) & set(sys.modules), "fastai or torchvision is really installed here"
    sys.modules.update(modules)
    try:
        yield modules
    finally:
        for name in modules:
            del sys.modules[name]


def _define(module: types.ModuleType, name: str, bases: tuple[type, ...] = (object,)) -> type:
    cls = type(name, bases, {"__module__": module.__name__})
    setattr(module, name, cls)
    return cls


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # fastai.metrics.accuracy's place
    return (logits.argmax(-1) == target).float().mean()


@dataclass(frozen=True)
class Export:
    zip_pkl: Path
    legacy_pkl: Path
    learner_model: nn.Module  # the fastai-layout Sequential[backbone, head] that was pickled
    probe: torch.Tensor
    expected: torch.Tensor  # learner_model(probe)


def _learner_model(modules: dict[str, types.ModuleType], network: nn.Module) -> nn.Sequential:
    """What fastai v1's cnn_learner(resnet50) builds, from a copy of our ResNet-50's layers."""
    source = copy.deepcopy(network).model
    bottleneck = _define(modules["torchvision.models.resnet"], "Bottleneck", (layout.Bottleneck,))
    for layer in (source.layer1, source.layer2, source.layer3, source.layer4):
        for block in layer:
            block.__class__ = bottleneck
    layers = modules["fastai.layers"]
    concat_pool = _define(layers, "AdaptiveConcatPool2d", (layout.AdaptiveConcatPool2d,))
    flatten = _define(layers, "Flatten", (nn.Flatten,))
    stem = (source.conv1, source.bn1, source.relu, source.maxpool)
    body = nn.Sequential(*stem, source.layer1, source.layer2, source.layer3, source.layer4)
    head = nn.Sequential(concat_pool(), flatten(), *list(source.fc)[1:])
    return nn.Sequential(body, head).eval()


def _export_dict(modules: dict[str, types.ModuleType], model: nn.Module) -> dict[str, object]:
    """The dict fastai v1's Learner.export hands to torch.save."""
    basic_train, layers = modules["fastai.basic_train"], modules["fastai.layers"]
    learner = _define(basic_train, "Learner")
    recorder = _define(basic_train, "Recorder")
    flattened_loss = _define(layers, "FlattenedLoss")
    loss = flattened_loss()
    loss.__dict__.update(func=nn.CrossEntropyLoss(), axis=-1, floatify=False, is_2d=True)
    metric = types.FunctionType(accuracy.__code__, accuracy.__globals__, "accuracy")
    metric.__module__ = basic_train.__name__
    basic_train.accuracy = metric
    return {
        "opt_func": functools.partial(torch.optim.Adam, betas=(0.9, 0.99)),
        "loss_func": loss,
        "metrics": [metric],
        "true_wd": True,
        "bn_wd": True,
        "wd": 0.01,
        "train_bn": True,
        "model_dir": Path("models"),
        "callback_fns": [functools.partial(recorder, add_time=True)],
        "cb_state": {},
        "model": model,
        "data": {
            "classes": ["negative", "positive"],
            "stats": np.array([-40.5, 12.25]),
            "c2i": collections.defaultdict(int, {"negative": 0, "positive": 1}),
            "crop": slice(0, 312),
        },
        "cls": learner,
    }


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, resnet: nn.Module) -> Export:
    directory = tmp_path_factory.mktemp("fastai")
    with fake_modules() as modules:
        model = _learner_model(modules, resnet)
        probe = torch.randn(2, 1, 64, 80, generator=torch.Generator().manual_seed(4)) * 20
        with torch.inference_mode():
            expected = model(probe)
        state = _export_dict(modules, model)
        torch.save(state, directory / "model.pkl")
        with warnings.catch_warnings():
            # The legacy format stores module source code and complains that fake classes have none.
            warnings.simplefilter("ignore", UserWarning)
            torch.save(state, directory / "legacy.pkl", _use_new_zipfile_serialization=False)
    return Export(directory / "model.pkl", directory / "legacy.pkl", model, probe, expected)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('fastai') is None, 'fastai must not be importable here'\n"
        "from hydrophone_worker.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", script, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, check=False)


@pytest.mark.slow
def test_import_in_a_process_without_fastai_reproduces_the_model(export: Export, tmp_path: Path) -> None:
    outdir = tmp_path / "fastai-2020"
    outdir.mkdir()
    (outdir / "stale.txt").write_text("from an earlier attempt")
    result = _run_cli("model", "import", str(export.zip_pkl), str(outdir), "--force")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["config.yaml", "model.safetensors"]
    assert "parameters: 25,609,666" in result.stdout
    assert "aggregation_strategy: positive_count" in result.stdout

    loaded = load_model_dir(outdir)
    with torch.inference_mode():
        scores = loaded.network(export.probe)
    torch.testing.assert_close(scores, export.expected, rtol=0, atol=1e-6)

    rules = loaded.config.detection
    assert (rules.window_s, rules.hop_s, rules.normalize) == (2.0, 1.0, False)
    assert rules.aggregation == "positive_count"
    assert (rules.local_threshold, rules.global_threshold) == (0.5, 3)
    assert loaded.config.model.name == "11-15-20.FastAI.R1-12"

    info = CliRunner().invoke(main, ["model", "info", str(outdir)])
    assert info.exit_code == 0, info.output
    assert "parameters: 25,609,666" in info.output and "window_hop_s: 1.0" in info.output
    assert "input:      (batch, 1, 256, 312)" in info.output


def test_fastai_objects_become_inert_stubs(export: Export) -> None:
    exported = read_pickle(export.zip_pkl)
    assert isinstance(exported["cls"], type) and issubclass(exported["cls"], InertStub)
    assert exported["cls"].stub_of == "fastai.basic_train.Learner"
    assert isinstance(exported["loss_func"], InertStub)
    assert exported["loss_func"].stub_of == "fastai.layers.FlattenedLoss"
    assert exported["metrics"][0].stub_of == "fastai.basic_train.accuracy"
    assert isinstance(exported["model"], InertStub)  # even torch.nn.Sequential is never constructed
    data = exported["data"]
    assert data["c2i"].stub_of == "collections.defaultdict"
    assert data["c2i"].stub_items == {"negative": 0, "positive": 1}
    assert data["crop"] == slice(0, 312)
    assert data["stats"].stub_of.endswith("multiarray._reconstruct")  # numpy is never imported either


def test_legacy_torch_save_format_gives_the_same_tensors(export: Export) -> None:
    learner_state = export.learner_model.state_dict()
    for pkl in (export.zip_pkl, export.legacy_pkl):
        tensors = fastai_state_dict(read_pickle(pkl))
        assert tensors.keys() == learner_state.keys()
        for key, tensor in learner_state.items():
            assert torch.equal(tensors[key], tensor), (pkl.name, key)


def test_key_table_maps_fastai_prefixes_to_the_release_layout() -> None:
    renamed = to_release_keys(
        {"0.0.weight": torch.zeros(1), "0.7.2.bn3.bias": torch.zeros(1), "1.8.weight": torch.zeros(1)}
    )
    assert list(renamed) == ["model.conv1.weight", "model.layer4.2.bn3.bias", "model.fc.7.weight"]


def test_keys_outside_the_table_are_refused() -> None:
    with pytest.raises(FastaiImportError, match=r"1 tensors fit no fastai v1 ResNet-50 key prefix .*: 1\.3"):
        to_release_keys({"0.0.weight": torch.zeros(1), "1.3.weight": torch.zeros(1)})


def test_a_learner_save_state_dict_is_accepted_too() -> None:
    state = {"0.0.weight": torch.ones(2)}
    assert fastai_state_dict({"model": state, "opt": {"state": {}}}) == state
    assert fastai_state_dict(state) == state


def test_a_model_of_another_shape_is_refused_with_the_keys(tmp_path: Path) -> None:
    small = nn.Sequential(nn.Sequential(nn.Conv2d(1, 8, 3, bias=False)), nn.Sequential())
    torch.save({"model": small, "cls": None}, tmp_path / "small.pkl")
    with pytest.raises(ModelDirError) as err:
        import_fastai_v1(tmp_path / "small.pkl", tmp_path / "out")
    message = str(err.value)
    assert "small.pkl (renamed keys): weights do not fit model.architecture 'resnet50'" in message
    assert "wrong shape (1): model.conv1.weight [8, 1, 3, 3] (expected [64, 1, 7, 7])" in message
    assert "missing (" in message
    assert not (tmp_path / "out").exists()


def _pickled_module(modules: dict[str, object], parameters: dict[str, object]) -> InertStub:
    module = InertStub()
    module.__setstate__({"_modules": modules, "_parameters": parameters, "_buffers": {}})
    return module


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (42, "learner.model is 42, not a pickled torch module"),
        (_pickled_module({"0": InertStub()}, {}), "0 is <inert ?>, not a pickled torch module"),
        (_pickled_module({}, {"weight": "oops"}), "weight is 'oops', not a tensor"),
    ],
)
def test_a_model_that_is_no_module_tree_is_refused(model: object, expected: str) -> None:
    with pytest.raises(FastaiImportError, match=re.escape(expected)):
        fastai_state_dict({"model": model})


def test_something_else_than_an_export_is_refused(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pkl")
    with pytest.raises(FastaiImportError, match="expected a fastai v1 Learner export"):
        import_fastai_v1(tmp_path / "list.pkl", tmp_path / "out")


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", b"PK\x03\x04 broken zip"])
def test_unreadable_files_name_the_file(tmp_path: Path, content: bytes) -> None:
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(content)
    with pytest.raises(FastaiImportError, match=f"{pkl}: not a readable torch.save/fastai export"):
        read_pickle(pkl)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FastaiImportError, match="no such file"):
        read_pickle(tmp_path / "absent.pkl")


def test_the_cli_never_mixes_into_a_non_empty_directory(export: Export, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep")
    result = CliRunner().invoke(main, ["model", "import", str(export.zip_pkl), str(tmp_path)])
    assert result.exit_code == 1
    assert "directory is not empty" in result.output and "--force" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_harmless_builtins_come_back_real() -> None:
    # Protocol 2 spells set as __builtin__.set; dtypes are torch globals.
    value = [torch.float16, collections.OrderedDict(a=1), {3}, torch.Size([2, 3])]
    assert RestrictedUnpickler(io.BytesIO(pickle.dumps(value, protocol=2))).load() == value


def _encode_call(codec: str) -> bytes:
    """What protocol 2 writes for b"abc" (`_codecs.encode("abc", "latin1")`), with the codec of our choice."""
    return (
        b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX"
        + len(codec).to_bytes(4, "little")
        + codec.encode()
        + b"\x86R."
    )


def test_bytes_spelled_with_another_codec_are_refused() -> None:
    assert RestrictedUnpickler(io.BytesIO(_encode_call("latin1"))).load() == b"abc"
    with pytest.raises(UnsafePickleError, match=r"refused _codecs.encode with encoding 'rot13'"):
        RestrictedUnpickler(io.BytesIO(_encode_call("rot13"))).load()


# --- malicious pickles ---------------------------------------------------------------------------------


class _Payload:
    """Pickles as a call of `function(*args)`: what a hostile model.pkl would contain."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return self.function, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.check_call": _Payload(subprocess.check_call, ["touch", str(marker)]),
        "builtins.getattr": _Payload(getattr, "harmless", "upper"),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.check_call", "builtins.getattr"])
def test_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[kind]
    # Hidden where a real export keeps harmless objects, beside a plausible model.
    torch.save({"model": nn.Sequential(), "metrics": [payload]}, tmp_path / "model.pkl")
    function = payload.function
    named = f"{function.__module__}.{function.__name__}"  # os.system pickles as posix.system

    with pytest.raises(UnsafePickleError, match=rf"refused to load global {named}\b") as err:
        import_fastai_v1(tmp_path / "model.pkl", tmp_path / "out")
    assert isinstance(err.value, ModelDirError)
    assert str(tmp_path / "model.pkl") in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # still how such archives are made
def test_a_torchscript_archive_is_refused_unloaded(tmp_path: Path) -> None:
    # torch.load would pass it to torch.jit.load, beyond the restricted unpickler's reach.
    torch.jit.save(torch.jit.script(nn.Linear(1, 1)), tmp_path / "model.pkl")
    with pytest.raises(UnsafePickleError, match="a TorchScript archive, not a fastai export; refused"):
        read_pickle(tmp_path / "model.pkl")


def test_the_cli_reports_a_refused_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"model": _payloads(marker)["os.system"]}, tmp_path / "model.pkl")
    result = CliRunner().invoke(main, ["model", "import", str(tmp_path / "model.pkl"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "refused to load global posix.system" in result.output
    assert not marker.exists()


# --- resource bombs: bounded and refused with the reason, in well under a second ------------------------


def _laughs(levels: int) -> list[object]:
    value: list[object] = ["lol"]
    for _ in range(levels):
        value = [value, value]  # pickled once, referenced twice through the memo: tiny file, 2^levels leaves
    return value


def test_a_memo_billion_laughs_model_is_described_not_expanded(tmp_path: Path) -> None:
    torch.save({"model": _laughs(80)}, tmp_path / "model.pkl")
    assert (tmp_path / "model.pkl").stat().st_size < 10_000
    with pytest.raises(FastaiImportError, match=r"learner\.model is a list of 2 items, not a pickled torch"):
        import_fastai_v1(tmp_path / "model.pkl", tmp_path / "out")


def test_a_shared_module_tree_of_two_to_the_sixty_modules_is_refused() -> None:
    module = _pickled_module({}, {})
    for _ in range(60):
        module = _pickled_module({"a": module, "b": module}, {})
    with pytest.raises(UnsafePickleError, match="more than 100000 modules in the model tree"):
        fastai_state_dict({"model": module})


def test_a_deep_module_tree_is_refused_without_recursion_error(tmp_path: Path) -> None:
    deep: nn.Module = nn.Sequential()
    for _ in range(2000):
        deep = nn.Sequential(deep)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)  # only to write it: pickling recurses, unpickling does not
    try:
        torch.save({"model": deep}, tmp_path / "model.pkl")
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(UnsafePickleError, match="the model tree is deeper than 64 modules"):
        import_fastai_v1(tmp_path / "model.pkl", tmp_path / "out")


@pytest.mark.parametrize("kind", [list, tuple, set, frozenset, torch.Size])
def test_allowed_constructors_cannot_build_huge_values(tmp_path: Path, kind: type) -> None:
    torch.save({"model": nn.Sequential(), "metrics": [_Payload(kind, range(10**12))]}, tmp_path / "model.pkl")
    with pytest.raises(UnsafePickleError, match=r"refused \w+\(\) of 1000000000000 items"):
        read_pickle(tmp_path / "model.pkl")


def test_a_file_larger_than_any_export_is_refused_unread(tmp_path: Path, monkeypatch) -> None:
    from hydrophone_worker.detector import fastai_import

    torch.save({"model": nn.Sequential()}, tmp_path / "model.pkl")
    monkeypatch.setattr(fastai_import, "MAX_FILE_BYTES", 100)
    with pytest.raises(UnsafePickleError, match=r"bytes; a fastai v1 export is ~100 MB"):
        read_pickle(tmp_path / "model.pkl")
