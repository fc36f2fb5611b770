"""What the store shows or logs holds no secret: URLs, terminal text, engine logs.

* :func:`safe_url`: every URL the package prints, with the password of its userinfo and
  of its query (``?password=``, which libpq and PyMySQL accept) masked; :func:`url_secrets`
  the passwords themselves, to mask in a driver's message.
* :func:`printable` / :func:`printable_json`: stored values as the command line prints
  them, with control and invisible characters escaped, so that a stored value cannot
  move the cursor, rewrite or hide a line, reorder text (bidi overrides) or open a
  terminal hyperlink (OSC 8).
* :func:`log_warnings`: why an engine's log would hold token values (bound parameters, rows).
"""

from __future__ import annotations

import logging
from urllib.parse import quote, quote_plus

from sqlalchemy import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})
"""URL query keys whose value is a password (libpq: ``password``, ``sslpassword``;
PyMySQL: ``password``, ``passwd``), compared case-insensitively."""


def _secret_key(key: str) -> bool:
    return key.lower() in SECRET_QUERY_KEYS


def safe_url(url: str | URL) -> str:
    """The URL as text with every password masked (userinfo and query).

    Args:
        url: a ``sqlalchemy.URL`` or its string form.

    Returns:
        e.g. ``postgresql+psycopg2://app:***@db/app?password=***&sslmode=require``. A string
        that is not a URL is returned as ``<not a database URL>`` (it may hold a password).
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, TypeError, ValueError):
        return "<not a database URL>"
    placeholder = "ZSSMASKEDPASSWORD"  # rendered as is, where "***" would be percent-encoded
    query = {k: placeholder if _secret_key(k) else v for k, v in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace(placeholder, MASK)


def url_secrets(url: str | URL | None) -> set[str]:
    """The passwords ``url`` holds (userinfo and query), as written and percent-decoded.

    Returns:
        A set of non-empty strings; empty for None or a string that is not a URL.
    """
    if url is None:
        return set()
    try:
        parsed = make_url(url)
    except (ArgumentError, TypeError, ValueError):
        return set()
    values = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if _secret_key(key):
            values.extend([value] if isinstance(value, str) else value)
    found: set[str] = set()
    for value in values:
        text = str(value)
        if text:
            found |= {text, quote(text, safe=""), quote_plus(text)}
    return found


def password_in_userinfo(url: URL) -> URL:
    """``url`` with a ``?password=`` query moved to the userinfo password.

    The drivers take either as the same ``password`` connect argument; in the userinfo,
    SQLAlchemy masks it wherever it prints the URL (the engine's repr, its log). A URL
    with both, or with several query passwords, is returned unchanged.
    """
    value = url.query.get("password")
    if not isinstance(value, str) or url.password is not None:
        return url
    return url.set(password=value).difference_update_query(["password"])


def _escape(char: str) -> str:
    code = ord(char)
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\x1b``, ``\\r``,
    ``\\n``, ``\\u202e``...): Python's ``str.isprintable``, which excludes control and
    format characters (bidi overrides, zero-width characters), line and paragraph
    separators and every space but the plain one. Backslashes are left as they are."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def printable_json(text: str) -> str:
    """JSON text as :func:`json.dumps` made it, with every non-printable character inside
    its strings written as a ``\\uXXXX`` escape: the same JSON value, safe on a terminal.

    ``json.dumps`` escapes only C0 controls; raw DEL, C1 controls (``\\x9b`` is a CSI on
    some terminals) and bidi overrides would reach the terminal. Outside strings it only
    writes newlines and spaces, which are kept.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or char == "\n":
            out.append(char)
            continue
        code = ord(char)
        if code >= 0x10000:  # a surrogate pair, as JSON writes characters outside the BMP
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def log_warnings(engine: Engine, rows_hidden_by: type[logging.Filter] | None = None) -> list[str]:
    """What to warn about an engine whose log or errors will hold token values.

    * ``hide_parameters=False`` (``create_engine``'s default): SQLAlchemy's exceptions carry
      the bound values (the store's :class:`~zoho_sa_store.errors.TokenStoreError` drops
      them, a statement of your own on the engine does not);
    * bound parameters in the log (tokens saved and looked up): the engine logs statements
      (``echo=True`` or ``"debug"``, or its logger enabled at INFO) and does not hide them;
    * result rows in the log (stored tokens): the engine logs at DEBUG (``echo="debug"``,
      or its logger at DEBUG) and its logger has no ``rows_hidden_by`` filter (the store's
      engines log as ``sqlalchemy.engine.Engine.zoho_sa_store``, which has one; an engine
      with another ``logging_name``, or none, does not).

    Logging configured after the check is not seen.

    Returns:
        One message per problem (empty: nothing to warn about).
    """
    logger = engine.logger
    named = logger if isinstance(logger, logging.Logger) else logger.logger  # echo=: wrapped
    warnings = []
    if not engine.hide_parameters:
        warnings.append("the engine does not hide parameters: its errors may show token values")
        if logger.isEnabledFor(logging.INFO):
            warnings.append(
                f"secrets will reach the log: the engine logs bound parameters (tokens) to "
                f"{named.name!r}; build it with zoho_sa_store.make_engine(url) or pass "
                "hide_parameters=True"
            )
    filtered = rows_hidden_by is not None and any(
        isinstance(f, rows_hidden_by) for f in getattr(named, "filters", ())
    )
    if logger.isEnabledFor(logging.DEBUG) and not filtered:
        warnings.append(
            f"secrets will reach the log: the engine logs result rows (stored tokens) to "
            f"{named.name!r} at DEBUG; build it with zoho_sa_store.make_engine(url), whose "
            "log hides rows, or log that logger at INFO or above"
        )
    return warnings
