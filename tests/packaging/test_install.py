"""The folders install as one ``mdl`` namespace, the same from a wheel as from the editable tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("spec", "store", "builder", "client", "registry", "runtime", "cli")

_PROBE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path.insert(0, sys.argv[1])
import mdl.cli.main, mdl.spec.reference, mdl.store.store
print(mdl.spec.reference.__file__)
sys.argv = ["mdl", "--version"]
mdl.cli.main.main()
"""


def test_editable_install_maps_the_top_level_folders() -> None:
    import mdl.cli.main
    import mdl.spec.reference

    assert Path(mdl.spec.reference.__file__).parent == ROOT / "spec"
    assert Path(mdl.cli.main.__file__).parent == ROOT / "cli"


def test_wheel_installs_the_same_packages_and_entry_point(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mdl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "mdl = mdl.cli.main:main" in archive.read(entry_points).decode()
    for package in PACKAGES:
        assert f"mdl/{package}/__init__.py" in names
    sources = {
        f"mdl/{path.relative_to(ROOT).as_posix()}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix in (".py", ".html", ".js", ".css", ".svg")
        and "__pycache__" not in path.parts
    }  # fmt: skip
    assert sources - set(names) == set(), "files the wheel leaves out"
    assert not any(n.startswith(("tests/", "mdl/tests/")) for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(target)], capture_output=True, text=True, check=True
    )
    imported_from, version = probe.stdout.splitlines()
    assert Path(imported_from).is_relative_to(target / "mdl" / "spec")
    assert version.startswith("mdl ")
