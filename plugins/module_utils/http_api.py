# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain HTTP for synap.ops modules: one request, its status and body, and failures as one short line.

Every HTTP request of the collection goes through open_request(), built on the standard library alone. It does
what ``ansible.module_utils.urls.open_url`` did for these callers without its costs: no import of cryptography,
no new SSL context (a CA store load) per request, and no ``urllib.request.install_opener``, process-wide state
that races when threads of one process make requests with different settings. Each call builds its own opener;
an SSL context is made at the first https connection only, and shared: one per ``validate_certs`` value.
"""

from __future__ import annotations

import functools
import json
import socket
import ssl
import threading
import urllib.request
from http.client import BadStatusLine, HTTPException, HTTPSConnection
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse, urlsplit, urlunparse, urlunsplit

# Bodies are read only to finish the exchange (and to show an API's error); a huge page gains nothing.
MAX_BODY_BYTES = 1024 * 1024
# What ansible.module_utils.urls.get_user_agent() returns (some sites block urllib's own agent string).
USER_AGENT = "ansible-httpget"
_CONTEXT_LOCK = threading.Lock()


class HttpFailure(Exception):
    """A request without a usable answer. ``status`` is set when the server answered; the message is one line."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def tls_context(validate_certs=True):
    """The SSL context of every https request with this ``validate_certs``, made once (loading the CA store)."""
    with _CONTEXT_LOCK:  # threads starting at once make it once, not each
        return _tls_context(bool(validate_certs))


@functools.cache
def _tls_context(validate_certs):
    if validate_certs:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _HTTPSHandler(urllib.request.HTTPSHandler):
    """HTTPS with the shared context, asked for only when an https connection is made (a redirect included)."""

    def __init__(self, validate_certs):
        super().__init__()
        self.validate_certs = validate_certs

    def https_open(self, req):
        return self.do_open(HTTPSConnection, req, context=tls_context(self.validate_certs))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is the answer, as an HTTPError with its 3xx status (open_url's ``follow_redirects="none"``)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise HTTPError(newurl, code, msg, headers, fp)


def open_request(url, method=None, data=None, headers=None, timeout=10.0, validate_certs=True,
                 follow_redirects=True, force=False, user_agent=USER_AGENT):
    """Send one request and return the response (``http.client.HTTPResponse``), as ``open_url`` did.

    ``data`` (bytes or str) is the body; ``method`` defaults to POST with a body, else GET. Redirects are followed
    as urllib does unless ``follow_redirects`` is false. ``force`` asks caches for a fresh answer. A user and
    password in the URL answer a Basic or Digest challenge. Proxies come from the environment.

    Raises what urllib raises: HTTPError for an HTTP error answer (it carries the status and the body),
    URLError (``.reason`` the cause: ConnectionRefusedError, socket.gaierror, TimeoutError, ssl.SSLError...)
    when the request could not be sent, OSError or HTTPException when the answer broke off, ValueError for a
    URL that cannot be requested.
    """
    url, handlers = _authentication(url)
    handlers.append(_HTTPSHandler(validate_certs))
    if not follow_redirects:
        handlers.append(_NoRedirect())
    opener = urllib.request.build_opener(*handlers)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    request = urllib.request.Request(url, data=data, method=(method or ("POST" if data else "GET")).upper())
    if user_agent:
        request.add_header("User-agent", user_agent)
    if force:
        request.add_header("cache-control", "no-cache")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    return opener.open(request, timeout=timeout)


def _authentication(url):
    """``(url without its credentials, handlers)``: a user and password in the URL answer Basic or Digest."""
    parts = urlparse(url)
    if "@" not in parts.netloc:
        return url, []
    credentials, netloc = parts.netloc.split("@", 1)
    username, _sep, password = credentials.partition(":")
    url = urlunparse(parts._replace(netloc=netloc))
    if not username:
        return url, []
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, netloc, unquote(username), unquote(password))
    return url, [urllib.request.HTTPBasicAuthHandler(passwords), urllib.request.HTTPDigestAuthHandler(passwords)]


def failure_reason(exc, timeout):
    """What went wrong below HTTP, in a few words: "connection refused", "timed out after 5 s"..."""
    reason = getattr(exc, "reason", exc) if isinstance(exc, URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror or reason})"
    if isinstance(reason, ssl.SSLError):
        return "TLS failure: {}".format(_first_line(getattr(reason, "reason", None) or reason))
    if isinstance(reason, HTTPException):
        return f"broken HTTP answer: {_first_line(reason) or type(reason).__name__}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return _first_line(reason) or type(reason).__name__


