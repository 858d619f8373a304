"""The ``ccguard`` command (get, decode and check tokens) and ``flask ccguard check-token`` / ``routes``.

Exit codes: 0 success (every check passed), 1 the token is invalid or could
not be obtained, 2 usage or configuration error. Keys are fetched only from
the issuer the user says to expect, never from the token's own ``iss``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Sequence
from typing import Any, Callable, NoReturn, TypeVar

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import current_app
from flask.cli import AppGroup

from ._version import __version__
from .client.credentials import (
    AUTH_METHODS,
    BASIC_ENCODING_OPTIONS,
    TLS_AUTH_METHODS,
    ClientCredentials,
    TokenRequestError,
)
from .client.dpop import DPoPKey
from .core.authorization import MATCHES
from .core.binding import SenderConstraint
from .core.dpop import DPoPVerifier
from .core.errors import CCGuardError, ConfigurationError
from .core.jws import parse_compact
from .core.report import Report, run_checks
from .core.request import Headers, HTTPRequest
from .core.validator import TokenValidator
from .environment import parse_list
from .exemption import check_exemptions
from .protection_map import format_table, open_rows, protection_map
from .route_order import check_route_order

__all__ = ["flask_group", "main", "write_header_file"]

F = TypeVar("F", bound=Callable[..., Any])

AZURE_AUTHORITY = "https://login.microsoftonline.com"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?")
_MAX_TOKEN = 65536
#: Create a file that is not there yet, never through a symlink (then 0600, for a credential).
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_NOT_SET_UP = "flask-ccguard is not set up on this app: call CCGuard(app) or guard.init_app(app)."
_CHECK_OPTIONS = {
    "issuer": "--issuer",
    "audience": "--audience",
    "algorithms": "--algorithm",
    "leeway": "--leeway",
    "jwks_uri": "--jwks-uri",
    "discovery_url": "--discovery-url",
    "http_timeout": "--timeout",
}


class _ListVariable(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A repeatable option's value; from its environment variable, the list
    :func:`~flask_ccguard.environment.parse_list` reads (as apps read it)."""

    name = "text"

    def __init__(self, variable: str) -> None:
        self.variable = variable

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        try:
            return parse_list(self.variable, rv)
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc)) from None


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _read_token(value: str) -> str:
    """The token argument, or standard input for ``-`` (keeps it out of ``ps``)."""
    token = sys.stdin.read(_MAX_TOKEN) if value == "-" else value
    return token.strip()


