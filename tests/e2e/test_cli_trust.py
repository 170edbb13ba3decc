"""The trust commands through the real ``isthmus`` executable: files, exit codes, messages."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from isthmus.cli import main

ISTHMUS = Path(sys.executable).with_name("isthmus")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str | Path, cwd: Path) -> Result:
    """Run the console-script function ``isthmus.cli.main`` in this process (same code path as
    the executable, without paying interpreter start-up per call); see the subprocess test
    below for the executable itself."""
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cwd = sys.argv, Path.cwd()
    sys.argv = ["isthmus", *map(str, args)]
    os.chdir(cwd)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return Result(code, out.getvalue(), err.getvalue())


def run_executable(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ISTHMUS), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a.test (root only) and b.test (with an intermediate), and a b.test SVID in ./web."""
    work = tmp_path_factory.mktemp("cli")
    assert run("ca", "init", "--trust-domain", "a.test", "--dir", "a", cwd=work).returncode == 0
    made = run("ca", "init", "--trust-domain", "b.test", "--dir", "b", "--intermediate", cwd=work)
    assert made.returncode == 0, made.stderr
    issued = run(
        "svid",
        "issue",
        "--ca-dir",
        "b",
        "--spiffe-id",
        "spiffe://b.test/ns/web/sa/api",
        "--out",
        "web",
        "--ttl",
        "30m",
        cwd=work,
    )
    assert issued.returncode == 0, issued.stderr
    return work


def test_ca_init_writes_the_ca_with_a_private_key(two_domains: Path) -> None:
    ca_dir = two_domains / "a"
    assert sorted(p.name for p in ca_dir.iterdir()) == ["bundle.json", "ca.key", "ca.pem"]
    assert _mode(ca_dir / "ca.key") == 0o600
    assert _mode(two_domains / "b" / "root.key") == 0o600
    bundle = json.loads((ca_dir / "bundle.json").read_text())
    assert bundle["keys"][0]["use"] == "x509-svid" and bundle["spiffe_sequence"] == 1


def test_ca_init_refuses_to_overwrite_then_force(tmp_path: Path) -> None:
    assert run("ca", "init", "--trust-domain", "c.test", "--dir", "c", cwd=tmp_path).returncode == 0
    before = (tmp_path / "c" / "ca.pem").read_bytes()
    again = run("ca", "init", "--trust-domain", "c.test", "--dir", "c", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        "error: c: a CA already exists (ca.pem, ca.key, bundle.json); use --force to overwrite it"
    ]
    assert (tmp_path / "c" / "ca.pem").read_bytes() == before
    forced = run("ca", "init", "--trust-domain", "c.test", "--dir", "c", "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert (tmp_path / "c" / "ca.pem").read_bytes() != before
    assert _mode(tmp_path / "c" / "ca.key") == 0o600


def test_svid_issue_writes_leaf_then_intermediate_and_a_private_key(two_domains: Path) -> None:
    pem = (two_domains / "web" / "svid.pem").read_text()
    assert pem.count("BEGIN CERTIFICATE") == 2
    assert _mode(two_domains / "web" / "svid.key") == 0o600


def test_svid_verify_prints_the_id(two_domains: Path) -> None:
    ok = run(
        "svid",
        "verify",
        "--bundle",
        "a/bundle.json",
        "--bundle",
        "b/bundle.json",
        "web/svid.pem",
        cwd=two_domains,
    )
    assert (ok.returncode, ok.stdout) == (0, "spiffe://b.test/ns/web/sa/api\n")


def test_svid_verify_against_the_wrong_bundle_says_why(two_domains: Path) -> None:
    bad = run("svid", "verify", "--bundle", "a/bundle.json", "web/svid.pem", cwd=two_domains)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: web/svid.pem: rejected (unknown-trust-domain)")
    assert "no trust bundle for trust domain b.test" in bad.stderr


def test_svid_verify_rejects_a_b_chain_against_another_b_ca(two_domains: Path) -> None:
    made = run("ca", "init", "--trust-domain", "b.test", "--dir", "b2", cwd=two_domains)
    assert made.returncode == 0
    bad = run("svid", "verify", "--bundle", "b2/bundle.json", "web/svid.pem", cwd=two_domains)
    assert bad.returncode == 1
    assert "rejected (chain-invalid)" in bad.stderr


def test_svid_issue_refuses_another_domains_id(two_domains: Path) -> None:
    bad = run(
        "svid",
        "issue",
        "--ca-dir",
        "a",
        "--spiffe-id",
        "spiffe://b.test/x",
        "--out",
        "x",
        cwd=two_domains,
    )
    assert bad.returncode == 1
    assert "the CA is for trust domain a.test, not b.test" in bad.stderr
    assert not (two_domains / "x").exists()


def test_bundle_show(two_domains: Path) -> None:
    shown = run("bundle", "show", "b/bundle.json", cwd=two_domains)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:3] == ["trust domain: b.test", "sequence:     1", "refresh hint: 300s"]
    assert "x509-svid" in shown.stdout and "CN=b.test root CA,O=isthmus" in shown.stdout


def test_bundle_show_of_a_broken_file_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"keys": [{"use": "x509-svid", "x5c": ["%%%"]}]}')
    bad = run("bundle", "show", "bad.json", cwd=tmp_path)
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("error: bad.json: keys[0].x5c[0]: bad base64")


def test_version_and_help(tmp_path: Path) -> None:
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("isthmus ")
    helped = run("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for group in ("ca", "svid", "bundle"):
        assert group in helped.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("ca", "init", "--dir", "x"),  # missing --trust-domain
        ("ca", "init", "--trust-domain", "Bad_Domain", "--dir", "x"),
        (
            "svid",
            "issue",
            "--ca-dir",
            "a",
            "--spiffe-id",
            "spiffe://a.test/x",
            "--out",
            "o",
            "--ttl",
            "soon",
        ),
        (
            "svid",
            "frobnicate",
        ),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    bad = run(*args, cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert not (tmp_path / "x").exists()


def test_the_installed_executable_end_to_end(tmp_path: Path) -> None:
    """The console script itself, as a user runs it: create, issue, verify, reject, usage."""
    assert (
        run_executable(
            "ca", "init", "--trust-domain", "e.test", "--dir", "e", cwd=tmp_path
        ).returncode
        == 0
    )
    issued = run_executable(
        "svid",
        "issue",
        "--ca-dir",
        "e",
        "--spiffe-id",
        "spiffe://e.test/x",
        "--out",
        "x",
        cwd=tmp_path,
    )
    assert issued.returncode == 0, issued.stderr
    ok = run_executable("svid", "verify", "--bundle", "e/bundle.json", "x/svid.pem", cwd=tmp_path)
    assert (ok.returncode, ok.stdout) == (0, "spiffe://e.test/x\n")
    again = run_executable("ca", "init", "--trust-domain", "e.test", "--dir", "e", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.startswith("error: e: a CA already exists")
    assert run_executable("--version", cwd=tmp_path).stdout.startswith("isthmus ")
    assert run_executable("svid", "verify", cwd=tmp_path).returncode == 2
