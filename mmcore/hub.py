"""Sharing model folders through the Hugging Face Hub: push, pull, the card.

Every transfer goes through ``huggingface_hub`` (``HfApi``, its HTTP client), so
``HF_TOKEN``, ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` work as for every
HF tool, and a pulled folder lands in the usual cache layout
(``models--ns--name/{blobs,snapshots,refs}``). Safety: only the files of a model
folder are pushed or pulled (never code, never pickle), a push is one commit (a
failure leaves the repo as it was), and a pulled file is checked against the sha
the Hub listed for it before it is kept.

Why `pull` does not call ``snapshot_download``/``hf_hub_download``: they turn what
the server says into paths — the revision's commit sha (``trees/<sha>.json``,
``refs/<sha>``), ``X-Repo-Commit`` (``.no_exist/<sha>/...``) and the
``ETag`` (``blobs/<etag>``, ``.locks/.../<etag>.lock``) — without checking them, so
an endpoint (a mirror, a proxy, a compromised host) that answers ``../../x`` or
``/abs/path`` writes files of its choosing outside the cache (huggingface_hub
0.36.2, 1.33.0 and 2.4.0 all do; ``tests/test_hub_attacks.py`` shows it). A check
before calling them would not close it: they ask the server again (a HEAD per
file) and a hostile server can answer honestly once and lie the second time. So
`pull` resolves the revision to a commit, refuses anything but 40 hex digits,
takes each file's name and sha from the tree listing (names: plain relative
paths; shas: hex), builds every path from those checked values only, downloads
each file with ``huggingface_hub``'s ``http_get`` to a temporary file beside its
place, checks its sha and only then renames it into place. Headers are still read
(one HEAD per file, as huggingface_hub does) to refuse a server whose answers do
not agree. See docs/reliability-hub.md for the upstream side.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from mmcore.card import card_info, render_card
from mmcore.errors import DataError, MMCoreError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
PICTURE = "reconstruction.png"
RECIPE = "recipe.yaml"
FOLDER_FILES = (CONFIG, WEIGHTS, CARD, PICTURE, RECIPE)  # what a model folder is; nothing else travels
NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "h11")
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}")  # a git commit (and git blob) sha


class HubError(MMCoreError):
    """A Hub repo, revision or file cannot be reached, found or written."""


# -- checks ------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    """The Hub's own rule (``huggingface_hub.utils.validate_repo_id``), said in one line."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(
            f"invalid repo id {repo_id!r}: expected 'namespace/name' made of letters, digits, '-', '_' "
            f"and '.' (no '--' or '..', not starting or ending with '-' or '.', at most 96 characters)"
        ) from None
    return repo_id


def safe_name(name: Any) -> bool:
    """A file name from a server or a user that may become a path: relative, ``/``-separated,
    no empty, ``.`` or ``..`` part, no backslash, no control character."""
    return (
        isinstance(name, str) and name.isprintable() and "\\" not in name and all(part not in ("", ".", "..") for part in name.split("/"))
    )


def check_commit(sha: Any, where: str, endpoint: str) -> str:
    if not (isinstance(sha, str) and COMMIT.fullmatch(sha)):
        raise HubError(
            f"the Hub at {endpoint} gave {sha!r} as the commit of {where}: expected 40 hex digits "
            f"(a git commit sha); refused, nothing was written"
        )
    return sha


def model_folder(path: str | os.PathLike) -> Path:
    """A model folder, or a run folder holding one in ``model/``."""
    path = Path(path)
    for folder in (path, path / "model"):
        if (folder / CONFIG).is_file():
            return folder
    raise DataError(
        f"no model folder at {path}: expected {CONFIG} and {WEIGHTS} there or in {path / 'model'} "
        f"(a run's model/ folder appears when the run has finished)"
    )


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or "modality" not in config:
        raise DataError(f"{path} is not an mmcore config: it names no modality")
    return config


