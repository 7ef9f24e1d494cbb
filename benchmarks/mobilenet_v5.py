"""MobileNetV5 at its native size: mobilecnn's forward against timm's, with the same weights.

Builds ``mobilenet_v5_300m`` (768x768, the Gemma 3n image tower's size) or ``mobilenet_v5_base``
(256x256) in mobilecnn and in timm, loads timm's (random) weights into ours with
``load_timm_state_dict``, checks the logits agree, then times one forward of each in turn
(round-robin, eval mode, ``inference_mode``) and prints medians and the ratio. Too slow for the
test suite on a CPU (hundreds of GMACs per image): that is why it is here.

    python benchmarks/mobilenet_v5.py --threads 1 --rounds 3
    python benchmarks/mobilenet_v5.py --model mobilenet_v5_base --rounds 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TIMM_NAMES = {"mobilenet_v5_300m": ("mobilenetv5_300m", 768),
              "mobilenet_v5_base": ("mobilenetv5_base", 256)}


def main() -> None:
    import timm

    from mobilecnn import create_model, mac_count, param_count
    from mobilecnn.deploy import load_timm_state_dict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v5_300m", choices=list(TIMM_NAMES))
    parser.add_argument("--threads", type=int, default=0, help="default: torch's choice")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    timm_name, size = TIMM_NAMES[args.model]
    torch.manual_seed(0)
    reference = timm.create_model(timm_name, num_classes=1000).eval()
    ours = create_model(args.model, num_classes=1000).eval()
    load_timm_state_dict(ours, reference.state_dict())
    x = torch.randn(1, 3, size, size)
    times: dict[str, list[float]] = {"mobilecnn": [], "timm": []}
    with torch.inference_mode():
        difference = (ours(x) - reference(x)).abs().max().item()  # also the warm-up
        for _ in range(args.rounds):
            for name, model in (("mobilecnn", ours), ("timm", reference)):
                started = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - started)
    print(f"{args.model} at 1x3x{size}x{size}: {param_count(ours):,} parameters, "
          f"{mac_count(ours, (3, size, size)) / 1e9:.1f} GMACs; logits max |difference| from "
          f"timm {difference:.1e}; {torch.get_num_threads()} thread(s), {args.rounds} rounds")
    print("| model | median s | min s | vs timm |")
    print("| --- | ---: | ---: | ---: |")
    base = statistics.median(times["timm"])
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | "
              f"{base / statistics.median(values):.2f}x |")


if __name__ == "__main__":
    main()
