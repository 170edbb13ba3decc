"""``isthmus ca``, ``isthmus svid`` and ``isthmus bundle``: the trust commands.

Thin wrappers over :mod:`federation.trust`: parse arguments (bad values are usage errors, exit
2), call the library, print one line per result. Library errors propagate to
:func:`isthmus.cli.main`, which prints them as ``error: ...`` and exits 1.

``federation.trust``, ``cryptography`` and ``rich`` are imported inside the commands, so
``isthmus --help`` and the other command groups start without paying for them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from isthmus.errors import IsthmusError

if TYPE_CHECKING:
    from cryptography import x509
    from rich.table import Table

    from federation.trust import SpiffeId, TrustBundle, TrustDomain

ca_app = typer.Typer(help="Per-trust-domain certificate authorities.", no_args_is_help=True)
svid_app = typer.Typer(help="Issue and verify X.509-SVIDs.", no_args_is_help=True)
bundle_app = typer.Typer(help="Inspect SPIFFE trust bundles.", no_args_is_help=True)

_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str, param_hint: str = "'--ttl'") -> timedelta:
    """``90s``, ``30m``, ``1h``, ``1h30m``, ``365d`` -> timedelta; BadParameter (exit 2) else."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise typer.BadParameter(
            f"{text!r} is not a duration like 90s, 30m, 1h or 365d", param_hint=param_hint
        )
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0):
        raise typer.BadParameter("the duration must be positive", param_hint=param_hint)
    return total


def _trust_domain(text: str) -> TrustDomain:
    from federation.trust import SpiffeIdError, TrustDomain

    try:
        return TrustDomain.parse(text)
    except SpiffeIdError as err:
        raise typer.BadParameter(str(err), param_hint="'--trust-domain'") from err


def _spiffe_id(text: str) -> SpiffeId:
    from federation.trust import SpiffeId, SpiffeIdError

    try:
        return SpiffeId.parse(text)
    except SpiffeIdError as err:
        raise typer.BadParameter(str(err), param_hint="'--spiffe-id'") from err


@ca_app.command("init")
def ca_init(
    trust_domain: Annotated[
        str, typer.Option("--trust-domain", help="Trust domain, e.g. aws-use1.isthmus.")
    ],
    directory: Annotated[Path, typer.Option("--dir", help="Directory to write the CA into.")],
    intermediate: Annotated[
        bool, typer.Option("--intermediate", help="Issue SVIDs from an intermediate CA.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing CA.")] = False,
    ttl: Annotated[str, typer.Option("--ttl", help="CA lifetime.")] = "365d",
) -> None:
    """Create a CA: DIR/ca.pem, DIR/ca.key (0600) and DIR/bundle.json (SPIFFE bundle)."""
    from federation.trust import CertificateAuthority

    td = _trust_domain(trust_domain)
    lifetime = parse_duration(ttl)
    ca = CertificateAuthority.create(
        td, now=datetime.now(UTC), ttl=lifetime, intermediate=intermediate
    )
    ca.save(directory, force=force)
    kind = "root + intermediate" if intermediate else "root"
    typer.echo(f"created CA ({kind}) for trust domain {td} in {directory}")
    typer.echo(f"  bundle: {directory / 'bundle.json'}  valid until {ca.not_after.isoformat()}")


@svid_app.command("issue")
def svid_issue(
    ca_dir: Annotated[Path, typer.Option("--ca-dir", help="Directory of the issuing CA.")],
    spiffe_id: Annotated[str, typer.Option("--spiffe-id", help="spiffe://<td>/<path>")],
    out: Annotated[Path, typer.Option("--out", help="Directory for svid.pem and svid.key.")],
    ttl: Annotated[str, typer.Option("--ttl", help="SVID lifetime (capped at the CA's).")] = "1h",
) -> None:
    """Issue an X.509-SVID: OUT/svid.pem (leaf, then intermediates) and OUT/svid.key (0600)."""
    from federation.trust import CertificateAuthority, issue_x509_svid

    sid = _spiffe_id(spiffe_id)
    lifetime = parse_duration(ttl)
    ca = CertificateAuthority.load(ca_dir)
    svid = issue_x509_svid(ca, sid, now=datetime.now(UTC), ttl=lifetime)
    svid.save(out)
    typer.echo(f"issued {sid} valid until {svid.not_after.isoformat()}")
    typer.echo(f"  {out / 'svid.pem'}  {out / 'svid.key'}")


def _read_chain(path: Path) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as err:
        raise IsthmusError(f"{path}: cannot read: {err.strerror}") from err
    except ValueError as err:
        raise IsthmusError(f"{path}: no PEM certificates found") from err


@svid_app.command("verify")
def svid_verify(
    chain: Annotated[Path, typer.Argument(help="PEM chain: leaf first, then intermediates.")],
    bundles: Annotated[
        list[Path], typer.Option("--bundle", help="A SPIFFE bundle file; repeat per domain.")
    ],
) -> None:
    """Verify an SVID chain against bundles; print its SPIFFE ID (exit 0) or why not (exit 1)."""
    from federation.trust import (
        BundleSet,
        SvidVerificationError,
        load_bundle_file,
        verify_x509_svid,
    )

    bundle_set = BundleSet(load_bundle_file(path) for path in bundles)
    try:
        verified = verify_x509_svid(_read_chain(chain), bundle_set, datetime.now(UTC))
    except SvidVerificationError as err:
        raise IsthmusError(f"{chain}: rejected ({err.reason}): {err}") from err
    typer.echo(str(verified))


def _bundle_table(bundle: TrustBundle) -> Table:
    from rich.table import Table

    table = Table("use", "key", "expires", box=None, pad_edge=False)
    for cert in bundle.x509_authorities:
        table.add_row(
            "x509-svid", cert.subject.rfc4514_string(), cert.not_valid_after_utc.isoformat()
        )
    for kid in bundle.jwt_authorities:
        table.add_row("jwt-svid", f"kid={kid}", "-")
    return table


@bundle_app.command("show")
def bundle_show(path: Annotated[Path, typer.Argument(help="A SPIFFE bundle (JSON).")]) -> None:
    """Print a bundle's trust domain, sequence, refresh hint and keys."""
    from rich.console import Console

    from federation.trust import load_bundle_file

    bundle = load_bundle_file(path)
    hint = "-" if bundle.refresh_hint_s is None else f"{bundle.refresh_hint_s}s"
    console = Console(width=200, highlight=False, soft_wrap=True)
    console.print(f"trust domain: {bundle.trust_domain}")
    console.print(f"sequence:     {bundle.sequence}")
    console.print(f"refresh hint: {hint}")
    console.print(_bundle_table(bundle))


def register(app: typer.Typer) -> None:
    """Attach the trust command groups."""
    app.add_typer(ca_app, name="ca")
    app.add_typer(svid_app, name="svid")
    app.add_typer(bundle_app, name="bundle")
