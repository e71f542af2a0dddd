"""Model directories: upstream's config.yaml, strict weights, safetensors and .pt, atomic save."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from hydrophone_worker.cli import main
from hydrophone_worker.detector.modeldir import (
    CONFIG_FILE,
    SAFETENSORS_FILE,
    TORCH_FILE,
    ModelConfig,
    ModelDirError,
    NetworkSection,
    config_to_yaml,
    load_model_dir,
    parse_model_config,
    save_model_dir,
)
from hydrophone_worker.detector.network import build_network
from hydrophone_worker.detector.params import DetectionParams
from safetensors.torch import save_file

# orcasound/orcahello InferenceSystem/model/config.yaml, the config published with orcahello-srkw-detector-v1.
UPSTREAM_CONFIG_YAML = """\
## V1 inference configuration (used by model_v1 audio + inference)
# Safe defaults preserve fastai parity; adjust thresholds/windowing as needed.
---
audio:
  downmix_mono: true
  resample_rate: 20000        # Hz
  normalize: true             # peak-normalize waveform to max(|x|)=1.0

spectrogram:
  sample_rate: 16000          # torchaudio default (fastai quirk)
  n_fft: 2560
  hop_length: 256
  mel_n_filters: 256
  mel_f_min: 0.0
  mel_f_max: 10000.0
  mel_f_pad: 0
  convert_to_db: true
  top_db: 100

model:
  name: "orcahello-srkw-detector-v1"
  input_pad_s: 4.0            # audio padded/trimmed to this duration
  num_classes: 2              # binary classification
  call_class_index: 1         # class index for positive (call detected)
  device: "auto"              # "auto" selects mps > cuda > cpu; or explicit "cpu"/"cuda"/"mps"
  precision: "auto"           # "auto" (float16 on cuda/mps, float32 on cpu), "float16", or "float32"

inference:
  window_s: 3.0               # segment length
  window_hop_s: 2.0           # hop between segments
  max_batch_size: 8           # max segments to process at once in detect_srkw_from_file
  strict_segments: true       # if false, allow partial final segment (true for fastai parity)

global_prediction:
  aggregation_strategy: "mean_top_k"  # aggregation method for global file-level prediction
  mean_top_k: 2               # top segments to average for global_confidence
  pred_local_threshold: 0.5   # threshold for local binary per-segment predictions
  pred_global_threshold: 0.6  # applied to global_confidence for file-level prediction
