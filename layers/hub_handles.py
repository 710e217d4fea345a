"""Resolves TF Hub handles (folders, .tar.gz archives, tfhub.dev / Kaggle URLs) to SavedModels.

A handle is one of:

- a local folder holding a TF2 SavedModel (`saved_model.pb` plus `variables/`);
- a local `.tar.gz` / `.tgz` / `.tar` of such a folder, as downloaded from
  tfhub.dev or Kaggle: extracted once into a cache folder (under
  `TFHUB_CACHE_DIR` when set, else the system's temp dir), keyed by the
  archive's absolute path, size and modification time;
- an `http(s)://` URL (`https://tfhub.dev/...`, `https://www.kaggle.com/models/...`),
  resolved by `tensorflow_hub.resolve`, which downloads into `TFHUB_CACHE_DIR`
  (folder `sha1(url)`) or reuses the copy already there.

Command lines spell hub encoders `hub:HANDLE`; the caller strips the `hub:`
(`models.hub_encoders.hub_handle`): `HubLayer` and `resolve_handle` take the bare handle.
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
import uuid

import tensorflow as tf

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
ARCHIVE_CACHE_FOLDER = "mmzoo_archives"


def is_url(handle: str) -> bool:
    """Whether `handle` is an http(s) URL that `tensorflow_hub.resolve` downloads."""
    return handle.startswith(("http://", "https://"))


def absolute_handle(handle: str | os.PathLike) -> str:
    """A URL (or any "scheme://" path) as it is; a local path made absolute, so that a
    `.keras` file storing it reloads from any working directory."""
    handle = os.fspath(handle)
    return handle if "://" in handle else os.path.abspath(handle)


def hub_cache_dir() -> str | None:
    """The `TFHUB_CACHE_DIR` environment variable, or None when it is unset or empty."""
    return os.environ.get("TFHUB_CACHE_DIR") or None


def resolve_handle(handle: str | os.PathLike) -> str:
    """Returns the local folder of the SavedModel that `handle` names.

    Args:
        handle: a SavedModel folder, a `.tar.gz`/`.tgz`/`.tar` of one, or an
            http(s) URL of a TF Hub / Kaggle model.

    Returns:
        A folder that holds `saved_model.pb`.

    Raises:
        ValueError: the path does not exist, holds no `saved_model.pb`, the
            archive is unsafe or unreadable, or the URL cannot be downloaded.

    Example:
        >>> resolve_handle("/models/efficientnet_b0/")  # doctest: +SKIP
        '/models/efficientnet_b0/'
    """
    if isinstance(handle, os.PathLike):
        handle = os.fspath(handle)
    if not isinstance(handle, str) or not handle:
        raise ValueError(f"A hub handle must be a non-empty string or path, got {handle!r}.")
    if is_url(handle):
        folder = _download(handle)
    elif handle.endswith(ARCHIVE_SUFFIXES) and not tf.io.gfile.isdir(handle):
        folder = _extract_archive(handle)
    else:
        folder = handle
        if not tf.io.gfile.exists(folder):
            raise ValueError(
                f"Hub handle {handle!r} does not exist: pass a SavedModel folder, "
                "a .tar.gz of one, or a tfhub.dev / kaggle.com URL."
            )
    return _check_saved_model(folder, handle)


def load_module(handle: str | os.PathLike):
    """Resolves `handle` and loads its SavedModel with `tf.saved_model.load`.

    TF Text is imported first when it is installed: TF Hub's BERT preprocessors
    use its ops (e.g. CaseFoldUTF8), which TensorFlow registers only then.

    Args:
        handle: as for `resolve_handle`.

    Returns:
        The restored object: `__call__`, `signatures`, `variables`, ... as saved.

    Example:
        >>> module = load_module("/models/efficientnet_b0/")  # doctest: +SKIP
        >>> features = module(images)  # doctest: +SKIP
    """
    folder = resolve_handle(handle)
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    return tf.saved_model.load(folder)


def _check_saved_model(folder: str, handle: str) -> str:
    names = (tf.saved_model.SAVED_MODEL_FILENAME_PB, tf.saved_model.SAVED_MODEL_FILENAME_PBTXT)
    if not any(tf.io.gfile.exists(os.path.join(folder, name)) for name in names):
        where = "" if folder == handle else f" (resolved to {folder!r})"
        raise ValueError(
            f"Hub handle {handle!r}{where} holds no saved_model.pb: "
            "it must be a TF2 SavedModel folder or an archive of one."
        )
    return folder


def _download(handle: str) -> str:
    import tensorflow_hub  # here: it imports tf_keras, which only URL handles need

    try:
        return tensorflow_hub.resolve(handle)
    except (OSError, ValueError, tf.errors.OpError) as error:
        cache = hub_cache_dir() or "unset"
        raise ValueError(
            f"Could not download hub handle {handle!r} ({type(error).__name__}: {error}). "
            "Without network access, pass a local path instead (a SavedModel folder or "
            "a .tar.gz of it), or set TFHUB_CACHE_DIR to a cache that already holds "
            f"this handle (TFHUB_CACHE_DIR is {cache})."
        ) from error


def _archive_cache_folder(archive: str) -> str:
    stat = os.stat(archive)
    key = f"{os.path.abspath(archive)}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
    root = hub_cache_dir() or tempfile.gettempdir()
    return os.path.join(root, ARCHIVE_CACHE_FOLDER, digest)


def _extract_archive(archive: str) -> str:
    if not os.path.isfile(archive):
        raise ValueError(f"Hub archive {archive!r} does not exist or is not a file.")
    folder = _archive_cache_folder(archive)
    if not os.path.isdir(folder):
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        staging = f"{folder}.{uuid.uuid4().hex}.tmp"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
            os.replace(staging, folder)
        except tarfile.FilterError as error:
            raise ValueError(
                f"Hub archive {archive!r} has a member that escapes its folder "
                f"({error.tarinfo.name!r}); refusing to extract it."
            ) from error
        except (tarfile.TarError, EOFError) as error:
            raise ValueError(
                f"Hub archive {archive!r} is not a readable tar file: {error}"
            ) from error
        except OSError:
            if not os.path.isdir(folder):  # not a concurrent extraction that won the rename
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _single_saved_model_folder(folder)


def _single_saved_model_folder(folder: str) -> str:
    """The folder itself, or its only subfolder when the archive wrapped the SavedModel in one."""
    if os.path.exists(os.path.join(folder, tf.saved_model.SAVED_MODEL_FILENAME_PB)):
        return folder
    entries = os.listdir(folder)
    if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])):
        return os.path.join(folder, entries[0])
    return folder
