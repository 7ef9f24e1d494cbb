"""Distillation: the loss, teacher specs and teachers from checkpoints and torchvision files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mobilecnn import create_model
from mobilecnn.train import distillation_loss, load_teacher, parse_teacher_spec, save_checkpoint

CLASSES = ["a", "b", "c", "d"]


def test_loss_is_kl_on_softened_logits_mixed_with_label_loss() -> None:
    student, teacher = torch.randn(8, 4), torch.randn(8, 4)
    label_loss = torch.tensor(1.5)
    temperature = 3.0
    kl = F.kl_div(F.log_softmax(student / temperature, 1), F.softmax(teacher / temperature, 1),
                  reduction="batchmean")
    expected = 0.7 * temperature**2 * kl + 0.3 * label_loss
    torch.testing.assert_close(distillation_loss(student, teacher, label_loss, 0.7, temperature),
                               expected)
    assert distillation_loss(teacher, teacher, label_loss, 1.0).abs() < 1e-6  # KL(p || p) = 0
    assert distillation_loss(student, teacher, label_loss, 0.0) == label_loss


def test_loss_gradient_reaches_only_the_student() -> None:
    student = torch.randn(4, 4, requires_grad=True)
    teacher = torch.randn(4, 4)
    distillation_loss(student, teacher, torch.tensor(0.0), 1.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_specs() -> None:
    assert parse_teacher_spec("runs/wide/best.pt") == ("mobilecnn", None, Path("runs/wide/best.pt"))
    assert parse_teacher_spec("torchvision:resnet18:/w/r.pth") == (
        "torchvision", "resnet18", Path("/w/r.pth"))
    with pytest.raises(ValueError, match="ARCH:PATH"):
        parse_teacher_spec("timm:resnet18")


def checkpoint(path: Path, classes: list[str]) -> Path:
    model = create_model("mobilenet_v2", num_classes=len(classes), width_mult=0.25,
                         total_stride=16)
    return save_checkpoint({"model_name": "mobilenet_v2",
                            "model_kwargs": {"num_classes": len(classes), "width_mult": 0.25,
                                             "total_stride": 16},
                            "model": model.state_dict(), "classes": classes,
                            "class_names": classes, "epoch": 1}, path)


def test_mobilecnn_checkpoint_teacher(tmp_path: Path) -> None:
    path = checkpoint(tmp_path / "teacher.pt", CLASSES)
    teacher = load_teacher(str(path), num_classes=4, classes=CLASSES)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert teacher(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="predicts 4 classes, the data has 5") as caught:
        load_teacher(str(path), num_classes=5)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="other classes"):
        load_teacher(str(path), num_classes=4, classes=["a", "b", "c", "e"])
    with pytest.raises(FileNotFoundError, match="no file"):
        load_teacher(str(tmp_path / "missing.pt"), num_classes=4)


@pytest.mark.slow  # builds four torchvision models: ~5 s on a busy 2-core machine
def test_torchvision_teacher_from_a_file(tmp_path: Path) -> None:
    models = pytest.importorskip("torchvision.models", reason="torchvision teachers")
    weights = tmp_path / "mnv3.pth"
    torch.save(models.mobilenet_v3_small(num_classes=4).state_dict(), weights)
    teacher = load_teacher(f"torchvision:mobilenet_v3_small:{weights}", num_classes=4)
    assert teacher(torch.randn(2, 3, 64, 64)).shape == (2, 4) and not teacher.training
    with pytest.raises(ValueError, match="predicts 4 classes, the data has 10") as caught:
        load_teacher(f"torchvision:mobilenet_v3_small:{weights}", num_classes=10)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="does not fit torchvision resnet18"):
        load_teacher(f"torchvision:resnet18:{weights}", num_classes=4)
    with pytest.raises(ValueError, match="no model 'resnet_999'"):
        load_teacher(f"torchvision:resnet_999:{weights}", num_classes=4)
