"""The approvers' page ships in the wheel (no build step, nothing fetched at run time)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "bindings-python" / "python" / "actionq" / "server" / "static"


def test_the_wheel_carries_the_page_and_the_metrics_dependency(tmp_path: Path) -> None:
    # --release: the profile `make python-develop` already built, so nothing recompiles.
    built = subprocess.run(
        [str(Path(sys.executable).with_name("maturin")), "build", "--release", "--quiet", "-o", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("actionq-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for source in sorted(STATIC.iterdir()):
            shipped = f"actionq/server/static/{source.name}"
            assert shipped in names, f"{shipped} is not in the wheel"
            assert archive.read(shipped) == source.read_bytes()
        assert "actionq/server/web.py" in names and "actionq/server/metrics.py" in names
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = archive.read(metadata).decode()
    assert "Requires-Dist: prometheus-client" in requires and "extra == 'server'" in requires
    assert "selenium" not in requires  # a test tool only