def http_request(url, method="GET", body=None, timeout=10.0, validate_certs=True, headers=None):
    """Send one request; return ``(status, text)`` for every HTTP answer, 4xx and 5xx included.

    A request that gets no HTTP answer at all raises HttpFailure with the reason from failure_reason().
    ``body`` (any JSON value) is sent as JSON.
    """
    all_headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body)
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    try:
        response = open_request(url, method, data, all_headers, timeout, validate_certs)
        return response.getcode(), _read(response)
    except HTTPError as exc:
        try:
            text = _read(exc) if exc.fp else ""
        except (OSError, HTTPException):
            text = ""
        return exc.code, text
    except (URLError, OSError, HTTPException, ValueError) as exc:
        raise HttpFailure(failure_reason(exc, timeout)) from None


def json_request(url, method="GET", body=None, timeout=10.0, validate_certs=True, headers=None):
    """Like http_request, for an API that answers JSON: return the parsed body of a 2xx answer.

    Anything else raises HttpFailure with a line naming the request and what came back.
    """
    shown = f"{method} {redact_url(url)}"
    try:
        status, text = http_request(url, method, body, timeout, validate_certs, headers)
    except HttpFailure as exc:
        raise HttpFailure(f"{shown}: {exc}") from None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if not 200 <= status < 300:
        detail = parsed.get("error") if isinstance(parsed, dict) else None
        raise HttpFailure(f"{shown} answered HTTP {status}" + (f": {_first_line(detail)}" if detail else ""),
                          status=status)
    if parsed is None:
        raise HttpFailure(f"{shown} answered HTTP {status} without a JSON body", status=status)
    return parsed


class FetchError(Exception):
    """What fetch_url fails the whole module for (a URL it cannot request at all); ``info`` goes with it."""

    def __init__(self, message, info):
        super().__init__(message)
        self.info = info


def fetch(url, timeout=10, validate_certs=True):
    """GET ``url`` as Ansible's ``fetch_url(module, url, timeout=timeout, force=True)`` does, without a module.

    Returns ``(response, info)`` with fetch_url's meaning: ``response`` is None when no HTTP answer came, and an
    HTTP error answer is the response, its body already read into ``info["body"]``; ``info`` has ``status``
    (-1 without an answer) and ``msg`` in fetch_url's words. What fetch_url would fail the module for raises
    FetchError. Unlike fetch_url it touches no process-wide state (fetch_url repoints ``tempfile.tempdir``).
    """
    info = {"url": redact_url(url), "status": -1}
    try:
        response = open_request(url, timeout=timeout, validate_certs=validate_certs, force=True)
        info.update(msg="OK ({} bytes)".format(response.headers.get("Content-Length", "unknown")),
                    url=redact_url(response.geturl()), status=response.code)
    except ValueError as exc:
        raise FetchError(str(exc), info) from None
    except HTTPError as exc:
        response = exc
        try:
            if exc.fp is None:
                raise AttributeError  # such an HTTPError cannot be read (nor closed)
            body = exc.read()
        except AttributeError:
            body = ""
        else:
            exc.close()
        info.update(msg=str(exc), body=body, status=exc.code)
    except URLError as exc:
        response = None
        info.update(msg=f"Request failed: {exc}", status=int(getattr(exc, "code", -1)))
    except OSError as exc:
        response = None
        info.update(msg=f"Connection failure: {exc}", status=-1)
    except BadStatusLine as exc:
        response = None
        info.update(msg="Connection failure: connection was closed before a valid response was received: "
                        f"{exc.line}", status=-1)
    except Exception as exc:  # fetch_url turns anything else into an answer without HTTP too
        response = None
        info.update(msg=f"An unknown error occurred: {exc}", status=-1)
    return response, info


def redact_url(url):
    """``url`` without a password in its user part, so it can be shown and returned."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:********@{host}"))


def hide_url_password(module, url):
    """Have Ansible mask a password written into ``url`` wherever it would show (results, invocation, logs)."""
    password = urlsplit(url).password
    if password:
        module.no_log_values.add(password)


def _read(response):
    return response.read(MAX_BODY_BYTES).decode("utf-8", "replace")


def _first_line(value):
    text = str(value or "").strip()
    return text.splitlines()[0] if text else ""
