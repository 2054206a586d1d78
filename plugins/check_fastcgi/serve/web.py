"""``--web.config.file``: TLS and basic auth for every endpoint, in the
format of the Prometheus exporter-toolkit (what Go exporters take), so one
file serves serve and the exporters next to it::

    tls_server_config:
      cert_file: server.crt          # relative paths: from the file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: ca.crt
      min_version: TLS12             # the default; max_version TLS13
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt: htpasswd -nBC 10 prometheus

As in the exporter-toolkit: an unknown key is an error; without
cert_file, key_file, client_ca_file or client_auth_type it is plain HTTP
(with basic auth when users are given); every endpoint, /healthz included,
is behind basic auth; an unknown user costs a bcrypt comparison as a known
one does (no user enumeration by timing); outcomes are cached (the last
CACHE_SIZE credentials) and one bcrypt comparison runs at a time, so a
flood of wrong passwords costs one core and never delays a client whose
credentials are cached; the file and its certificates are read again when
they change, so a renewed certificate needs no restart.

Read with the care of ``--config``: a regular file (no FIFO, no
/dev/zero), 1 MiB at most, as are the certificate and key files; any
problem at start is one line and exit 2. A file that becomes unusable later
is logged once and, as in the exporter-toolkit, every new connection and
request is refused until it is fixed (fails closed: a broken file must not
turn authentication off).

What Python's ssl cannot do the way Go does is refused by name, never
ignored: client_auth_type RequestClientCert and RequireAnyClientCert (ask
for a client certificate without verifying it), cipher_suites and
curve_preferences (Go's names and semantics), the inline cert, key and
client_ca, and rate_limit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import ssl
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..target import UsageError
from ..text import printable
from .config import _read_config

#: Keys of the file, and those of the exporter-toolkit that serve refuses.
TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "client_allowed_sans",
    "prefer_server_cipher_suites",
)
HTTP_KEYS = ("http2", "headers")
UNSUPPORTED = {
    "rate_limit": "rate_limit is not supported by check_fastcgi serve (it bounds connections itself)",
    "cert": "give the certificate as cert_file",
    "key": "give the key as key_file",
    "client_ca": "give the client CAs as client_ca_file",
    "cipher_suites": "cipher_suites is not supported (Go's names); Python's ssl uses OpenSSL's defaults",
    "curve_preferences": "curve_preferences is not supported (Go's names); OpenSSL's defaults apply",
}
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
#: The response headers the exporter-toolkit lets one set, and their values
#: when it restricts them.
EXTRA_HEADERS: Dict[str, Tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
#: What bcrypt's hashes look like ($2a$, $2b$ or htpasswd's $2y$; cost 4-31).
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}\Z")
#: The exporter-toolkit's hash of "fakepassword": what an unknown user's
#: password is compared with, so that it costs what a known user's does.
DUMMY_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
CACHE_SIZE = 100
#: The files are looked at again (stat) at most this often.
RECHECK_SECONDS = 1.0


class WebConfig:
    """What a --web.config.file says, ready to use."""

    __slots__ = ("files", "headers", "sans", "tls", "users")

    def __init__(
        self,
        tls: Optional[ssl.SSLContext],
        users: Dict[str, bytes],
        headers: Dict[str, str],
        sans: Optional[Tuple[str, ...]],
        files: Tuple[str, ...],
    ) -> None:
        self.tls = tls
        self.users = users
        self.headers = headers
        #: client_allowed_sans: the client certificate must hold one.
        self.sans = sans
        #: The file and those it names, watched for changes.
        self.files = files

    def allows_peer(self, connection: ssl.SSLSocket) -> bool:
        """The verified client certificate holds one of client_allowed_sans
        (DNS names, e-mail addresses, IP addresses, URIs, as Go compares)."""
        if self.sans is None:
            return True
        entries: Any = (connection.getpeercert() or {}).get("subjectAltName", ())
        names = [str(entry[1]) for entry in entries]
        return any(_same_name(name, allowed) for name in names for allowed in self.sans)


def _same_name(name: str, allowed: str) -> bool:
    """Names as Go prints them: an IP address in its short form."""
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(allowed)
    except ValueError:
        return name == allowed


def _mapping(value: object, where: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise UsageError(f"{where}: a mapping of names expected")
    return value


def _known(section: Mapping[str, Any], keys: Tuple[str, ...], where: str) -> None:
    for key in section:
        if key in UNSUPPORTED:
            raise UsageError(f"{where}: {key}: {UNSUPPORTED[key]}")
        if key not in keys:
            raise UsageError(f"{where}: unknown setting {printable(key, 40)!r}; known: {', '.join(keys)}")


def _string(section: Mapping[str, Any], key: str, where: str) -> str:
    value = section.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{where}: {key} must be a string")
    return value


#: A web configuration is three levels deep; far more is no configuration.
MAX_DEPTH = 32


def _document(path: str, where: str) -> Dict[str, Any]:
    data = _read_config(path, where)
    try:
        import yaml  # noqa: PLC0415
    except ModuleNotFoundError:
        raise UsageError(f"{where}: reading it needs PyYAML: pip install 'check_fastcgi[serve]'") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = data.decode("utf-8")
        # The composer recurses (in C with libyaml, where a deep document
        # overflows the stack instead of raising): the event stream, which
        # does not, is measured first.
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UsageError(f"{where}: not valid YAML: nested more than {MAX_DEPTH} deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        document = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not valid YAML: not UTF-8") from None
    except RecursionError:
        raise UsageError(f"{where}: not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: not valid YAML: {printable(' '.join(str(exc).split()), 160)}") from None
    return _mapping(document, where)


def load(path: str) -> WebConfig:
    """The file, checked; any problem is a UsageError naming it (one line)."""
    where = f"--web.config.file {printable(path, 200)}"
    document = _document(path, where)
    _known(document, TOP_KEYS, where)
    directory = os.path.dirname(os.path.abspath(path))
    tls_section = _mapping(document.get("tls_server_config"), f"{where}: tls_server_config")
    http_section = _mapping(document.get("http_server_config"), f"{where}: http_server_config")
    users_section = _mapping(document.get("basic_auth_users"), f"{where}: basic_auth_users")
    _known(tls_section, TLS_KEYS, f"{where}: tls_server_config")
    _known(http_section, HTTP_KEYS, f"{where}: http_server_config")
    tls, sans, files = _tls(tls_section, directory, f"{where}: tls_server_config")
    return WebConfig(
        tls,
        _users(users_section, f"{where}: basic_auth_users"),
        _headers(http_section, f"{where}: http_server_config"),
        sans,
        (os.path.abspath(path), *files),
    )


def _users(section: Mapping[str, Any], where: str) -> Dict[str, bytes]:
    users = {}
    for name, hashed in section.items():
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            raise UsageError(f"{where}: {printable(name, 40)!r}: not a bcrypt hash (htpasswd -nB {{user}})")
        users[name] = hashed.encode("ascii")
    if users:
        try:
            import bcrypt  # noqa: F401, PLC0415
        except ModuleNotFoundError:
            raise UsageError(f"{where}: needs bcrypt: pip install 'check_fastcgi[serve]'") from None
    return users


def _headers(section: Mapping[str, Any], where: str) -> Dict[str, str]:
    http2 = section.get("http2", True)
    if not isinstance(http2, bool):
        raise UsageError(f"{where}: http2 must be true or false")  # serve speaks HTTP/1.1 either way
    headers = _mapping(section.get("headers"), f"{where}: headers")
    for name, value in headers.items():
        if name not in EXTRA_HEADERS:
            raise UsageError(
                f"{where}: header {printable(name, 40)!r} cannot be set; known: {', '.join(EXTRA_HEADERS)}"
            )
        allowed = EXTRA_HEADERS[name]
        if not isinstance(value, str) or not value.isprintable() or (allowed and value not in allowed):
            wanted = f"one of {', '.join(allowed)}" if allowed else "a printable string"
            raise UsageError(f"{where}: header {name}: give {wanted}")
    return dict(headers)


class _Encrypted(Exception):
    """The key needs a passphrase: a daemon has nobody to ask."""


def _no_passphrase() -> bytes:
    raise _Encrypted


def _tls(
    section: Mapping[str, Any], directory: str, where: str
) -> Tuple[Optional[ssl.SSLContext], Optional[Tuple[str, ...]], Tuple[str, ...]]:
    """The server's SSLContext (None: plain HTTP), client_allowed_sans, and
    the files it was made from."""
    paths = {key: _string(section, key, where) for key in ("cert_file", "key_file", "client_ca_file")}
    client_auth = _string(section, "client_auth_type", where)
    if not any(paths.values()) and not client_auth:
        return None, None, ()  # as the exporter-toolkit: no TLS configured, plain HTTP
    for key in ("cert_file", "key_file"):
        if not paths[key]:
            raise UsageError(f"{where}: missing {key}")
    paths = {key: os.path.join(directory, path) if path else "" for key, path in paths.items()}
    for key, path in paths.items():
        if path:
            _read_config(path, f"{where}: {key} {printable(path, 200)}")  # a regular file of 1 MiB at most
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions(context, section, where)
    prefer = section.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise UsageError(f"{where}: prefer_server_cipher_suites must be true or false")
    if prefer:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(paths["cert_file"], paths["key_file"], password=_no_passphrase)
    except _Encrypted:
        raise UsageError(f"{where}: key_file is encrypted: give it without a passphrase") from None
    except (ssl.SSLError, OSError) as exc:
        reason = printable(str(getattr(exc, "reason", None) or exc.strerror or exc), 80)
        raise UsageError(
            f"{where}: cert_file and key_file: not a certificate and its key ({reason})"
        ) from None
    mode = _client_auth(context, client_auth, paths["client_ca_file"], where)
    sans = _sans(section, mode, where)
    context.set_alpn_protocols(["http/1.1"])
    return context, sans, tuple(path for path in paths.values() if path)


def _versions(context: ssl.SSLContext, section: Mapping[str, Any], where: str) -> None:
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = _string(section, key, where) or default
        if name not in VERSIONS:
            raise UsageError(f"{where}: {key} {printable(name, 20)!r}: give one of {', '.join(VERSIONS)}")
        versions[key] = VERSIONS[name]
    if versions["min_version"] > versions["max_version"]:
        raise UsageError(f"{where}: min_version is above max_version")
    try:
        context.minimum_version = versions["min_version"]
        context.maximum_version = versions["max_version"]
    except (ValueError, ssl.SSLError) as exc:
        raise UsageError(f"{where}: {printable(str(exc), 120)}") from None


def _client_auth(context: ssl.SSLContext, client_auth: str, ca_file: str, where: str) -> ssl.VerifyMode:
    if client_auth in UNVERIFIED_CLIENT_AUTH:
        raise UsageError(
            f"{where}: client_auth_type {client_auth}: Python's ssl cannot ask for a client certificate "
            "without verifying it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    if client_auth not in CLIENT_AUTH:
        known = ", ".join(name for name in CLIENT_AUTH if name)
        raise UsageError(f"{where}: invalid client_auth_type {printable(client_auth, 40)!r}; known: {known}")
    mode = CLIENT_AUTH[client_auth]
    if ca_file and mode == ssl.CERT_NONE:
        raise UsageError(f"{where}: client_ca_file is given without a client_auth_type that verifies")
    if mode != ssl.CERT_NONE:
        if not ca_file:
            raise UsageError(f"{where}: client_auth_type {client_auth} needs client_ca_file")
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError):
            raise UsageError(f"{where}: client_ca_file holds no PEM certificate") from None
        context.verify_mode = mode
    return mode


def _sans(section: Mapping[str, Any], mode: ssl.VerifyMode, where: str) -> Optional[Tuple[str, ...]]:
    value = section.get("client_allowed_sans")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{where}: client_allowed_sans must be a list of names")
    if mode != ssl.CERT_REQUIRED:
        raise UsageError(f"{where}: client_allowed_sans needs client_auth_type RequireAndVerifyClientCert")
    return tuple(value)


def _stamps(files: Tuple[str, ...]) -> Tuple[object, ...]:
    """What tells a file changed: inode, size, times (or why it cannot be seen)."""
    stamps: List[object] = []
    for path in files:
        try:
            info = os.stat(path)
        except OSError as exc:
            stamps.append((path, exc.errno))
            continue
        stamps.append((path, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(stamps)


class BasicAuth:
    """Basic auth against bcrypt hashes, as the exporter-toolkit does it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        #: One bcrypt comparison at a time: each costs tens of milliseconds of CPU.
        self._bcrypt = threading.Semaphore(1)

    def allowed(self, users: Mapping[str, bytes], header: Optional[str], wait: float) -> Optional[bool]:
        """True for a known user's right password; None when no comparison
        could start within ``wait`` seconds (too many at once)."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        known = users.get(user)
        hashed = known if known is not None else DUMMY_HASH
        key = hashlib.sha256(b"\0".join((user.encode("utf-8", "surrogatepass"), hashed, password))).digest()
        with self._lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
        if verdict is None:
            import bcrypt  # noqa: PLC0415

            if not self._bcrypt.acquire(timeout=wait):
                return None
            try:
                verdict = bcrypt.checkpw(password, hashed)
            except ValueError:  # a password longer than bcrypt's 72 bytes
                verdict = False
            finally:
                self._bcrypt.release()
            with self._lock:
                self._cache[key] = verdict
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return verdict and known is not None


def _credentials(header: Optional[str]) -> Optional[Tuple[str, bytes]]:
    """(user, password) of an ``Authorization: Basic`` header, or None."""
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class WebConfigSource:
    """The --web.config.file as it is now: read at start (a UsageError
    there is fatal), looked at again at most every RECHECK_SECONDS, read
    again when it or a file it names changed. While a changed file is
    unusable, ``current()`` is None: refuse."""

    def __init__(self, path: str, log: Callable[[int, str], None]) -> None:
        self.path = path
        self._log = log
        self._lock = threading.Lock()
        self._config = load(path)
        self._stamps = _stamps(self._config.files)
        self._checked = time.monotonic()
        self._problem: Optional[str] = None
        self.auth = BasicAuth()

    def describe(self) -> str:
        config = self._config
        parts = ["https" if config.tls is not None else "http"]
        if config.tls is not None and config.tls.verify_mode != ssl.CERT_NONE:
            parts.append("client certificates")
        if config.users:
            parts.append(f"basic auth ({len(config.users)} users)")
        return ", ".join(parts)

    def clear_passwords(self) -> bool:
        """Basic auth over plain HTTP: worth a warning."""
        return bool(self._config.users) and self._config.tls is None

    def headers(self) -> Dict[str, str]:
        """The extra response headers of the last usable file."""
        return self._config.headers

    def current(self) -> Optional[WebConfig]:
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= RECHECK_SECONDS:
                self._checked = now
                self._reload_if_changed()
            return None if self._problem is not None else self._config

    def _reload_if_changed(self) -> None:
        stamps = _stamps(self._config.files)
        if stamps == self._stamps:
            return
        self._stamps = stamps
        try:
            config = load(self.path)
        except UsageError as exc:
            if self._problem != str(exc):
                self._log(3, f"{exc}: refusing every connection until it is fixed")
            self._problem = str(exc)
            return
        self._config = config
        self._stamps = _stamps(config.files)
        if self._problem is not None:
            self._log(5, f"--web.config.file {printable(self.path, 200)} usable again: {self.describe()}")
        else:
            self._log(6, f"--web.config.file {printable(self.path, 200)} read again: {self.describe()}")
        self._problem = None
