"""The names of the inference backends ``mobilecnn bench`` times, and what each one is.

Data only (no imports), so that the command line can list them without loading the
benchmark code.
"""

from __future__ import annotations

__all__ = ["BACKENDS"]

BACKENDS = {
    "eager": "PyTorch eager, the model as built (fp32)",
    "optimized": "optimize_for_inference: BatchNorm folded, channels_last (fp32)",
    "torchscript": "the frozen TorchScript trace that export_torchscript writes (fp32)",
    "compile": "torch.compile of the optimized model (fp32; opt-in: compiling takes minutes)",
    "onnxruntime": "ONNX Runtime, the file export_onnx writes (fp32)",
    "onnxruntime-int8": "ONNX Runtime, quantize(backend='onnxruntime'): QDQ u8/s8 (int8)",
    "executorch": "ExecuTorch + XNNPACK, the file export_executorch writes (fp32)",
    "executorch-int8": "ExecuTorch + XNNPACK, quantize(backend='xnnpack') (int8)",
    "litert": "LiteRT + XNNPACK, the file export_tflite writes (fp32)",
    "litert-int8": "LiteRT + XNNPACK, quantize(backend='litert'): fully int8 .tflite (int8)",
    "pytorch-int8": "PyTorch PT2E + X86InductorQuantizer, lowered to oneDNN int8 ops (int8)",
    "cuda-eager": "PyTorch on the GPU, the model as built (fp32)",
    "cuda": "PyTorch on the GPU, the optimized model: BatchNorm folded, channels_last (fp32)",
    "cuda-amp": "the optimized model on the GPU under bfloat16 autocast (float16 where the GPU "
                "has no bfloat16)",
    "cuda-compile": "torch.compile of the optimized model on the GPU under the same autocast "
                    "(opt-in)",
}
"""Backend name -> what is timed."""
