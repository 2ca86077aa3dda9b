"""Keeps pandas out of the collector process.

pyarrow probes for pandas on its first `pa.array()` and imports it when it is installed
(chDB depends on it), which costs ~40 MiB of resident memory per process. AIRIS never uses
pandas: chDB is reached through clickhouse-connect's Arrow and native paths. Installed by the
`airis` entry point only; library users and tests import pyarrow as usual.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoPandas:
    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not loaded by the airis collector", name=name)
        return None


def install() -> None:
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())
