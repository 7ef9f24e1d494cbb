"""Training throughput: mobilecnn's recommended step vs a plain fp32 torchvision loop.

Both train the same architecture (MobileNetV2, stem stride 1 = ``total_stride=16``, the
same number of classes; the parameter counts are checked equal) on the same batch of 64x64
images. The two are timed in alternating rounds in one process, so machine load hits both
alike; the ratio is the figure to read.

    python benchmarks/train.py                      # CPU, batch 64
    python benchmarks/train.py --device cuda        # GPU: batch 512, AMP, channels_last,
                                                    # projected TinyImageNet epoch time
    python benchmarks/train.py --no-bf16 --ingredients --compile   # + strong-recipe step,
                                                    # + torch.compile

It also reports what bf16 autocast costs in accuracy terms on one batch: logit differences,
top-1 agreement and loss difference against fp32 with the same weights (``--accuracy-epochs N``
adds a short demo training in fp32 and bf16 and compares their val top-1).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from mobilecnn import create_model, param_count
from mobilecnn.data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment
from mobilecnn.train.optim import build_optimizer
from mobilecnn.train.precision import autocast_dtype
from mobilecnn.train.step import TrainStep, train_step

TINYIMAGENET_TRAIN_IMAGES = 100_000


def torchvision_baseline(num_classes: int) -> nn.Module:
    """torchvision's mobilenet_v2 with the stem at stride 1 (= mobilecnn total_stride=16)."""
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(num_classes=num_classes)
    stem = model.features[0][0]
    assert isinstance(stem, nn.Conv2d)
    stem.stride = (1, 1)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mobilecnn_step(
    num_classes: int, batch: int, device: torch.device, precision: str, channels_last: bool,
    ingredients: bool = False, compile: bool = False,
) -> tuple[Callable[[], None], nn.Module, torch.dtype | None]:
    """One training step as `mobilecnn train` runs it (the same ``train_step`` function):
    uint8 batch -> BatchAugment on the device -> (channels_last) -> autocast forward ->
    label-smoothed loss -> SGD step. ``ingredients`` adds what the strong recipes add: EMA,
    Mixup/CutMix, RandAugment and random erasing; ``compile`` wraps the model in
    ``torch.compile`` as ``--compile`` does."""
    from mobilecnn.data import RandAugment, RandomErasing
    from mobilecnn.train import MixupCutmix, ModelEma, soft_target_cross_entropy

    model = create_model("mobilenet_v2", num_classes=num_classes, total_stride=16).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, "sgd", lr=0.01, weight_decay=1e-4)
    dtype = autocast_dtype(precision, device)
    parts = TrainStep(
        model=model, forward=torch.compile(model) if compile else model,  # type: ignore[arg-type]
        optimizer=optimizer, scheduler=None,
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        criterion=(soft_target_cross_entropy if ingredients
                   else nn.CrossEntropyLoss(label_smoothing=0.1)),
        augment=BatchAugment(train=True, crop="pad", flip=True, mean=TINYIMAGENET_MEAN,
                             std=TINYIMAGENET_STD,
                             auto_augment=RandAugment() if ingredients else None,
                             erasing=RandomErasing(0.25) if ingredients else None),
        generator=torch.Generator().manual_seed(0), dtype=dtype, device=device,
        channels_last=channels_last,
        mix=MixupCutmix(num_classes, 0.2, 1.0) if ingredients else None)
    if ingredients:
        ema = ModelEma(model, decay=0.9998)
        parts.after_optimizer_step.append(lambda done: ema.update(done.model))
    images = torch.randint(0, 256, (batch, 3, 64, 64), dtype=torch.uint8, device=device)
    labels = torch.randint(0, num_classes, (batch,), device=device)

    def step() -> None:
        train_step(parts, images, labels)

    return step, model, dtype


