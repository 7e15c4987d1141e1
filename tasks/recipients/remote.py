"""A list of recipients fetched from an address: https, or object storage through fsspec
(s3://, gs://, az://, and whatever fsspec knows), into a local file the loaders then read.

    download(url, folder) -> Path      the local copy, named after the URL's file (.csv, .xlsx)

Every failure is a ``RemoteFileError``: one French line saying what and the next step, quoting
the address without its user, password or query string (where tokens and signatures live).
https only, TLS verified, with timeouts and a size cap; http:// is for 127.0.0.1 (tests).
Files of this machine (file://) are refused unless the caller allows them: an address typed in
a form must not reach what the data folder's confinement keeps out (flows/parameters.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from tasks.errors import OperatorError
from tasks.files import atomic_path

SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm")  # what tasks/recipients/ reads
# A server that names no file in its address may still say what it sends.
_BY_CONTENT_TYPE = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "text/tab-separated-values": ".tsv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}
MAX_BYTES = 200 * 1024 * 1024  # a million rows of CSV is about 50 MB
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0  # between two blocks of the answer, not for the whole file
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# fsspec protocols that read this machine's own files (or wrap one that does).
LOCAL_PROTOCOLS = {"file", "local", "dir", "zip", "tar", "libarchive", "reference"}
_BLOCK = 1 << 16


class RemoteFileError(OperatorError):
    """The file at an address cannot be fetched: one French line, no credential in it."""


def shown_url(url: str) -> str:
    """The address as a message quotes it: user, password, query and fragment hidden."""
    return "::".join(_shown_part(part) for part in str(url).split("::"))


def _shown_part(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(adresse illisible)"
    if "@" in parts.netloc:
        host = "•••@" + host
    query = "?•••" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + query


def download(url: str, folder: Path, *, allow_local: bool = False) -> Path:
    """Fetch the file at ``url`` into ``folder``; its local path, named after the URL's file
    (its .csv / .xlsx kept). ``allow_local``: also file:// (tests, a command line)."""
    url = str(url).strip()
    shown = shown_url(url)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise RemoteFileError(
            f"« {shown} » n'est pas une adresse de fichier : donnez une adresse https://… ou de "
            "stockage (s3://, gs://, az://…)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if scheme in ("http", "https") and "::" not in url:
        return _by_http(url, scheme, folder, shown)
    return _by_fsspec(url, folder, shown, allow_local)


def _file_name(url: str, shown: str, content_type: str = "") -> str:
    """The local file's name: the URL's last path segment, tidied, its suffix kept."""
    path = PurePosixPath(unquote(urlsplit(url.split("::")[-1]).path))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        suffix = _BY_CONTENT_TYPE.get(content_type.split(";")[0].strip().lower(), "")
        if not suffix:
            raise RemoteFileError(
                f"l'adresse {shown} ne désigne pas un fichier .csv ou .xlsx : donnez l'adresse "
                "du fichier lui-même (une liste CSV ou Excel)"
            )
        return "liste" + suffix
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "liste"
    return stem[:80] + suffix


def _by_http(url: str, scheme: str, folder: Path, shown: str) -> Path:
    import requests  # the HTTP stack loads on first use

    host = urlsplit(url).hostname or ""
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise RemoteFileError(
            f"l'adresse {shown} n'est pas chiffrée (http) : donnez son adresse en https://"
        )
    try:
        with requests.get(
            url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=True
        ) as answer:
            final = urlsplit(answer.url)
            if final.scheme != "https" and (final.hostname or "") not in LOCAL_HOSTS:
                raise RemoteFileError(
                    f"l'adresse {shown} renvoie vers une adresse non chiffrée (http) : le "
                    "fichier n'est pas téléchargé ; demandez une adresse https://"
                )
            _check_status(answer.status_code, shown, host)
            declared = answer.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_BYTES:
                raise _too_big(shown)
            name = _file_name(url, shown, answer.headers.get("Content-Type", ""))
            return _write(folder / name, answer.iter_content(_BLOCK), shown)
    except requests.exceptions.SSLError:
        raise RemoteFileError(
            f"le certificat du serveur {host} n'est pas valide : la connexion n'est pas sûre, "
            "le fichier n'est pas téléchargé ; prévenez le service informatique"
        ) from None
    except requests.exceptions.Timeout:
        raise RemoteFileError(
            f"le serveur {host} ne répond pas (délai dépassé) : réessayez plus tard"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise RemoteFileError(
            f"le serveur {host} est injoignable ({type(exc).__name__}) : vérifiez l'adresse "
            "ou la connexion au réseau du serveur des campagnes"
        ) from None


def _check_status(status: int, shown: str, host: str) -> None:
    if status == 200:
        return
    if status == 404:
        raise RemoteFileError(
            f"aucun fichier à l'adresse {shown} (réponse 404) : vérifiez l'adresse"
        )
    if status in (401, 403):
        raise RemoteFileError(
            f"accès refusé au fichier {shown} (réponse {status}) : le lien a peut-être "
            "expiré ; demandez un nouveau lien"
        )
    raise RemoteFileError(
        f"le serveur {host} a répondu {status} pour {shown} : réessayez plus tard, ou "
        "vérifiez l'adresse"
    )


def _by_fsspec(url: str, folder: Path, shown: str, allow_local: bool) -> Path:
    import fsspec
    from fsspec.core import split_protocol

    protocols = [(split_protocol(part)[0] or "file").lower() for part in url.split("::")]
    for protocol in protocols:
        if protocol in LOCAL_PROTOCOLS and not allow_local:
            raise RemoteFileError(
                f"les fichiers de ce serveur ({protocol}://) ne se prennent pas par adresse : "
                "déposez le fichier dans la boîte de dépôt de l'enquête"
            )
        try:
            fsspec.get_filesystem_class(protocol)
        except ValueError:
            raise RemoteFileError(
                f"le type d'adresse « {protocol}:// » est inconnu : donnez une adresse "
                "https://, s3://, gs:// ou az://"
            ) from None
        except ImportError as exc:
            # fsspec names the package to install ("Install s3fs to access S3").
            found = re.search(r"install (\w+)", str(exc), re.IGNORECASE)
            package = found.group(1) if found else "fsspec"
            raise RemoteFileError(
                f"le stockage « {protocol}:// » n'est pas installé sur le serveur des "
                f"campagnes : demandez au service informatique d'y installer {package}"
            ) from None
    name = _file_name(url, shown)
    try:
        with fsspec.open(url, "rb") as remote:
            size = getattr(remote, "size", None)
            if isinstance(size, int) and size > MAX_BYTES:
                raise _too_big(shown)
            return _write(folder / name, iter(lambda: remote.read(_BLOCK), b""), shown)
    except FileNotFoundError:
        raise RemoteFileError(f"aucun fichier à l'adresse {shown} : vérifiez l'adresse") from None
    except PermissionError:
        raise RemoteFileError(
            f"accès refusé au fichier {shown} : vérifiez les droits d'accès du serveur des "
            "campagnes à ce stockage"
        ) from None
    except RemoteFileError:
        raise
    except Exception as exc:  # a storage's own errors are many; none may quote the URL
        raise RemoteFileError(
            f"le fichier {shown} ne peut pas être téléchargé ({type(exc).__name__}) : "
            "vérifiez l'adresse, ou prévenez le service informatique"
        ) from None


def _write(target: Path, blocks: Iterable[bytes], shown: str) -> Path:
    """Write the blocks into ``target`` atomically, stopping past the size cap."""
    written = 0
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        for block in blocks:
            written += len(block)
            if written > MAX_BYTES:
                raise _too_big(shown)
            out.write(block)
    return target


def _too_big(shown: str) -> RemoteFileError:
    return RemoteFileError(
        f"le fichier {shown} dépasse {MAX_BYTES // (1024 * 1024)} Mo : découpez la liste, ou "
        "prévenez le service informatique"
    )


__all__ = ["MAX_BYTES", "RemoteFileError", "download", "shown_url"]