def write_header_file(path: str, token: str) -> None:
    """Write ``Authorization: Bearer <token>`` to ``path`` with mode 0600.

    The file is created under a random name with ``O_CREAT | O_EXCL`` and
    mode 0600 (never readable by others, not even for a moment), then renamed
    over ``path``; a symlink at ``path`` is replaced, not followed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, _NEW_FILE, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask took away, exactly 0600
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"Authorization: Bearer {token}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- shared options ------------------------------------------------------------------


def _list_option(flag: str, envvar: str, help: str) -> Callable[[F], F]:
    """A repeatable option whose environment variable holds a list (see :class:`_ListVariable`)."""
    return click.option(flag, multiple=True, type=_ListVariable(envvar), envvar=envvar, help=help)


def _request_options(fn: F) -> F:
    """Where and how to request a token (the original script's -t/-c/-s/-f and more)."""
    options = [
        click.option("-t", "--tenant", envvar="CCGUARD_TENANT", help="Azure AD tenant (directory) id."),
        click.option("-f", "--fqdn", envvar="CCGUARD_FQDN", help="API host; Azure resource https://FQDN."),
        click.option("-c", "--client-id", envvar="CCGUARD_CLIENT_ID", help="Client id."),
        click.option("-s", "--client-secret", envvar="CCGUARD_CLIENT_SECRET", help="Client secret (prefer env)."),
        click.option("--issuer", envvar="CCGUARD_ISSUER", help="Issuer identifier (discovery)."),
        click.option("--token-url", envvar="CCGUARD_TOKEN_URL", help="Token endpoint, instead of discovery."),
        click.option(
            "--auth-method",
            type=click.Choice(AUTH_METHODS + TLS_AUTH_METHODS),
            default="client_secret_post",
            envvar="CCGUARD_AUTH_METHOD",
            show_default=True,
        ),
        click.option(
            "--basic-encoding",
            type=click.Choice(BASIC_ENCODING_OPTIONS),
            default="auto",
            envvar="CCGUARD_BASIC_ENCODING",
            show_default=True,
            help="client_secret_basic: RFC 6749 form-encoding, raw, or auto (RFC 6749, then raw if refused).",
        ),
        _list_option("--resource", "CCGUARD_RESOURCE", "Resource indicator (repeatable)."),
        click.option(
            "--authority", default=AZURE_AUTHORITY, envvar="CCGUARD_AUTHORITY", show_default=True, hidden=True
        ),
        click.option("--timeout", type=float, default=10, envvar="CCGUARD_HTTP_TIMEOUT", show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _requirement_options(fn: F) -> F:
    """What check-token requires of the token: --role/--scope and their match rule (as the decorators' ``match=``)."""
    options = [
        click.option("--role", multiple=True, help="Required role (repeatable); see --roles-match."),
        click.option("--scope", multiple=True, help="Required scope (repeatable); see --scopes-match."),
        *(
            click.option(flag, type=click.Choice(MATCHES), default=default, show_default=True, help=text)
            for flag, default, text in (
                (
                    "--roles-match",
                    "any",
                    "'any': one of the --role values suffices; 'all': as @require_roles(..., match='all').",
                ),
                ("--scopes-match", "all", "'all': every --scope is needed, as @require_scopes; 'any': one suffices."),
            )
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _host(value: str | None, what: str) -> str | None:
    if value is not None and not _HOSTNAME.fullmatch(value):
        _usage(f"{what} {value!r} must be a host name or id (letters, digits, '.', '-').")
    return value


def _client(opts: dict[str, Any], scope: str | None, audience: str | None) -> ClientCredentials:
    tenant = _host(opts["tenant"], "-t/--tenant")
    fqdn = _host(opts["fqdn"], "-f/--fqdn")
    tls = opts["auth_method"] in TLS_AUTH_METHODS
    if not opts["client_id"] or not (opts["client_secret"] or tls):
        _usage(
            "-c/--client-id and -s/--client-secret (or CCGUARD_CLIENT_ID and CCGUARD_CLIENT_SECRET) "
            "are needed to request a token."
        )
    resources = list(opts["resource"])
    token_url = opts["token_url"]
    if tenant:
        # Azure AD v1, as the original script: the resource names the API.
        token_url = token_url or f"{opts['authority'].rstrip('/')}/{tenant}/oauth2/token"
        if fqdn and not resources:
            resources = [f"https://{fqdn}"]
    kw: dict[str, Any] = {
        "scope": scope,
        "resource": resources or None,
        "audience": audience,
        "auth_method": opts["auth_method"],
        "basic_encoding": opts["basic_encoding"],
        "timeout": opts["timeout"],
        **opts.get("binding", {}),
    }
    secret = None if tls else opts["client_secret"]
    try:
        if token_url:
            return ClientCredentials(token_url, opts["client_id"], secret, **kw)
        if opts["issuer"]:
            return ClientCredentials.from_issuer(opts["issuer"], opts["client_id"], secret, **kw)
    except ConfigurationError as exc:
        _usage(str(exc))
    except TokenRequestError as exc:
        _fail(str(exc))
    _usage("say where to request the token: --token-url, --issuer or -t/--tenant.")


def _fetch(client: ClientCredentials) -> dict[str, Any]:
    try:
        return client.token_response()
    except TokenRequestError as exc:
        _fail(str(exc))
    finally:
        client.close()


def _print_parts(header: Any, payload: Any) -> None:
    """A token's header and payload, as ``decode`` and ``check-token`` show them."""
    click.echo("header:")
    click.echo(json.dumps(header, indent=2))
    click.echo("payload:")
    click.echo(json.dumps(payload, indent=2, sort_keys=True))


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        if report.header is not None:
            _print_parts(report.header, report.payload)
            click.echo()
        for check in report.checks:
            click.echo(f"{check.status:<4}  {check.name:<9}  {check.detail}")
        failed = sum(c.status == "FAIL" for c in report.checks)
        click.echo("\nresult: VALID" if report.ok else f"\nresult: INVALID ({failed} check(s) failed)")
    sys.exit(0 if report.ok else 1)


# -- ccguard -------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ccguard", message="%(prog)s %(version)s")
def main() -> None:
    """Get, decode and check OAuth 2.0 client-credentials access tokens."""


@main.command()
@_request_options
@click.option("--scope", envvar="CCGUARD_SCOPE", help="Scope(s) to request, space-separated.")
@_list_option("--audience", "CCGUARD_AUDIENCE", "Audience to request (Aidbox, Auth0).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole token response.")
@click.option("--header-file", type=click.Path(dir_okay=False), help="Write 'Authorization: Bearer …' here (0600).")
@click.option("--dpop", is_flag=True, help="Request a DPoP-bound token (RFC 9449); see --dpop-key.")
@click.option(
    "--dpop-key",
    type=click.Path(dir_okay=False),
    help="PEM private key for DPoP: loaded if it exists, else made (P-256) and written (0600). Implies --dpop.",
)
@click.option("--cert", type=click.Path(dir_okay=False), help="Client certificate (PEM) for mutual TLS (RFC 8705).")
@click.option("--cert-key", type=click.Path(dir_okay=False), help="The client certificate's private key (PEM).")
def token(
    scope: str | None,
    audience: Sequence[str],
    as_json: bool,
    header_file: str | None,
    dpop: bool,
    dpop_key: str | None,
    cert: str | None,
    cert_key: str | None,
    **opts: Any,
) -> None:
    """Request an access token with the client-credentials grant."""
    if len(audience) > 1:
        _usage(f"a token is requested for one audience; --audience (or CCGUARD_AUDIENCE) names {len(audience)}.")
    binding: dict[str, Any] = {}
    if dpop or dpop_key:
        if header_file:
            _usage("--header-file cannot hold a DPoP token: each request needs a fresh proof (ccguard dpop-proof).")
        binding["dpop"] = _load_or_make_dpop_key(dpop_key) if dpop_key else True
    if cert_key and not cert:
        _usage("--cert-key needs --cert.")
    if cert:
        binding["cert"] = (cert, cert_key) if cert_key else cert
    opts["binding"] = binding
    response = _fetch(_client(opts, scope, audience[0] if audience else None))
    access_token = response["access_token"]
    if header_file:
        try:
            write_header_file(header_file, access_token)
        except OSError as exc:
            _fail(f"cannot write {header_file}: {exc.strerror}")
        click.echo(f"wrote {header_file} (mode 0600)", err=True)
    if as_json:
        click.echo(json.dumps(response, indent=2))
    elif not header_file:
        click.echo(access_token)


def _load_or_make_dpop_key(path: str) -> DPoPKey:
    """The DPoP key in ``path``; a new P-256 key written there (0600, never over a file) if there is none."""
    try:
        if os.path.exists(path):
            with open(path, "rb") as fh:
                return DPoPKey.load(fh.read(65536))
        key = DPoPKey()
        fd = os.open(path, _NEW_FILE, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.pem())
        click.echo(f"wrote a new DPoP key to {path} (mode 0600)", err=True)
        return key
    except ConfigurationError as exc:
        _usage(f"--dpop-key {path}: {exc}")
    except OSError as exc:
        _fail(f"cannot use --dpop-key {path}: {exc.strerror}")


@main.command("dpop-proof")
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False), help="PEM key.")
@click.option("--method", default="GET", show_default=True, help="The request's HTTP method (htm).")
@click.option("--url", required=True, help="The request's URL (htu: query and fragment are left out).")
@click.option(
    "-T", "--token", "raw_token", envvar="CCGUARD_TOKEN", help="The access token it goes with (ath; '-': stdin)."
)
@click.option("--nonce", help="The server's DPoP-Nonce.")
def dpop_proof(key_file: str, method: str, url: str, raw_token: str | None, nonce: str | None) -> None:
    """Print a DPoP proof (RFC 9449 §4.2) for one request, e.g. for curl's 'DPoP:' header.

    A proof is good for one request: make a new one for each.
    """
    if not re.fullmatch(r"[A-Za-z]{1,20}", method):
        _usage("--method must be an HTTP method such as GET or POST.")
    if not url.lower().startswith(("https://", "http://")):
        _usage("--url must be the absolute http(s) URL of the request.")
    key = _load_or_make_dpop_key(key_file)
    token = _read_token(raw_token) if raw_token else None
    click.echo(key.proof(method, url, token=token, nonce=nonce))


# -- the request for the binding step (DPoP, RFC 9449; mTLS, RFC 8705) -----------------


def _binding_options(f: F) -> F:
    """``--dpop-proof``, ``--method``, ``--url``, ``--client-cert``: the request the binding step checks."""
    for option in reversed(
        (
            click.option(
                "--dpop-proof",
                help="A DPoP proof (RFC 9449) sent with the token ('-': stdin); the "
                "token is then sent with the DPoP scheme.",
            ),
            click.option("--method", default="GET", show_default=True, help="The request method the proof is for."),
            click.option(
                "--url", help="The request URL the proof's htu must name (e.g. https://api.example.com/v1/x)."
            ),
            click.option(
                "--client-cert",
                type=click.File("rb"),
                help="The client certificate (PEM) presented over mutual TLS, for a certificate-bound token (RFC 8705).",
            ),
        )
    ):
        f = option(f)
    return f


def _binding_request(
    token: str, dpop_proof: str | None, method: str, url: str | None, client_cert: Any
) -> HTTPRequest | None:
    """The request described by the binding options, or None when none was given."""
    if dpop_proof is None and client_cert is None and url is None:
        return None
    if dpop_proof is not None and not url:
        _usage("--dpop-proof needs --url: the URL the proof's htu must name.")
    der = None
    if client_cert is not None:
        try:
            der = x509.load_pem_x509_certificate(client_cert.read(1 << 16)).public_bytes(Encoding.DER)
        except ValueError:
            _usage("--client-cert must be a PEM certificate file.")
    headers = [("Authorization", f"DPoP {token}" if dpop_proof is not None else f"Bearer {token}")]
    if dpop_proof is not None:
        headers.append(("DPoP", _read_token(dpop_proof)))
    return HTTPRequest(method=method.upper(), url=url or "", headers=Headers(headers), client_cert=der)


@main.command("check-token")
@click.option("-T", "--token", "raw_token", envvar="CCGUARD_TOKEN", help="The token to check ('-': stdin).")
@_request_options
@_list_option("--audience", "CCGUARD_AUDIENCE", "Expected audience (repeatable).")
@_requirement_options
@click.option("--request-scope", envvar="CCGUARD_SCOPE", help="Scope to request when fetching the token.")
@_list_option("--algorithm", "CCGUARD_ALGORITHMS", "Allowed algorithm [RS256] (repeatable).")
@click.option("--leeway", type=float, default=60, envvar="CCGUARD_LEEWAY", show_default=True)
@click.option("--jwks-uri", envvar="CCGUARD_JWKS_URI", help="The issuer's JWKS, instead of discovery.")
@click.option(
    "--discovery-url",
    envvar="CCGUARD_DISCOVERY_URL",
    help="The issuer's metadata URL (needed for a {tenantid} template issuer, unless --jwks-uri).",
)
@_binding_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_token(
    raw_token: str | None,
    audience: Sequence[str],
    role: Sequence[str],
    scope: Sequence[str],
    roles_match: str,
    scopes_match: str,
    request_scope: str | None,
    algorithm: Sequence[str],
    leeway: float,
    jwks_uri: str | None,
    discovery_url: str | None,
    as_json: bool,
    dpop_proof: str | None,
    method: str,
    url: str | None,
    client_cert: Any,
    **opts: Any,
) -> None:
    """Check a token (given, or requested) the way a resource server must.

    --issuer may be a multi-tenant template such as
    https://login.microsoftonline.com/{tenantid}/v2.0 (with --jwks-uri or
    --discovery-url): the token's tid must then give its iss exactly.
    """
    tenant = _host(opts["tenant"], "-t/--tenant")
    fqdn = _host(opts["fqdn"], "-f/--fqdn")
    issuer = opts["issuer"] or (f"https://sts.windows.net/{tenant}/" if tenant else None)
    if not issuer:
        _usage("--issuer (or -t/--tenant) is required: keys are fetched only from the issuer you expect.")
    audiences = list(audience) or ([f"https://{fqdn}", f"https://{fqdn}/"] if fqdn else [])
    if not audiences:
        _usage("--audience (or -f/--fqdn) is required to check the 'aud' claim.")
    if tenant and not opts["issuer"] and not discovery_url:
        # Azure AD v1: the tenant's metadata names https://sts.windows.net/{tenant}/.
        discovery_url = f"{opts['authority'].rstrip('/')}/{tenant}/.well-known/openid-configuration"
    try:
        validator = TokenValidator(
            issuer=issuer,
            audience=audiences,
            algorithms=algorithm or ("RS256",),
            leeway=leeway,
            jwks_uri=jwks_uri,
            discovery_url=discovery_url,
            http_timeout=opts["timeout"],
            # Messages name the command's options, not the validator's keywords.
            option_name=lambda name: _CHECK_OPTIONS.get(name, name),
        )
    except ConfigurationError as exc:
        _usage(str(exc))
    # Given, or requested from the endpoint (never printed: it is a credential).
    tok = _read_token(raw_token) if raw_token else _fetch(_client(opts, request_scope, None))["access_token"]
    request = _binding_request(tok, dpop_proof, method, url, client_cert)
    if request is not None:
        # The resource server's binding step, with the defaults (RFC 9449 §4.3, RFC 8705 §3).
        validator.pipeline.add_binding(SenderConstraint(DPoPVerifier()))
    report = run_checks(
        validator, tok, roles=role, scopes=scope, roles_match=roles_match, scopes_match=scopes_match, request=request
    )
    _print_report(report, as_json)


@main.command()
@click.argument("raw_token", metavar="TOKEN")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def decode(raw_token: str, as_json: bool) -> None:
    """Show a token's header and payload offline. UNVERIFIED: nothing is checked."""
    try:
        parsed = parse_compact(_read_token(raw_token), _MAX_TOKEN)
    except CCGuardError as exc:
        _fail(exc.description)
    if as_json:
        doc = {"verified": False, "header": parsed.header, "payload": parsed.payload}
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo("UNVERIFIED: decoded only; signature and claims NOT checked (use 'ccguard check-token').")
    _print_parts(parsed.header, parsed.payload)


# -- flask ccguard -------------------------------------------------------------------

flask_group = AppGroup(
    "ccguard", help="Check tokens with this application's flask-ccguard settings; map what each route requires."
)


@flask_group.command("check-token")
@click.argument("raw_token", metavar="TOKEN")
@_requirement_options
@_binding_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def flask_check_token(
    raw_token: str,
    role: Sequence[str],
    scope: Sequence[str],
    roles_match: str,
    scopes_match: str,
    as_json: bool,
    dpop_proof: str | None,
    method: str,
    url: str | None,
    client_cert: Any,
) -> None:
    """Check TOKEN ('-': stdin) with the app's own validator and configuration."""
    state = current_app.extensions.get("ccguard")
    validator = getattr(state, "validator", None)
    if not isinstance(validator, TokenValidator):
        _usage(_NOT_SET_UP)
    token = _read_token(raw_token)
    request = _binding_request(token, dpop_proof, method, url, client_cert)
    report = run_checks(
        validator, token, roles=role, scopes=scope, roles_match=roles_match, scopes_match=scopes_match, request=request
    )
    _print_report(report, as_json)


@flask_group.command("routes")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per rule.")
@click.option(
    "--fail-on-open",
    is_flag=True,
    help="Exit 1 if an endpoint needs no token and is not declared public (@public, guard.exempt()).",
)
def flask_routes(as_json: bool, fail_on_open: bool) -> None:
    """Show every route with what it requires: public, a token, roles, scopes.

    Like 'flask routes' with a protection column. Static files are public
    unless guard.protect(app) covers them.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "ccguard" not in app.extensions:
        _usage(_NOT_SET_UP)
    # The checks the first request would make: a misordered or contradictory view fails here too.
    try:
        check_route_order(app)
        check_exemptions(app)
    except ConfigurationError as error:
        _usage(str(error))
    rows = protection_map(app)
    if as_json:
        keys = ("endpoint", "methods", "rule", "public", "token", "roles", "scopes", "match", "binding")
        click.echo(json.dumps([{k: row[k] for k in keys} for row in rows], indent=2))
    else:
        click.echo(format_table(rows))
    left_open = open_rows(rows)
    if fail_on_open and left_open:
        listed = "\n".join(f"  {r['endpoint']}  {', '.join(r['methods'])}  {r['rule']}" for r in left_open)
        click.echo(
            f"{len(left_open)} endpoint(s) need no token and are not declared public:\n{listed}\n"
            "Protect them (@require_token, guard.protect()) or declare them open (@public, guard.exempt()).",
            err=True,
        )
        sys.exit(1)