def weights_header(path: Path) -> dict[str, Any]:
    """The tensors a safetensors file describes (name -> dtype, shape, data_offsets), checked to end
    exactly at the end of the file."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 100_000_000 else None
        total = path.stat().st_size
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read weights {path}: {exc}; expected an intact safetensors file") from None
    if not isinstance(header, dict):
        raise DataError(f"cannot read weights {path}: not a safetensors file (damaged header)")
    header.pop("__metadata__", None)
    try:
        end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise DataError(f"cannot read weights {path}: not a safetensors file (damaged header: a tensor without data_offsets)") from None
    if 8 + size + end != total:
        raise DataError(f"weights {path} are truncated or padded: the header describes {8 + size + end} bytes, the file has {total}")
    return header


def check_weights(path: Path) -> None:
    """A safetensors file whose header parses and whose tensors end exactly at the end of the file."""
    weights_header(path)


def check_tensors(path: Path, expected: dict[str, Any], strict: bool = True) -> None:
    """Every tensor in the file has the dtype and shape of the model's own (``expected``: its state_dict).

    Loading copies values across dtypes and same-size shapes would still clash, so a file
    whose float32 bytes are labelled int32, or whose [4, 8] is stored as [8, 4], must be
    refused by name before anything is read.
    """
    import torch

    names = {
        torch.float64: "F64",
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.int32: "I32",
        torch.int16: "I16",
        torch.int8: "I8",
        torch.uint8: "U8",
        torch.bool: "BOOL",
    }
    found = weights_header(path)
    missing, extra = [k for k in expected if k not in found], [k for k in found if k not in expected]
    if strict and (missing or extra):
        raise DataError(f"weights {path} do not match config.json: missing tensors {_some(missing)}, unexpected tensors {_some(extra)}")
    for key in expected.keys() & found.keys():
        want = (names.get(expected[key].dtype, str(expected[key].dtype)), list(expected[key].shape))
        got = (found[key].get("dtype"), found[key].get("shape")) if isinstance(found[key], dict) else (None, None)
        if got != want:
            raise DataError(
                f"weights {path}: tensor {key!r} is {got[0]} {got[1]}, the model built from config.json "
                f"has {want[0]} {want[1]}; refused, nothing was loaded"
            )


def _some(keys: list[str]) -> str:
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return ", ".join(map(repr, keys[:5])) + more if keys else "none"


def verify_download(path: str | os.PathLike) -> Path:
    """Check a file from the HF cache against the sha256 the Hub sent as its ETag (the blob's name).

    The cache keeps an LFS file as ``blobs/<sha256>``; a file changed on disk or cut short in
    transit no longer matches its name. Files outside the cache (a local folder) are not checked.
    """
    path = Path(path)
    blob = path.resolve()
    if blob.parent.name == "blobs" and SHA256.fullmatch(blob.name):
        digest = hashlib.sha256()
        with blob.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != blob.name:
            raise DataError(
                f"{path.name} in the Hugging Face cache ({blob}) does not match the sha256 the Hub gave "
                f"for it: the file was changed or cut short; delete it and pull again"
            )
    return path


# -- errors from huggingface_hub, said in one line ---------------------------


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None = None, action: str = "pull") -> Iterator[None]:
    """Turn huggingface_hub and network errors into `HubError` naming the repo, revision and endpoint."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HFValidationError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    endpoint = constants.ENDPOINT
    after = "; nothing was committed, push again" if action == "push" else ""
    try:
        yield
    except HubError:
        raise
    except HFValidationError:
        check_repo_id(repo_id)
        raise
    except LocalEntryNotFoundError:
        raise HubError(
            f"{where} is not in the Hugging Face cache and the Hub cannot be asked (HF_HUB_OFFLINE=1 "
            f"or no connection to {endpoint}): pull it once online"
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"revision {revision or 'main'!r} not found in {repo_id} on {endpoint}") from None
    except RepositoryNotFoundError:
        raise HubError(repo_not_found(repo_id, endpoint)) from None
    except EntryNotFoundError as exc:
        name = _entry_name(exc)
        raise HubError(f"{name} not found in {where} on {endpoint}: not an mmcore model repo? (it needs {CONFIG} and {WEIGHTS})") from None
    except HfHubHTTPError as exc:
        status = _status(exc)
        if status == 404:  # a bare 404: a proxy or mirror that drops the Hub's X-Error-Code
            raise HubError(repo_not_found(repo_id, endpoint)) from None
        if status == 401:
            raise HubError(
                f"the Hub at {endpoint} refused the token (HTTP 401) for {where}: set HF_TOKEN to a valid token{after}"
            ) from None
        if status == 403:
            raise HubError(
                f"the token may not {action} {where} on {endpoint} (HTTP 403): it needs write access to that namespace{after}"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubError(f"the Hub at {endpoint} answered HTTP {status} for {where}: {first}{after}") from None
    except Exception as exc:
        if _network(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise HubError(f"network error talking to {endpoint} for {where} ({type(exc).__name__}: {first}){after}") from None
        raise


def repo_not_found(repo_id: str, endpoint: str) -> str:
    return f"repo {repo_id} not found on {endpoint} (or it is private and the token cannot read it: set HF_TOKEN)"


def _status(exc: Exception) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _network(exc: Exception) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.split(".")[0] in NETWORK_MODULES


def _entry_name(exc: Exception) -> str:
    match = re.search(r"/resolve/[^/\s]+/(\S+?)\.?(?:\s|$)", str(exc))
    return match.group(1) if match else "a file"


# -- push, pull, card ----------------------------------------------------------


def folder_card(folder: Path, config: dict[str, Any], repo: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """The card rendered again from the folder's config and the facts its card recorded."""
    card = folder / CARD
    info = card_info(card.read_text()) if card.is_file() else {}
    info.update({k: v for k, v in overrides.items() if v is not None})
    if "picture" not in info and (folder / PICTURE).is_file():
        info["picture"] = PICTURE
    return render_card(config, info, repo), info


def write_card(path: str | os.PathLike, repo: str | None = None, **overrides: Any) -> Path:
    """Regenerate a folder's README.md (atomically) — after editing the license, say."""
    folder = model_folder(path)
    named = card_info((folder / CARD).read_text()).get("repo") if (folder / CARD).is_file() else None
    text, _ = folder_card(folder, read_config(folder), repo or named or "path/to/model", **overrides)
    write_atomic(folder / CARD, text.encode())
    return folder / CARD


def push(
    path: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    message: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """Upload a model folder as one commit; returns huggingface_hub's ``CommitInfo``.

    Only the folder's files travel (config, weights, card, picture, recipe); the card is
    rendered again so its usage lines name ``repo_id``. ``revision`` is a branch, created
    from main if it does not exist yet.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    check_repo_id(repo_id)
    folder = model_folder(path)
    config = read_config(folder)
    from mmcore.model import check_plugins

    check_plugins(config)  # a folder that would not load on the other side is not pushed
    if not (folder / WEIGHTS).is_file():
        raise DataError(f"no {WEIGHTS} in {folder}: only safetensors weights are shared")
    check_weights(folder / WEIGHTS)
    card, info = folder_card(folder, config, repo_id)
    files: dict[str, Any] = {CONFIG: folder / CONFIG, WEIGHTS: folder / WEIGHTS, CARD: card.encode()}
    if (folder / PICTURE).is_file():
        files[PICTURE] = folder / PICTURE
    if (folder / RECIPE).is_file() or info.get("recipe"):
        files[RECIPE] = folder / RECIPE if (folder / RECIPE).is_file() else info["recipe"].encode()
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(repo_id, revision, "push"):
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(src) if isinstance(src, Path) else src) for name, src in files.items()
        ]
        return api.create_commit(repo_id, operations, commit_message=message or f"mm push {folder.name}", revision=revision)


def pull(
    repo_id: str,
    *,
    revision: str | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    check: bool = True,
) -> Path:
    """Download a model folder (from the cache when offline) and check it; returns its path.

    The folder lands in the HF cache (``snapshots/<commit>``); ``local_dir`` gets a copy of it.
    """
    check_repo_id(repo_id)
    if revision is not None and not safe_name(revision):
        raise HubError(
            f"invalid revision {revision!r}: expected a branch, tag or commit sha (no empty, '.' or '..' "
            f"parts, no backslash, not starting with '/')"
        )
    with hub_errors(repo_id, revision, "pull"):
        folder = fetch(
            repo_id,
            revision,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
            force_download=force_download,
            local_files_only=local_files_only,
        )
    if local_dir is not None:
        folder = export(folder, Path(local_dir))
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            where = f"{repo_id}@{revision}" if revision else repo_id
            raise HubError(
                f"{name} not found in {where}: not an mmcore model repo? (it needs {CONFIG} and {WEIGHTS}; pickle weights are never loaded)"
            )
    if check:
        from mmcore.model import check_plugins

        check_plugins(read_config(folder))
        check_weights(verify_download(folder / WEIGHTS))
    return folder


def fetch(
    repo_id: str,
    revision: str | None,
    *,
    cache_dir=None,
    token=None,
    endpoint=None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> Path:
    """The model folder's files at ``revision`` into the HF cache; returns ``snapshots/<commit>``.

    Every path is built from checked values only (the repo id, a 40-hex commit, the listed
    names of a model folder, hex shas); each file is downloaded beside its place and renamed
    there once its sha is the one listed. Offline, or with the Hub unreachable, the folder
    pulled before is used.
    """
    from huggingface_hub import HfApi, constants

    where = f"{repo_id}@{revision}" if revision else repo_id
    named = endpoint or constants.ENDPOINT
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    if local_files_only or constants.HF_HUB_OFFLINE:
        return cached(storage, revision, where, named)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        sha = check_commit(resolve_revision(api, repo_id, revision, named), where, named)
    except Exception as exc:
        if _network(exc) or (_status(exc) or 0) >= 500:  # the Hub is unreachable: the cache may hold it
            with contextlib.suppress(HubError):
                return cached(storage, revision, where, named)
        raise
    snapshot = storage / "snapshots" / sha
    files = listing(api, repo_id, sha, where, named)
    for name, (digest, size) in files.items():
        if (snapshot / name).is_file() and not force_download:
            continue
        blob = storage / "blobs" / digest
        if force_download or not blob.is_file():
            download(repo_id, name, sha, digest, size, blob, token=token, endpoint=endpoint, where=where, named=named)
        link(blob, snapshot / name)
    if revision != sha:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        write_atomic(storage / "refs" / (revision or "main"), sha.encode())
    for name in files:  # belt and braces: nothing pulled resolves outside the cache
        if not (snapshot / name).resolve().is_relative_to(cache.resolve()):
            raise HubError(f"{snapshot / name} resolves outside the Hugging Face cache {cache}: refused")
    return snapshot


def resolve_revision(api, repo_id: str, revision: str | None, endpoint: str) -> Any:
    """The commit sha the Hub gives for ``revision``; a bare 404 (no X-Error-Code) is told apart
    from a missing repo by asking for the repo itself."""
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return api.model_info(repo_id, revision=revision or "main").sha  # .../revision/main, as mirrors serve it
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise
    except HfHubHTTPError as exc:
        if _status(exc) != 404 or revision is None:
            raise
    api.model_info(repo_id, revision="main")  # raises (a 404: repo not found) unless the repo is there
    raise HubError(f"revision {revision!r} not found in {repo_id} on {endpoint}")


def listing(api, repo_id: str, sha: str, where: str, endpoint: str) -> dict[str, tuple[str, int]]:
    """name -> (sha, size) of the model folder's files at commit ``sha``; every listed name is checked."""
    from huggingface_hub.hf_api import RepoFile

    files = {}
    for item in api.list_repo_tree(repo_id, revision=sha, recursive=True):
        if not safe_name(item.path):
            raise HubError(
                f"the Hub at {endpoint} lists a file {item.path!r} in {where}: expected a relative path "
                f"(no empty, '.' or '..' parts, no backslash or control character); refused, nothing "
                f"was written"
            )
        if isinstance(item, RepoFile) and item.path in FOLDER_FILES:
            digest, size = (item.lfs.sha256, item.lfs.size) if item.lfs else (item.blob_id, item.size)
            if not (isinstance(digest, str) and (SHA256 if item.lfs else COMMIT).fullmatch(digest)):
                raise HubError(
                    f"the Hub at {endpoint} gave {digest!r} as the sha of {item.path} in {where}: "
                    f"expected {64 if item.lfs else 40} hex digits; refused, nothing was written"
                )
            files[item.path] = (digest, size)
    return files


def download(repo_id: str, name: str, sha: str, digest: str, size: int, dest: Path, *, token, endpoint, where: str, named: str) -> None:
    """One file to a temporary file beside ``dest``, renamed to ``dest`` only once its sha is ``digest``.

    The HEAD first, as huggingface_hub does, only to refuse a server whose headers disagree
    with its listing; no header becomes a path.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(repo_id, name, revision=sha, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token)
    if meta.commit_hash != sha or not (isinstance(meta.etag, str) and (SHA256.fullmatch(meta.etag) or COMMIT.fullmatch(meta.etag))):
        raise HubError(
            f"the Hub at {named} answered commit {meta.commit_hash!r} and ETag {meta.etag!r} for {name} in "
            f"{where}: expected commit {sha} and a 40 or 64 hex digit ETag; refused, {name} not downloaded"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}-", suffix=".incomplete")
    try:
        with os.fdopen(fd, "wb") as f:
            http_get(url, f, headers=build_hf_headers(token=token), expected_size=size, displayed_filename=name)
        if file_sha(Path(tmp), len(digest)) != digest:
            raise DataError(f"{name} from {where} on {named} does not match the sha the Hub listed for it ({digest}): refused, not kept")
        os.replace(tmp, dest)
    except ConnectionError:
        raise
    except OSError as exc:  # http_get's size check, or the disk
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{name} from {where} on {named} arrived incomplete or could not be written ({first}): not kept, pull again"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_sha(path: Path, length: int) -> str:
    """sha256 (64 hex digits: an LFS file) or git's blob sha1 (40: a file stored in git)."""
    digest = hashlib.sha256() if length == 64 else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def link(blob: Path, target: Path) -> None:
    """``snapshots/<commit>/<name>`` -> ``../../blobs/<sha>`` (a copy where symlinks are not allowed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}-{os.getpid()}.link")
    try:
        os.symlink(os.path.relpath(blob, target.parent), tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
    os.replace(tmp, target)


def cached(storage: Path, revision: str | None, where: str, endpoint: str) -> Path:
    """The folder pulled before, found through ``refs/<revision>`` (whose commit is checked again)."""
    sha = revision if revision and COMMIT.fullmatch(revision) else None
    ref = storage / "refs" / (revision or "main")
    if sha is None and ref.is_file():
        sha = ref.read_text().strip()
    if sha and COMMIT.fullmatch(sha) and (storage / "snapshots" / sha / CONFIG).is_file():
        return storage / "snapshots" / sha
    raise HubError(
        f"{where} is not in the Hugging Face cache and the Hub cannot be asked (HF_HUB_OFFLINE=1 "
        f"or no connection to {endpoint}): pull it once online"
    )


def export(folder: Path, local_dir: Path) -> Path:
    """Copy a pulled folder's files into ``local_dir`` (each replaced atomically; other files stay)."""
    local_dir.mkdir(parents=True, exist_ok=True)
    for name in FOLDER_FILES:
        if (folder / name).is_file():
            write_atomic(local_dir / name, (folder / name).read_bytes())
    return local_dir


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