def baseline_step(num_classes: int, batch: int, device: torch.device
                  ) -> tuple[Callable[[], None], nn.Module]:
    """The plain loop: fp32, NCHW, an already normalized float batch, SGD, cross-entropy."""
    model = torchvision_baseline(num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    inputs = torch.randn(batch, 3, 64, 64, device=device)
    labels = torch.randint(0, num_classes, (batch,), device=device)

    def step() -> None:
        loss = criterion(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model


def time_alternating(
    steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, rounds: int,
    steps_per_round: int, clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per step of each candidate, measured in alternating rounds.

    ``clock=time.process_time`` counts this process's CPU seconds instead of wall time: on a
    machine shared with other jobs that is the figure an idle machine would show (with one
    thread; with several it also counts threads waiting for each other).
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync(device)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            started = clock()
            for _ in range(steps_per_round):
                step()
            sync(device)
            samples[name].append((clock() - started) / steps_per_round)
    return {name: statistics.median(values) for name, values in samples.items()}


@torch.no_grad()
def bf16_differences(num_classes: int, device: torch.device, batch: int = 256) -> dict[str, float]:
    """fp32 vs bf16 autocast with the same weights on one batch of demo-like inputs."""
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=num_classes, total_stride=16).to(device)
    # a few training-mode passes so BatchNorm statistics are not the identity
    inputs = torch.randn(batch, 3, 64, 64, device=device)
    model.train()
    for _ in range(3):
        model(inputs)
    model.eval()
    reference = model(inputs).float()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        reduced = model(inputs).float()
    labels = reference.argmax(1)
    ce = nn.functional.cross_entropy
    scale = reference.abs().max().item()
    return {
        "max_abs_logit_diff": (reduced - reference).abs().max().item(),
        "max_abs_logit_diff_rel": (reduced - reference).abs().max().item() / max(scale, 1e-12),
        "top1_agreement": (reduced.argmax(1) == labels).float().mean().item(),
        "loss_diff": abs(ce(reduced, labels).item() - ce(reference, labels).item()),
    }


def demo_accuracy(epochs: int, precision: str, out: str) -> float:
    from mobilecnn.train import demo_config, train

    result = train(demo_config(out_dir=out, epochs=epochs, precision=precision, progress=False))
    return float(result.final["val_top1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 64 on CPU, 512 on CUDA")
    parser.add_argument("--num-classes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time (for a shared "
                             "machine; use with --threads 1)")
    parser.add_argument("--accuracy-epochs", type=int, default=0,
                        help="also train the demo for N epochs in fp32 and bf16 (slow)")
    parser.add_argument("--accuracy-out", default="runs/bench-bf16")
    parser.add_argument("--no-bf16", action="store_true",
                        help="leave out the bf16 candidate (slow on CPUs without bf16 units)")
    parser.add_argument("--ingredients", action="store_true",
                        help="also time the step with EMA + Mixup/CutMix + RandAugment + "
                             "random erasing")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step with torch.compile (compiles first: minutes)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    batch = args.batch_size or (512 if device.type == "cuda" else 64)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, batch {batch}, 64x64, "
          f"{args.num_classes} classes", flush=True)

    baseline, baseline_model = baseline_step(args.num_classes, batch, device)
    candidates: dict[str, Callable[[], None]] = {"torchvision fp32 (plain loop)": baseline}
    ours_model: nn.Module | None = None
    main_precision = "auto" if device.type == "cuda" else "fp32"
    name = "mobilecnn AMP (auto)" if device.type == "cuda" else "mobilecnn fp32"
    settings = [(main_precision, False, False, f"{name} + channels_last")]
    if device.type != "cuda" and not args.no_bf16:
        settings.append(("bf16", False, False, "mobilecnn bf16 autocast + channels_last"))
    if args.ingredients:
        settings.append((main_precision, True, False, f"{name} + channels_last + ingredients"))
    if args.compile:
        settings.append((main_precision, False, True, f"{name} + channels_last + compile"))
    for precision, ingredients, compiled, label in settings:
        step, ours_model, _ = mobilecnn_step(args.num_classes, batch, device, precision,
                                             True, ingredients=ingredients, compile=compiled)
        candidates[label] = step
    assert ours_model is not None
    ours, theirs = param_count(ours_model), param_count(baseline_model)
    if ours != theirs:
        raise SystemExit(f"architectures differ: mobilecnn {ours:,} vs torchvision {theirs:,} "
                         "parameters")
    print(f"same architecture: {ours:,} parameters each")

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    seconds = time_alternating(candidates, device, args.warmup, args.rounds,
                               args.steps_per_round, clock)
    print(f"clock: {args.clock} time, median of {args.rounds} alternating rounds of "
          f"{args.steps_per_round} steps")
    base = seconds["torchvision fp32 (plain loop)"]
    print(f"\n{'training step':<56}{'images/s':>10}{'vs plain':>10}")
    for name, value in seconds.items():
        print(f"{name:<56}{batch / value:>10.1f}{base / value:>9.2f}x")
    if device.type == "cuda":
        best = min(value for name, value in seconds.items() if name.startswith("mobilecnn"))
        rate = batch / best
        print(f"\nprojected TinyImageNet epoch ({TINYIMAGENET_TRAIN_IMAGES:,} images): "
              f"{TINYIMAGENET_TRAIN_IMAGES / rate:.1f} s at {rate:.0f} images/s")

    diffs = bf16_differences(args.num_classes, device)
    print("\nbf16 autocast vs fp32, same weights, one batch of 256 (eval mode):")
    for key, value in diffs.items():
        print(f"  {key:<26}{value:.5f}")
    if args.accuracy_epochs:
        fp32 = demo_accuracy(args.accuracy_epochs, "fp32", f"{args.accuracy_out}/fp32")
        bf16 = demo_accuracy(args.accuracy_epochs, "bf16", f"{args.accuracy_out}/bf16")
        print(f"\ndemo val top-1 after {args.accuracy_epochs} epochs: fp32 {100 * fp32:.1f}%, "
              f"bf16 {100 * bf16:.1f}%")


if __name__ == "__main__":
    main()
