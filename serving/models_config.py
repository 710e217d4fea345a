"""A TF Serving models.config for every model exported under one folder.

python -m serving.models_config --export-root saved_models --output saved_models/models.config
tensorflow_model_server --model_config_file=saved_models/models.config \
    --model_config_file_poll_wait_seconds=60

Every <root>/<model>/ with at least one <integer version>/saved_model.pb
becomes one entry (name = the folder, base_path absolute). The version policy
is `latest` by default: TF Serving serves the newest version of each model and
moves to a new one as soon as train.py publishes it (versions are renamed into
place complete, never overwritten). `--versions all` serves every version at
once, for comparing them side by side (a request picks one by
model_spec.version).
"""

import argparse
import os
import re
import sys
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

VERSION_POLICIES = ("latest", "all")


def exported_versions(export_root: str | Path) -> dict[str, list[int]]:
    """Model name -> its versions with a saved_model.pb, ascending; models without one are left out.

    Raises:
        ValueError: if export_root is not a folder.
    """
    root = Path(export_root)
    if not root.is_dir():
        raise ValueError(f"Export root {root} is not a folder.")
    found = {}
    for model_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        versions = sorted(
            int(version.name)
            for version in model_dir.iterdir()
            if re.fullmatch("[0-9]+", version.name) and (version / "saved_model.pb").is_file()
        )
        if versions:
            found[model_dir.name] = versions
    return found


def model_server_config(
    export_root: str | Path, models: list[str], versions: str = "latest"
) -> model_server_config_pb2.ModelServerConfig:
    """A model_config_list with one TensorFlow model per name, based at export_root/<name>.

    Args:
        export_root: the folder holding one subfolder per model.
        models: the model names (subfolders) to serve.
        versions: "latest" (the newest version of each model) or "all".

    Raises:
        ValueError: for an unknown version policy.
    """
    if versions not in VERSION_POLICIES:
        raise ValueError(
            f"Unknown version policy {versions!r}; expected one of {VERSION_POLICIES}."
        )
    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = str((Path(export_root) / name).resolve())
        entry.model_platform = "tensorflow"
        if versions == "latest":
            entry.model_version_policy.latest.num_versions = 1
        else:
            entry.model_version_policy.all.SetInParent()
    return config


def write_models_config(
    export_root: str | Path, output: str | Path, versions: str = "latest"
) -> dict[str, list[int]]:
    """Writes the text proto for every exported model under export_root to `output`.

    The file is written beside `output` and renamed over it, so a TF Serving that
    polls it never reads half a file.

    Returns:
        Model name -> versions found, as `exported_versions`.

    Raises:
        ValueError: if no model under export_root has a version.
    """
    found = exported_versions(export_root)
    if not found:
        raise ValueError(
            f"No <model>/<integer version>/saved_model.pb under {export_root}: nothing to serve."
        )
    text = text_format.MessageToString(model_server_config(export_root, list(found), versions))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-root", default="saved_models", help="one folder per model")
    parser.add_argument("--output", help="default: <export root>/models.config")
    parser.add_argument("--versions", default="latest", choices=VERSION_POLICIES)
    args = parser.parse_args(argv)
    output = Path(args.output or Path(args.export_root) / "models.config")
    try:
        found = write_models_config(args.export_root, output, args.versions)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({args.versions} versions):")
    for name, versions in found.items():
        print(f"  {name}: versions {', '.join(map(str, versions))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
