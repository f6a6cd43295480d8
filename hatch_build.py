"""Build hook: compile protos/ into Python modules before every build (wheel or editable).

The generated modules (`authz.v1`, `store.v1`) are never committed or edited by hand;
`python hatch_build.py` regenerates them in place for a development checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # running as a plain script without hatchling installed
    BuildHookInterface = object  # type: ignore[assignment,misc]

ROOT = Path(__file__).resolve().parent


def generate(root: Path = ROOT) -> list[Path]:
    """Run protoc on every .proto under protos/, writing into src/; returns the files written."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted((root / "protos").rglob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out = root / "src"
    args = [
        "grpc_tools.protoc",
        f"-I{root / 'protos'}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(map(str, protos))}")
    written: list[Path] = []
    for proto in protos:
        package_dir = out / proto.parent.relative_to(root / "protos")
        init = package_dir / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from protos/ by hatch_build.py; do not edit."""\n')
        written.extend(package_dir.glob(f"{proto.stem}_pb2*"))
        written.append(init)
    return written


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        generate(Path(self.root))


if __name__ == "__main__":
    for path in generate():
        sys.stdout.write(f"{path.relative_to(ROOT)}\n")
