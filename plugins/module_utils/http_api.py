# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain HTTP for synap.ops modules: one request, its status and body, and failures as one short line.

Failures are classified here and nowhere else (failure_kind()), so every module reports the same kind for the
same failure: refused, timeout, dns, tls, auth_failed, http_error, not_understood or error.

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
from http.client import HTTPException, HTTPSConnection
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse, urlunparse

from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url, url_passwords

# Bodies are read only to finish the exchange (and to show an API's error); a huge page gains nothing.
MAX_BODY_BYTES = 1024 * 1024
# What ansible.module_utils.urls.get_user_agent() returns (some sites block urllib's own agent string).
USER_AGENT = "ansible-httpget"
_CONTEXT_LOCK = threading.Lock()


class HttpFailure(Exception):
    """A request without a usable answer. ``status`` is set when the server answered; the message is one line.

    ``kind`` is the failure kind (failure_kind()), so every module names the same failure the same way.
    """

    def __init__(self, message, status=None, kind=None):
        super().__init__(message)
        self.status = status
        self.kind = kind or (failure_kind(status=status) if status is not None else "error")


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


def failure_kind(exc=None, status=None):
    """The failure kind of one request: from the ``status`` of a non-2xx answer, or the exception that left it
    without an answer. The one classification of HTTP failures every module uses.

    ``auth_failed`` for 401 and 403, ``http_error`` for any other status; ``refused``, ``timeout``, ``dns``,
    ``tls`` for the transport; ``not_understood`` when the server spoke something that is not HTTP; else ``error``.
    """
    if status is not None:
        return "auth_failed" if status in (401, 403) else "http_error"
    reason = getattr(exc, "reason", exc) if isinstance(exc, URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "refused"
    if isinstance(reason, socket.gaierror):
        return "dns"
    if isinstance(reason, (ssl.SSLError, ssl.CertificateError)):
        return "tls"
    if isinstance(reason, HTTPException):
        return "not_understood"
    return "error"


def describe_body(content_type, text):
    """What an answer's body is, in a few words ("an HTML page", "text/plain content"), for messages."""
    if is_html(content_type, text):
        return "an HTML page"
    return "%s content" % ((content_type or "").split(";")[0] or "unlabelled")


def is_html(content_type, text):
    """Whether an answer is a web page: what a UI or a proxy serves where an API or metrics were expected."""
    return "html" in (content_type or "").lower() or (text or "").lstrip()[:15].lower().startswith(
        ("<!doctype html", "<html"))


def http_answer(url, method="GET", body=None, timeout=10.0, validate_certs=True, headers=None):
    """Send one request; return ``(status, content type, text)`` for every HTTP answer, 4xx and 5xx included.

    A request that gets no HTTP answer at all raises HttpFailure with the reason from failure_reason() and the
    kind from failure_kind(). ``body`` (any JSON value) is sent as JSON.
    """
    all_headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body)
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    try:
        response = open_request(url, method, data, all_headers, timeout, validate_certs)
        return response.getcode(), response.headers.get("Content-Type", ""), _read(response)
    except HTTPError as exc:
        try:
            text = _read(exc) if exc.fp else ""
        except (OSError, HTTPException):
            text = ""
        return exc.code, (exc.headers.get("Content-Type", "") if exc.headers else ""), text
    except (URLError, OSError, HTTPException, ValueError) as exc:
        raise HttpFailure(failure_reason(exc, timeout), kind=failure_kind(exc)) from None


def http_request(url, method="GET", body=None, timeout=10.0, validate_certs=True, headers=None):
    """Like http_answer, without the content type: ``(status, text)``."""
    status, _content_type, text = http_answer(url, method, body, timeout, validate_certs, headers)
    return status, text


def json_request(url, method="GET", body=None, timeout=10.0, validate_certs=True, headers=None):
    """Like http_request, for an API that answers JSON: return the parsed body of a 2xx answer.

    Anything else raises HttpFailure with a line naming the request and what came back.
    """
    shown = f"{method} {redact_url(url)}"
    try:
        status, text = http_request(url, method, body, timeout, validate_certs, headers)
    except HttpFailure as exc:
        raise HttpFailure(f"{shown}: {exc}", kind=exc.kind) from None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if not 200 <= status < 300:
        detail = parsed.get("error") if isinstance(parsed, dict) else None
        raise HttpFailure(f"{shown} answered HTTP {status}" + (f": {_first_line(detail)}" if detail else ""),
                          status=status)
    if parsed is None:
        raise HttpFailure(f"{shown} answered HTTP {status} without a JSON body", status=status,
                          kind="not_understood")
    return parsed


def hide_url_password(module, url):
    """Have Ansible mask a password written into ``url`` wherever it would show (results, invocation, logs)."""
    module.no_log_values.update(url_passwords(url))


def _read(response):
    return response.read(MAX_BODY_BYTES).decode("utf-8", "replace")


def _first_line(value):
    text = str(value or "").strip()
    return text.splitlines()[0] if text else ""
