"""The 0.1 name of :mod:`mobilecnn.deploy`, kept so that ``from mobilecnn.inference import ...``
in existing code keeps working. New code imports from :mod:`mobilecnn.deploy`.
"""

from __future__ import annotations

from .deploy import *  # noqa: F403
from .deploy import __all__ as __all__
