"""Whose folder is it: what a run writes, and which folders a run may write into."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_fresh_folder"]


def check_fresh_folder(out_dir: Path) -> None:
    """A fresh run never writes into a folder that holds another run's checkpoints."""
    if (out_dir / "last.pt").exists():
        raise ValueError(
            f"{out_dir} already holds a run ({out_dir / 'last.pt'}); continue it with --resume, "
            "or choose another --out folder (nothing was overwritten)"
        )
    if (out_dir / "best.pt").exists():
        raise ValueError(
            f"{out_dir} holds {out_dir / 'best.pt'} but no last.pt (an earlier run stopped "
            "before its first checkpoint, or files were moved); move best.pt away or choose "
            "another --out folder (nothing was overwritten)"
        )
