"""The TF Serving layout: <export_dir>/<integer version>/, never overwriting a version."""

import os
from pathlib import Path


def next_version_dir(export_dir: str | Path) -> Path:
    """Returns export_dir/<1 + the largest integer version already there>."""
    export_dir = Path(export_dir)
    versions = [int(entry.name) for entry in export_dir.glob("*") if entry.name.isdigit()]
    return export_dir / str(max(versions, default=0) + 1)


def publish(staging_dir: Path, version_dir: Path) -> Path:
    """Moves a finished export into place, so TF Serving never sees a half-written version."""
    if version_dir.exists():
        raise ValueError(f"Export version {version_dir} exists already; refusing to overwrite it.")
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging_dir, version_dir)
    return version_dir
