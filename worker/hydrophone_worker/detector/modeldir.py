"""Model directories: `config.yaml` with upstream's 2026 keys + `model.safetensors` (or a torch `model.pt`).

The layout is that of the published `orcahello-srkw-detector-v1` release, so its files load unchanged:
every key of upstream's `model/config.yaml` is accepted, anything else is refused with the list of keys
that are allowed there. Weights load strictly: one error lists every missing, unexpected or misshaped tensor.
torch is imported only when weights are read or written: reading a config (and the worker's fp32 path with
an ONNX export) does without it.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from safetensors import SafetensorError

from hydrophone_worker import WorkerError
from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.params import UPSTREAM_KEYS, DetectionParams

if TYPE_CHECKING:
    import torch
    from torch import nn

CONFIG_FILE = "config.yaml"
# What huggingface_hub's PyTorchModelHubMixin.save_pretrained writes: the constructor's `config` dict
# (the same sections as config.yaml) as JSON.
HUB_CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "model.pt"
WEIGHTS_FILES = (SAFETENSORS_FILE, TORCH_FILE)
# The keys of network.ARCHITECTURES, named here so that validating a config does not import torch
# (tests/detector check that the two agree).
ARCHITECTURE_NAMES = ("demo-cnn", "resnet50")


class ModelDirError(WorkerError, ValueError):
    """A model directory (or one of its files) cannot be used; the message names the file and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys whose only supported value is their default. The frontend reproduces the published model's
    # pipeline exactly (UPSTREAM §3); another value would be silently ignored, so it is refused instead.
    FIXED: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _fixed_values(self) -> Self:
        unsupported = [
            f"{key} {getattr(self, key)!r} is not supported (the detector's frontend needs {default!r})"
            for key in self.FIXED
            if getattr(self, key) != (default := type(self).model_fields[key].default)
        ]
        if unsupported:
            raise ValueError("; ".join(unsupported))
        return self


class AudioSection(_Section):
    FIXED = ("downmix_mono", "resample_rate")

    downmix_mono: bool = True
    resample_rate: PositiveInt = frontend.SAMPLE_RATE


class SpectrogramSection(_Section):
    FIXED = (
        "sample_rate",
        "n_fft",
        "hop_length",
        "mel_n_filters",
        "mel_f_min",
        "mel_f_max",
        "mel_f_pad",
        "convert_to_db",
        "top_db",
    )

    # Quirk 1: the mel filterbank is built for 16 kHz although the audio is at resample_rate (20 kHz);
    # the trained weights depend on it, so this is NOT the audio's rate.
    sample_rate: PositiveInt = frontend.FILTERBANK_RATE
    n_fft: PositiveInt = frontend.N_FFT
    hop_length: PositiveInt = frontend.HOP_LENGTH
    mel_n_filters: PositiveInt = frontend.N_MELS
    mel_f_min: NonNegativeFloat = frontend.F_MIN
    mel_f_max: PositiveFloat = frontend.F_MAX
    mel_f_pad: NonNegativeInt = 0  # torchaudio's extra zero padding of the signal: none
    convert_to_db: bool = True
    top_db: PositiveFloat = frontend.TOP_DB


class NetworkSection(_Section):
    FIXED = ("input_pad_s", "num_classes", "call_class_index")

    # Ours, not upstream's: which network in ARCHITECTURES the weights belong to.
    architecture: str = "resnet50"
    name: str = Field("orcahello-srkw-detector-v1", min_length=1)
    # The time axis is cropped or padded to int(input_pad_s * resample_rate / hop_length) frames (quirk 2).
    input_pad_s: PositiveFloat = frontend.INPUT_PAD_S
    num_classes: PositiveInt = 2
    call_class_index: NonNegativeInt = 1
    # Upstream's device and precision hints; the worker runs on the CPU and takes both from its own
    # settings (`model.precision` fp32|bf16 in the worker config, `--precision` on the command line).
    device: str = "auto"
    precision: Literal["auto", "float32", "float16", "bfloat16"] = "auto"

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURE_NAMES:
            known = ", ".join(sorted(ARCHITECTURE_NAMES))
            raise ValueError(f"unknown architecture {value!r}; use one of: {known}")
        return value


class InferenceSection(_Section):
    FIXED = ("strict_segments",)

    # True drops a last window that would run past the end of the audio (upstream parity).
    strict_segments: bool = True


class GlobalPredictionSection(_Section):
    """Every key of this section is a detection parameter; the model only refuses any other key here."""


