"""``python -m mobilecnn`` runs the command line (also under ``torchrun -m mobilecnn``)."""

from .cli import main

raise SystemExit(main())
