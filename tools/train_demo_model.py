"""Train the demo model (architecture demo-cnn) on the simulator's synthetic ocean and calls.

    .venv/bin/python tools/train_demo_model.py [--out models/demo] [--clips 90] [--epochs 8] [--seed 7]

Seeded and single-threaded, so the same torch build gives the same weights. Every window goes through the
detector's real frontend (whole-clip resample + peak normalisation + 16-bit quantisation, then the dB mel
windows), exactly what the worker computes at run time. A few minutes on one laptop core; the weights are
~100 kB and are committed under models/demo/.

This model only knows the simulator's synthetic sweeps: it is for `make demo` and the end-to-end tests,
never for real hydrophones (use orcahello-srkw-detector-v1 there).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydrophone_worker.detector.frontend import SAMPLE_RATE, prepare, spectrograms, window_starts
from hydrophone_worker.detector.modeldir import ModelConfig, load_model_dir, save_model_dir
from hydrophone_worker.detector.network import build_network
from hydrophone_worker.sim.audio import SAMPLE_RATE as SIM_RATE
from hydrophone_worker.sim.audio import CallSpec, SynthSource
from torch import nn

CLIP_S = 60.0
WINDOW_S, HOP_S = 2.0, 1.0
NEGATIVES_PER_CLIP = 14  # most windows hold no call: keep a sample, not all of them
MIN_OVERLAP_S = 0.4  # a window holding this much of a call is a positive example


def demo_config() -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "audio": {"normalize": True},
            "model": {"architecture": "demo-cnn", "name": "demo-cnn-synthetic-v1"},
            "inference": {"window_s": WINDOW_S, "window_hop_s": HOP_S, "max_batch_size": 32},
            "global_prediction": {
                "aggregation_strategy": "mean_top_k",
                "mean_top_k": 2,
                "pred_local_threshold": 0.5,
                "pred_global_threshold": 0.6,
            },
        }
    )


def random_calls(rng: np.random.Generator) -> list[CallSpec]:
    """0-4 calls, spread over the clip, with the parameter ranges the simulator uses and then some."""
    calls, at = [], float(rng.uniform(0.5, 12.0))
    for _ in range(int(rng.integers(0, 5))):
        duration = float(rng.uniform(0.5, 1.5))
        if at + duration > CLIP_S - 0.5:
            break
        calls.append(
            CallSpec(
                start_s=at,
                duration_s=duration,
                f_start_hz=float(rng.uniform(500, 2000)),
                f_end_hz=float(rng.uniform(500, 2000)),
                level=float(rng.uniform(0.04, 0.3)),
            )
        )
        at += duration + float(rng.uniform(4.0, 20.0))
    return calls


@dataclass(frozen=True)
class Examples:
    inputs: np.ndarray  # float16 (n, 1, 256, 312): halves the memory; dB values need no more precision
    labels: np.ndarray  # int64 (n,)


def clip_examples(seed: int, rng: np.random.Generator) -> Examples:
    calls = random_calls(rng)
    source = SynthSource(
        seed=seed,
        calls=calls,
        noise_level=float(rng.uniform(0.008, 0.04)),
        clicks_per_s=float(rng.choice([0.0, 0.3, 1.0, 3.0])),
    )
    audio = source.read(round(CLIP_S * SIM_RATE))
    signal = prepare(audio, SIM_RATE, normalize=True)
    starts = window_starts(signal.shape[-1], WINDOW_S, HOP_S)
    begin = starts / SAMPLE_RATE
    overlap = np.zeros(len(starts))
    for call in calls:
        overlap = np.maximum(
            overlap,
            np.clip(np.minimum(begin + WINDOW_S, call.end_s) - np.maximum(begin, call.start_s), 0, None),
        )
    positive = np.flatnonzero(overlap >= np.minimum(MIN_OVERLAP_S, 0.5 * WINDOW_S))
    clear = np.flatnonzero(overlap == 0)  # windows barely touching a call teach nothing clean: left out
    negative = rng.choice(clear, size=min(NEGATIVES_PER_CLIP, len(clear)), replace=False)
    chosen = np.concatenate([positive, negative])
    inputs = spectrograms(signal, starts[chosen], WINDOW_S).astype(np.float16)
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))]).astype(np.int64)
    return Examples(inputs, labels)


def dataset(first_seed: int, clips: int) -> Examples:
    rng = np.random.default_rng(first_seed)
    parts = [clip_examples(first_seed + i, rng) for i in range(clips)]
    return Examples(np.concatenate([p.inputs for p in parts]), np.concatenate([p.labels for p in parts]))


def train(network: nn.Module, data: Examples, *, epochs: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * ((len(data.labels) + 31) // 32)
    )
    loss_fn = nn.CrossEntropyLoss()
    network.train()
    for epoch in range(epochs):
        order = torch.randperm(len(data.labels), generator=generator)
        total, correct = 0.0, 0
        for batch in torch.split(order, 32):
            x = torch.from_numpy(data.inputs[batch.numpy()].astype(np.float32))
            y = torch.from_numpy(data.labels[batch.numpy()])
            logits = network(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            correct += int((logits.argmax(1) == y).sum())
        print(
            f"epoch {epoch + 1}/{epochs}: loss {total / len(data.labels):.4f}, "
            f"train accuracy {correct / len(data.labels):.3f}",
            flush=True,
        )
    network.eval()


def evaluate(network: nn.Module, data: Examples) -> tuple[float, float]:
    """(recall on call windows, false-positive rate on clear windows) at P(call) > 0.5."""
    with torch.inference_mode():
        probs = torch.cat(
            [
                network(torch.from_numpy(data.inputs[i : i + 64].astype(np.float32))).softmax(1)[:, 1]
                for i in range(0, len(data.labels), 64)
            ]
        ).numpy()
    called = probs > 0.5
    positives = data.labels == 1
    return float(called[positives].mean()), float(called[~positives].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/demo"))
    parser.add_argument("--clips", type=int, default=90, help="synthetic 60 s clips to train on")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # reproducible, and polite to a shared machine
    began = time.process_time()
    train_data = dataset(args.seed * 1000, args.clips)
    held_out = dataset(args.seed * 1000 + 500_000, max(10, args.clips // 6))
    print(
        f"{len(train_data.labels)} training windows ({int(train_data.labels.sum())} with calls), "
        f"{len(held_out.labels)} held out; frontend {time.process_time() - began:.0f} CPU s",
        flush=True,
    )

    network = build_network("demo-cnn")
    train(network, train_data, epochs=args.epochs, seed=args.seed)
    recall, false_positive = evaluate(network, held_out)
    print(f"held out: call-window recall {recall:.3f}, clear-window false-positive rate {false_positive:.3f}")

    save_model_dir(args.out, network.state_dict(), demo_config())
    loaded = load_model_dir(args.out)
    size_kb = (args.out / "model.safetensors").stat().st_size / 1024
    print(
        f"wrote {args.out} ({loaded.parameter_count} parameters, {size_kb:.0f} kB) "
        f"in {time.process_time() - began:.0f} CPU s"
    )


if __name__ == "__main__":
    main()
