"""Lists fetched from an address (tasks/recipients/remote.py): a real HTTP server on 127.0.0.1,
a real TLS server with a certificate nobody signed, fsspec's memory:// and file:// storages."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fsspec
import pytest

from tasks.errors import OperatorError
from tasks.recipients import load_recipients
from tasks.recipients import remote as rm

CSV = "id;nom;mobile\n1;Client 1;06 12 34 56 78\n2;Client 2;06 98 76 54 32\n"


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in ("/listes/liste%20mai.csv", "/export"):
            body = CSV.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path == "/private.csv":
            self.send_response(403)
            self.end_headers()
        elif path == "/page":
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def http_host() -> Iterator[str]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Files))


@pytest.fixture(scope="module")
def https_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TLS with a self-signed certificate: what a man in the middle would present."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


def refused(url: str, folder: Path, **kwargs: bool) -> str:
    with pytest.raises(rm.RemoteFileError) as caught:
        rm.download(url, folder, **kwargs)
    line = caught.value.message
    assert isinstance(caught.value, OperatorError) and "\n" not in line
    return line


def test_a_list_by_https_address_is_fetched_and_read(http_host: str, tmp_path: Path) -> None:
    # http is allowed to 127.0.0.1 only (the tests); the name keeps its suffix, tidied
    got = rm.download(f"http://{http_host}/listes/liste%20mai.csv?v=2", tmp_path / "run")
    assert got == tmp_path / "run" / "liste_mai.csv"
    frame = load_recipients(path=got)
    assert list(frame["mobile"]) == ["06 12 34 56 78", "06 98 76 54 32"]


def test_an_address_without_a_file_name_takes_the_type_the_server_says(
    http_host: str, tmp_path: Path
) -> None:
    got = rm.download(f"http://{http_host}/export?format=csv", tmp_path)
    assert got.name == "liste.csv" and got.read_text(encoding="utf-8") == CSV
    line = refused(f"http://{http_host}/page", tmp_path)
    assert "ne désigne pas un fichier .csv ou .xlsx" in line


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/missing.csv", "aucun fichier à l'adresse"),
        ("/private.csv", "accès refusé"),
    ],
)
def test_a_refusal_says_why_without_the_credentials_of_the_address(
    http_host: str, tmp_path: Path, path: str, words: str
) -> None:
    url = f"http://agent:Pa55word@{http_host}{path}?X-Amz-Signature=deadbeef&token=t0k"
    line = refused(url, tmp_path)
    assert words in line
    assert f"http://•••@{http_host}{path}?•••" in line
    for secret in ("Pa55word", "agent", "deadbeef", "t0k", "Signature"):
        assert secret not in line
    assert list(tmp_path.iterdir()) == []  # nothing half written


def test_a_certificate_nobody_signed_is_refused(https_host: str, tmp_path: Path) -> None:
    line = refused(f"https://{https_host}/listes/liste%20mai.csv", tmp_path)
    assert "certificat" in line and "n'est pas valide" in line


def test_plain_http_is_refused_outside_this_machine(tmp_path: Path) -> None:
    line = refused("http://files.example.org/liste.csv", tmp_path)
    assert "n'est pas chiffrée" in line and "https://" in line


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    from scripts.server import free_port

    line = refused(f"http://127.0.0.1:{free_port()}/liste.csv", tmp_path)
    assert "injoignable" in line


def test_a_file_over_the_cap_is_not_kept(
    http_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rm, "MAX_BYTES", 10)
    line = refused(f"http://{http_host}/listes/liste%20mai.csv", tmp_path)
    assert "dépasse" in line
    assert list(tmp_path.iterdir()) == []


def test_object_storage_through_fsspec(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Nom", "Portable"])
    sheet.append(["Client 1", "0612345678"])
    book.save(tmp_path / "source.xlsx")
    with fsspec.open("memory://bucket/mairie/liste.xlsx", "wb") as f:
        f.write((tmp_path / "source.xlsx").read_bytes())

    got = rm.download("memory://bucket/mairie/liste.xlsx", tmp_path / "run")
    assert got.name == "liste.xlsx"
    assert list(load_recipients(path=got)["Portable"]) == ["0612345678"]
    assert "aucun fichier" in refused("memory://bucket/mairie/absente.csv", tmp_path)


def test_this_machines_files_only_when_allowed(tmp_path: Path) -> None:
    source = tmp_path / "liste.csv"
    source.write_text(CSV, encoding="utf-8")
    line = refused(source.as_uri(), tmp_path / "run")
    assert "boîte de dépôt" in line
    got = rm.download(source.as_uri(), tmp_path / "run", allow_local=True)
    assert got.read_text(encoding="utf-8") == CSV


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("liste.csv", "n'est pas une adresse de fichier"),
        ("C:\\Users\\agent\\liste.csv", "n'est pas une adresse de fichier"),
        ("foo://bucket/liste.csv", "inconnu"),
        ("s3://bucket/liste.csv", "s3fs"),  # not installed here: what IT must add
        ("memory://bucket/liste.pdf", "ne désigne pas un fichier .csv ou .xlsx"),
    ],
)
def test_addresses_that_cannot_be_fetched(tmp_path: Path, url: str, words: str) -> None:
    assert words in refused(url, tmp_path)


def test_shown_url_hides_userinfo_and_query() -> None:
    assert rm.shown_url("s3://key:secret@bucket/a.csv?versionId=1") == "s3://•••@bucket/a.csv?•••"
    assert rm.shown_url("https://h.example/a.csv") == "https://h.example/a.csv"
    assert rm.shown_url("simplecache::s3://b/a.csv?sig=x") == "simplecache::s3://b/a.csv?•••"