class ModelConfig(_Section):
    """The whole `config.yaml`. A missing key takes the 2026 production value of the published file.

    The detection parameters (audio.normalize, inference.window_s / window_hop_s / max_batch_size and all
    of global_prediction) are read into `detection` from the sections upstream keeps them in, and written
    back there: the sections hold only the other keys.
    """

    audio: AudioSection = Field(default_factory=AudioSection)
    spectrogram: SpectrogramSection = Field(default_factory=SpectrogramSection)
    model: NetworkSection = Field(default_factory=NetworkSection)
    inference: InferenceSection = Field(default_factory=InferenceSection)
    global_prediction: GlobalPredictionSection = Field(default_factory=GlobalPredictionSection)
    detection: DetectionParams = Field(default_factory=DetectionParams)

    @model_validator(mode="before")
    @classmethod
    def _gather_detection(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "detection" in data:
            if isinstance(data["detection"], DetectionParams):  # built in Python
                return data
            raise ValueError(f"detection: unknown key; allowed here: {', '.join(SECTION_NAMES)}")
        gathered: dict[str, dict[str, Any]] = {}
        for section, key in UPSTREAM_KEYS.values():
            values = data.get(section)
            if isinstance(values, Mapping) and key in values:
                gathered.setdefault(section, {})[key] = values[key]
                data[section] = {k: v for k, v in values.items() if k != key}
        data["detection"] = gathered
        return data

    @model_serializer(mode="wrap")
    def _spread_detection(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        detection = data.pop("detection")
        for name, (section, key) in UPSTREAM_KEYS.items():
            data[section][key] = detection[name]
        return data

    @property
    def input_frames(self) -> int:
        """Spectrogram frames the network sees per window: 312 for the published model."""
        return int(self.model.input_pad_s * self.audio.resample_rate / self.spectrogram.hop_length)


SECTION_NAMES = tuple(name for name in ModelConfig.model_fields if name != "detection")


@dataclass(frozen=True)
class LoadedModel:
    config: ModelConfig
    network: nn.Module  # in eval mode, on the requested device
    source: Path  # the weights file it came from

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.network.parameters())


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """Keys accepted at the level of the mapping that holds the key at `loc`."""
    if len(loc) == 1:
        return list(SECTION_NAMES)
    section = str(loc[0])
    annotation = ModelConfig.model_fields[section].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    detection = [key for where, key in UPSTREAM_KEYS.values() if where == section]
    return detection + list(annotation.model_fields)


def _describe_validation_error(err: ValidationError) -> list[str]:
    lines = []
    for problem in err.errors():
        loc = problem["loc"]
        message = problem["msg"].removeprefix("Value error, ")
        if loc[:1] == ("detection",):  # a detection parameter: its own key path, at the top level
            loc = loc[1:]
            if not loc:  # the threshold-suits-rule check, which names its key itself
                lines.append(message)
                continue
        where = ".".join(str(part) for part in loc) or "(top level)"
        if problem["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key; allowed here: {', '.join(_allowed_keys(loc))}")
        else:
            # A whole-section check already names the values it objects to.
            got = "" if isinstance(problem["input"], Mapping) else f" (got {problem['input']!r})"
            lines.append(f"{where}: {message}{got}")
    return lines


def parse_model_config(data: Any, source: str = CONFIG_FILE) -> ModelConfig:
    """Validate a mapping read from `source`; every problem is reported at once, each with its key path."""
    if not isinstance(data, Mapping):
        sections = ", ".join(SECTION_NAMES)
        raise ModelDirError(
            f"{source}: expected a mapping with the sections {sections}, got {type(data).__name__}"
        )
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as err:
        lines = "\n  ".join(_describe_validation_error(err))
        raise ModelDirError(f"{source} is not a valid model config:\n  {lines}") from None


def config_to_yaml(config: ModelConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def read_config(directory: Path) -> ModelConfig:
    """`config.yaml` of a model directory, or the `config.json` of a Hugging Face Hub download of it."""
    readers: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
        (CONFIG_FILE, "YAML", yaml.safe_load),
        (HUB_CONFIG_FILE, "JSON", json.loads),
    )
    for name, kind, parse in readers:
        path = directory / name
        if path.is_file():
            try:
                data = parse(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ModelDirError(f"{path}: not valid {kind}: {exc}") from None
            return parse_model_config(data, str(path))
    raise ModelDirError(
        f"{directory}: no {CONFIG_FILE} (a model directory needs {CONFIG_FILE} and {SAFETENSORS_FILE})"
    )


def _weights_path(directory: Path) -> Path:
    for name in WEIGHTS_FILES:
        if (directory / name).is_file():
            return directory / name
    raise ModelDirError(
        f"{directory}: no weights file; expected {SAFETENSORS_FILE} (or a torch state dict {TORCH_FILE})"
    )


def read_state_dict(path: Path, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a plain torch state dict loaded with weights_only=True."""
    import torch
    from safetensors.torch import load_file

    try:
        if path.suffix == ".safetensors":
            state = load_file(path, device=device)
        else:
            state = torch.load(path, map_location=device, weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelDirError(f"{path}: cannot read weights: {exc}") from None
    if not isinstance(state, Mapping):
        raise ModelDirError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        listed = ", ".join(not_tensors)
        raise ModelDirError(f"{path}: not a plain state dict; these entries are not tensors: {listed}")
    return dict(state)


# BatchNorm's training step counters do not influence inference, and some exporters drop them.
_OPTIONAL_SUFFIX = ".num_batches_tracked"
_LISTED = 12  # keys shown per kind of problem before "... and N more"


def _listing(kind: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    more = f" ... and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return f"{kind} ({len(items)}): {shown}{more}"


def state_dict_problems(
    expected: Mapping[str, tuple[int, ...]], actual: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Missing, unexpected and misshaped keys (as readable lines); empty when `actual` fits `expected`."""
    missing = [k for k in expected if k not in actual and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in actual if k not in expected]
    misshaped = [
        f"{k} {list(actual[k])} (expected {list(expected[k])})"
        for k in expected
        if k in actual and tuple(actual[k]) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(_listing("missing", [f"{k} {list(expected[k])}" for k in missing]))
    if unexpected:
        problems.append(_listing("unexpected", [f"{k} {list(actual[k])}" for k in unexpected]))
    if misshaped:
        problems.append(_listing("wrong shape", misshaped))
    if unexpected and any(k[:2] in ("0.", "1.") for k in unexpected):
        problems.append(
            "these look like fastai v1 keys: convert the model.pkl with `hydrophone-worker model import`"
        )
    return problems


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def _fit_network(architecture: str, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    from hydrophone_worker.detector.network import build_network

    network = build_network(architecture)
    expected = network.state_dict()
    problems = state_dict_problems(_shapes(expected), _shapes(state))
    if problems:
        details = "\n  ".join(problems)
        raise ModelDirError(f"{source}: weights do not fit model.architecture {architecture!r}:\n  {details}")
    complete = {**{k: v for k, v in expected.items() if k.endswith(_OPTIONAL_SUFFIX)}, **state}
    network.load_state_dict(complete, strict=True)
    return network


def locate_model(path: str | Path) -> tuple[Path, ModelConfig, Path]:
    """(directory, config, weights file) of a model directory or of its weights file (config.yaml beside it).

    The config is read first, so its problems are reported before a missing weights file.
    """
    path = Path(path)
    if not path.exists():
        raise ModelDirError(f"{path}: no such model directory")
    directory, weights = (path.parent, path) if path.is_file() else (path, None)
    config = read_config(directory)
    return directory, config, weights or _weights_path(directory)


def load_model_dir(path: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Load a model directory (or its weights file, with config.yaml beside it) for inference."""
    _directory, config, weights = locate_model(path)
    state = read_state_dict(weights, device=device)
    network = _fit_network(config.model.architecture, state, str(weights))
    network.to(device).eval()
    return LoadedModel(config=config, network=network, source=weights)


def save_model_dir(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: ModelConfig,
    *,
    overwrite: bool = False,
    source: str = "state dict to save",
) -> Path:
    """Write model.safetensors + config.yaml; the directory appears complete or not at all.

    The weights are checked against the config's architecture first, so a broken directory is never written;
    `source` names them in that error.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelDirError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ModelDirError(
            f"{path}: directory is not empty; choose a new one or replace it (`model import --force`)"
        )
    from safetensors.torch import save_file

    _fit_network(config.model.architecture, state_dict, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tensors = {key: value.detach().to("cpu").contiguous() for key, value in state_dict.items()}
        save_file(tensors, staging / SAFETENSORS_FILE, metadata={"format": "pt"})
        (staging / CONFIG_FILE).write_text(config_to_yaml(config), encoding="utf-8")
        _swap_into_place(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _swap_into_place(staging: Path, path: Path) -> None:
    # A directory cannot be renamed over a non-empty one: move the old one aside first, drop it afterwards.
    retired = None
    if path.exists():
        retired = path.with_name(f".{path.name}.old-{staging.name}")
        path.rename(retired)
    try:
        staging.rename(path)
    except OSError:
        if retired is not None:
            retired.rename(path)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