"""

DEMO_CONFIG = ModelConfig(model=NetworkSection(architecture="demo-cnn", name="demo"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # A few tiny forward passes: a second thread only adds contention on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_network() -> torch.nn.Module:
    torch.manual_seed(1)
    network = build_network("demo-cnn")
    # One training-mode pass moves the BatchNorm statistics off their defaults, so a load that skipped
    # buffers would change the outputs.
    network.train()(torch.randn(4, 1, 64, 80) * 20)
    return network.eval()


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory, resnet: torch.nn.Module) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("resnet") / "model", resnet.state_dict(), ModelConfig())


def _write_config(directory: Path, config: ModelConfig = DEMO_CONFIG) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(config_to_yaml(config))


def _outputs(network: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(3)
    with torch.inference_mode():
        return network(torch.randn(2, 1, 64, 80) * 20)


# --- config.yaml ---------------------------------------------------------------------------------------


def test_upstream_published_config_loads_unchanged(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    config = parse_model_config(yaml.safe_load(UPSTREAM_CONFIG_YAML))
    assert config.model.architecture == "resnet50"  # ours; absent upstream
    assert config.model.name == "orcahello-srkw-detector-v1"
    assert (config.audio.resample_rate, config.detection.normalize) == (20000, True)
    assert (config.spectrogram.sample_rate, config.spectrogram.n_fft, config.spectrogram.mel_n_filters) == (
        16000,
        2560,
        256,
    )
    assert (config.detection.window_s, config.detection.hop_s, config.detection.max_batch_size) == (
        3,
        2,
        8,
    )
    rules = config.detection
    assert (rules.aggregation, rules.mean_top_k, rules.local_threshold, rules.global_threshold) == (
        "mean_top_k",
        2,
        0.5,
        0.6,
    )
    assert config.input_frames == 312


def test_unknown_key_is_refused_with_the_allowed_keys() -> None:
    with pytest.raises(ModelDirError) as err:
        parse_model_config({"inference": {"window_s": 3.0, "window_hop": 2.0}}, "m/config.yaml")
    message = str(err.value)
    assert "m/config.yaml" in message
    assert "inference.window_hop: unknown key" in message
    assert "window_hop_s" in message  # the fix


def test_unknown_section_is_refused() -> None:
    with pytest.raises(ModelDirError, match=r"postprocess: unknown key; allowed here: audio, spectrogram"):
        parse_model_config({"postprocess": {}})


def test_every_bad_value_is_reported_at_once_with_its_key() -> None:
    bad = {
        "spectrogram": {"n_fft": 0},
        "inference": {"window_hop_s": -1},
        "global_prediction": {"aggregation_strategy": "median"},
        "model": {"architecture": "vgg16"},
    }
    with pytest.raises(ModelDirError) as err:
        parse_model_config(bad)
    message = str(err.value)
    assert "spectrogram.n_fft: Input should be greater than 0 (got 0)" in message
    assert "inference.window_hop_s: Input should be greater than 0 (got -1)" in message
    assert "global_prediction.aggregation_strategy" in message and "positive_count" in message
    assert (
        "model.architecture: unknown architecture 'vgg16'; use one of:" in message and "resnet50" in message
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"aggregation_strategy": "positive_count", "pred_global_threshold": 0.6},
            "whole number of positive",
        ),
        (
            {"aggregation_strategy": "positive_count", "pred_global_threshold": 2.5},
            "whole number of positive",
        ),
        ({"aggregation_strategy": "mean_top_k", "pred_global_threshold": 3}, "must be a confidence in"),
        ({"pred_local_threshold": 1.5}, "less than or equal to 1"),
        ({"mean_top_k": 0}, "greater than 0"),
    ],
)
def test_global_threshold_must_suit_the_strategy(section: dict[str, object], expected: str) -> None:
    with pytest.raises(ModelDirError, match=expected):
        parse_model_config({"global_prediction": section})


def test_positive_count_takes_a_count() -> None:
    rules = parse_model_config(
        {"global_prediction": {"aggregation_strategy": "positive_count", "pred_global_threshold": 3}}
    )
    assert rules.detection.global_threshold == 3


def test_settings_the_frontend_does_not_implement_are_refused() -> None:
    # Accepting them would silently score with the published pipeline anyway.
    with pytest.raises(ModelDirError) as err:
        parse_model_config(
            {
                "spectrogram": {"n_fft": 1024, "sample_rate": 20000},
                "audio": {"resample_rate": 16000},
                "inference": {"strict_segments": False},
                "model": {"call_class_index": 0},
            }
        )
    message = str(err.value)
    assert "spectrogram: sample_rate 20000 is not supported (the detector's frontend needs 16000)" in message
    assert "n_fft 1024 is not supported (the detector's frontend needs 2560)" in message
    assert "audio: resample_rate 16000 is not supported (the detector's frontend needs 20000)" in message
    assert "inference: strict_segments False is not supported" in message
    assert "model: call_class_index 0 is not supported" in message


def test_integer_spellings_of_fixed_floats_are_fine() -> None:
    config = parse_model_config(
        {"spectrogram": {"mel_f_max": 10000, "top_db": 100}, "model": {"input_pad_s": 4}}
    )
    assert config == ModelConfig()


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(ModelDirError, match="expected a mapping with the sections audio, spectrogram"):
        parse_model_config(["audio"])


def test_config_yaml_round_trips() -> None:
    config = ModelConfig(detection=DetectionParams(window_s=2.0, hop_s=1.0))
    assert parse_model_config(yaml.safe_load(config_to_yaml(config))) == config


# --- loading -----------------------------------------------------------------------------------------


def test_resnet_round_trip_gives_the_same_network(resnet_dir: Path, resnet: torch.nn.Module) -> None:
    loaded = load_model_dir(resnet_dir)
    assert loaded.config == ModelConfig()
    assert loaded.source == resnet_dir / SAFETENSORS_FILE
    assert not loaded.network.training
    assert 25_500_000 < loaded.parameter_count < 25_700_000
    loaded_state = loaded.network.state_dict()
    for key, tensor in resnet.state_dict().items():
        assert torch.equal(loaded_state[key], tensor), key
    assert torch.equal(_outputs(loaded.network), _outputs(resnet))


def test_weights_file_can_be_named_directly(resnet_dir: Path) -> None:
    loaded = load_model_dir(resnet_dir / SAFETENSORS_FILE)
    assert loaded.source == resnet_dir / SAFETENSORS_FILE


def test_plain_torch_state_dict(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    _write_config(tmp_path)
    torch.save(demo_network.state_dict(), tmp_path / TORCH_FILE)
    loaded = load_model_dir(tmp_path)
    assert loaded.source == tmp_path / TORCH_FILE
    assert torch.equal(_outputs(loaded.network), _outputs(demo_network))


class _NotWeights:
    pass


def test_torch_file_with_objects_is_refused(tmp_path: Path) -> None:
    _write_config(tmp_path)
    torch.save({"weight": _NotWeights()}, tmp_path / TORCH_FILE)
    with pytest.raises(
        ModelDirError, match=rf"{TORCH_FILE}: cannot read weights: .*Weights only load failed"
    ):
        load_model_dir(tmp_path)


def test_torch_file_with_non_tensor_entries_is_refused(tmp_path: Path) -> None:
    _write_config(tmp_path)
    torch.save({"epoch": 3, "conv.weight": torch.zeros(1)}, tmp_path / TORCH_FILE)
    with pytest.raises(ModelDirError, match="not a plain state dict; these entries are not tensors: epoch"):
        load_model_dir(tmp_path)


def test_torch_file_with_something_else_than_a_dict_is_refused(tmp_path: Path) -> None:
    _write_config(tmp_path)
    torch.save([torch.zeros(1)], tmp_path / TORCH_FILE)
    with pytest.raises(ModelDirError, match=r"expected a state dict \(name -> tensor\), got list"):
        load_model_dir(tmp_path)


def test_missing_unexpected_and_misshaped_tensors_are_listed_together(
    tmp_path: Path, demo_network: torch.nn.Module
) -> None:
    state = dict(demo_network.state_dict())
    del state["head.3.bias"]
    state["head.9.weight"] = torch.zeros(3)
    state["features.0.0.weight"] = torch.zeros(8, 1, 3, 3)
    _write_config(tmp_path)
    save_file(state, tmp_path / SAFETENSORS_FILE)
    with pytest.raises(ModelDirError) as err:
        load_model_dir(tmp_path)
    message = str(err.value)
    assert f"{tmp_path / SAFETENSORS_FILE}: weights do not fit model.architecture 'demo-cnn'" in message
    assert "missing (1): head.3.bias [2]" in message
    assert "unexpected (1): head.9.weight [3]" in message
    assert "wrong shape (1): features.0.0.weight [8, 1, 3, 3] (expected [8, 1, 5, 5])" in message


def test_weights_of_another_architecture_are_refused(resnet_dir: Path, tmp_path: Path) -> None:
    _write_config(tmp_path)
    (tmp_path / SAFETENSORS_FILE).symlink_to(resnet_dir / SAFETENSORS_FILE)
    with pytest.raises(ModelDirError, match=r"missing \(\d+\): .* and \d+ more"):
        load_model_dir(tmp_path)


def test_fastai_keys_get_a_hint(tmp_path: Path) -> None:
    _write_config(tmp_path)
    save_file({"0.0.weight": torch.zeros(64, 1, 7, 7)}, tmp_path / SAFETENSORS_FILE)
    with pytest.raises(ModelDirError, match=r"look like fastai v1 keys: .*hydrophone-worker model import"):
        load_model_dir(tmp_path)


def test_batchnorm_counters_may_be_absent(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    state = {k: v for k, v in demo_network.state_dict().items() if not k.endswith("num_batches_tracked")}
    _write_config(tmp_path)
    save_file(state, tmp_path / SAFETENSORS_FILE)
    assert torch.equal(_outputs(load_model_dir(tmp_path).network), _outputs(demo_network))


def test_hub_config_json_is_accepted(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    # huggingface_hub's PyTorchModelHubMixin writes the constructor's `config` dict as config.json.
    hub_config = DEMO_CONFIG.model_dump(mode="json")
    (tmp_path / "config.json").write_text(json.dumps(hub_config, sort_keys=True, indent=2))
    save_file(demo_network.state_dict(), tmp_path / SAFETENSORS_FILE)
    assert load_model_dir(tmp_path).config == DEMO_CONFIG


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("nothing", "no such model directory"),
        ("no-config", f"no {CONFIG_FILE}"),
        ("no-weights", f"no weights file; expected {SAFETENSORS_FILE}"),
        ("bad-yaml", f"{CONFIG_FILE}: not valid YAML"),
        ("empty-yaml", "expected a mapping with the sections"),
        ("corrupt-weights", f"{SAFETENSORS_FILE}: cannot read weights"),
        ("corrupt-pt", f"{TORCH_FILE}: cannot read weights"),
    ],
)
def test_unusable_directories_name_the_file(tmp_path: Path, setup: str, expected: str) -> None:
    directory = tmp_path / "model"
    if setup != "nothing":
        directory.mkdir()
    if setup not in ("nothing", "no-config", "bad-yaml", "empty-yaml"):
        _write_config(directory)
    if setup == "no-config":
        save_file({"x": torch.zeros(1)}, directory / SAFETENSORS_FILE)
    if setup == "bad-yaml":
        (directory / CONFIG_FILE).write_text("audio: [unclosed\n")
    if setup == "empty-yaml":
        (directory / CONFIG_FILE).write_text("")
    if setup == "corrupt-weights":
        (directory / SAFETENSORS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    if setup == "corrupt-pt":
        (directory / TORCH_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelDirError, match=expected) as err:
        load_model_dir(directory)
    assert str(directory) in str(err.value)


# --- saving ------------------------------------------------------------------------------------------


def test_save_refuses_weights_that_do_not_fit_and_writes_nothing(
    tmp_path: Path, demo_network: torch.nn.Module
) -> None:
    state = dict(demo_network.state_dict())
    del state["head.3.weight"]
    with pytest.raises(ModelDirError, match=r"(?s)state dict to save: .*missing \(1\): head.3.weight"):
        save_model_dir(tmp_path / "out", state, DEMO_CONFIG)
    assert list(tmp_path.iterdir()) == []


def test_save_never_mixes_into_an_existing_directory(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("keep")
    with pytest.raises(ModelDirError, match="directory is not empty"):
        save_model_dir(target, demo_network.state_dict(), DEMO_CONFIG)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]

    save_model_dir(target, demo_network.state_dict(), DEMO_CONFIG, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == [CONFIG_FILE, SAFETENSORS_FILE]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or retired directory left behind
    assert load_model_dir(target).config == DEMO_CONFIG


def test_save_into_a_file_path_is_refused(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(ModelDirError, match="exists and is not a directory"):
        save_model_dir(tmp_path / "out", demo_network.state_dict(), DEMO_CONFIG)


def test_cli_info_names_the_problem(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["model", "info", str(tmp_path)])
    assert result.exit_code == 1
    assert f"Error: {tmp_path}: no {CONFIG_FILE}" in result.output


def test_cli_info_prints_config_and_parameter_count(tmp_path: Path, demo_network: torch.nn.Module) -> None:
    save_model_dir(tmp_path / "demo", demo_network.state_dict(), DEMO_CONFIG)
    result = CliRunner().invoke(main, ["model", "info", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    parameters = sum(p.numel() for p in demo_network.parameters())
    assert f"parameters: {parameters:,}\n" in result.output
    assert "architecture: demo-cnn" in result.output and "window_s: 3.0" in result.output


def test_detection_parameters_are_read_from_their_upstream_keys_only() -> None:
    # DetectionParams' field names are not config.yaml keys: a `detection:` section is refused like any other.
    with pytest.raises(ModelDirError, match=r"detection: unknown key; allowed here: audio, spectrogram"):
        parse_model_config({"detection": {"window_s": 2.0}})
    with pytest.raises(ModelDirError, match=r"inference.window_s: Input should be greater than or equal"):
        parse_model_config({"inference": {"window_s": 0.01}})
    config = parse_model_config({"audio": {"normalize": False}, "inference": {"strict_segments": True}})
    assert config.detection == DetectionParams(normalize=False)
    assert config.inference.strict_segments
