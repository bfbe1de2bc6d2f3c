"""One PyMySQL connection to DIRAC's databases, with connect and per-statement timeouts and optional TLS.

The settings are a ``database:`` section as the exporter and the agents configure it: host, port, user,
connect_timeout, query_timeout and ``ssl`` (ca, cert, key); the password is passed apart.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl

import pymysql

log = logging.getLogger("bes_exporter")


STATEMENT_TIMEOUT = (1969, 3024)  # MariaDB max_statement_time, MySQL max_execution_time exceeded


class DatabaseError(Exception):
    """The database could not be reached or a statement failed; the message never holds the password.
    ``code`` is the server's error number when there is one."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class Database:
    """Lazily (re)connected connection; every statement is bounded by ``query_timeout``."""

    def __init__(self, settings: dict, password: str = ""):
        self.cfg = settings
        self._password = password
        self.conn: pymysql.connections.Connection | None = None
        self.mariadb = True
        if not any((self.cfg.get("ssl") or {}).values()) and self.cfg["host"] not in ("127.0.0.1", "::1", "localhost"):
            log.warning("the connection to %s is not encrypted; set database.ssl.ca to use TLS (docs/security.md)",
                        self.cfg["host"])

    def _connect(self) -> pymysql.connections.Connection:
        db = self.cfg
        timeout = float(db["query_timeout"])
        try:
            tls = ssl_context(db.get("ssl"))
        except (OSError, ValueError) as exc:
            raise DatabaseError(f"database.ssl: cannot load the TLS files: {exc}") from None
        try:
            conn = pymysql.connect(
                host=db["host"], port=db["port"], user=db["user"], password=self._password,
                connect_timeout=db["connect_timeout"], read_timeout=timeout + 2, write_timeout=timeout + 2,
                autocommit=True, charset="utf8mb4", ssl=tls, ssl_disabled=tls is None,
            )
        except pymysql.MySQLError as exc:
            hint = ""
            if exc.args and exc.args[0] == 1045:
                hint = ("; check database.user and the password" +
                        ("" if tls else ", and set database.ssl if the account requires TLS (REQUIRE SSL/X509)"))
            raise DatabaseError(f"cannot connect to {db['user']}@{db['host']}:{db['port']}"
                                f"{' over TLS' if tls else ''}: {_reason(exc)}{hint}") from None
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            self.mariadb = "mariadb" in cur.fetchone()[0].lower()
            if self.mariadb:
                cur.execute(f"SET SESSION max_statement_time = {timeout:.3f}")
            else:
                cur.execute(f"SET SESSION max_execution_time = {int(timeout * 1000)}")
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass
            self.conn = None

    def ensure(self) -> None:
        if self.conn is None:
            self.conn = self._connect()

    def query(self, sql: str, args=None, timeout: float | None = None) -> list[tuple]:
        """Run one statement, bounded by ``timeout`` seconds if shorter than ``query_timeout``; on any error
        the connection is dropped and DatabaseError raised."""
        self.ensure()
        assert self.conn is not None
        if timeout is not None and timeout < float(self.cfg["query_timeout"]):
            sql = self._bounded(sql, max(timeout, 0.01))
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            self.close()
            raise DatabaseError(_reason(exc), exc.args[0] if exc.args and isinstance(exc.args[0], int) else None) \
                from None

    def _bounded(self, sql: str, seconds: float) -> str:
        """The statement with its own time limit (MariaDB: SET STATEMENT; MySQL: the optimizer hint)."""
        if self.mariadb:
            return f"SET STATEMENT max_statement_time = {seconds:.3f} FOR {sql.strip()}"
        head, _, rest = sql.strip().partition(" ")
        return f"{head} /*+ MAX_EXECUTION_TIME({int(seconds * 1000)}) */ {rest}"

    def now(self) -> dt.datetime:
        """The database's UTC clock, the reference for watermarks and ages."""
        return self.query("SELECT UTC_TIMESTAMP()")[0][0]

    def tables(self, schema: str) -> set[str]:
        rows = self.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,))
        return {r[0] for r in rows}


def check_ssl(opts: dict) -> None:
    """``database.ssl``: readable PEM files that load; raises ValueError with a one-line message naming the key."""
    if opts.get("key") and not opts.get("cert"):
        raise ValueError("'database.ssl.key' needs 'database.ssl.cert' (the client certificate)")
    for key in ("ca", "cert", "key"):
        if opts.get(key) is not None:
            try:
                with open(opts[key], "rb"):
                    pass
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or "not a file name"
                raise ValueError(f"'database.ssl.{key}' {opts[key][:80]!r}: {why}; give a readable PEM file") from None
    try:
        ssl_context(opts)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = str(getattr(exc, "reason", None) or exc).splitlines()[0][:100]
        raise ValueError(f"'database.ssl' files do not load ({reason}); give the CA of the server's certificate as"
                         " ca, and a PEM certificate with its unencrypted key as cert/key") from None


def ssl_context(opts: dict | None) -> ssl.SSLContext | None:
    """TLS to MariaDB when ``database.ssl`` has any of ca/cert/key: the server certificate is always
    verified (against ``ca``, else the system's CAs) and must name ``database.host``; TLS 1.2 minimum."""
    opts = {k: v for k, v in (opts or {}).items() if v}
    if not opts:
        return None
    ctx = ssl.create_default_context(cafile=opts.get("ca"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts.get("cert"):
        ctx.load_cert_chain(opts["cert"], opts.get("key"))
    return ctx


def _reason(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}"
    return str(exc) or type(exc).__name__

