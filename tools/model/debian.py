"""Debian's source package as a provider of a pristine upstream base.

Debian serves its CPython sources from the same registry as its binaries,
and the .orig tarball of a source package is the upstream release tarball,
byte for byte; no Debian patch is used.  apt runs with a private
configuration in the cache, leaving the machine's sources alone.  apt
checks the index against the suite's signed Release file; we check the
.orig tarball against the .dsc's sha256, the pinned python.org sha256 and,
when gpg is installed, upstream's OpenPGP signature.
"""

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from . import basestore, providers
from .errors import Failure, UsageError

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def apt(args, what, cwd=None):
    proc = subprocess.run(["apt-get"] + args, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.splitlines() if l.startswith(("E:", "W:"))]
        detail = lines[0] if lines else (proc.stderr.strip().splitlines()
                                         or ["exit status %d" % proc.returncode])[-1]
        raise Failure("%s failed: %s" % (what, detail))


def dsc_checksums(dsc_text):
    """{file name: sha256} from the Checksums-Sha256 field of a .dsc."""
    match = re.search(r"^Checksums-Sha256:\n((?: .+\n)+)", dsc_text, re.M)
    if not match:
        raise Failure("the .dsc has no Checksums-Sha256 field")
    return {name: digest for digest, _size, name
            in map(str.split, match.group(1).splitlines())}


def verify_signature(orig, signature, debian_tarball, fingerprint):
    """Check upstream's signature; return a sentence saying what was done."""
    if shutil.which("gpg") is None:
        return "upstream signature not checked: gpg is not installed"
    try:
        with tarfile.open(debian_tarball) as archive:
            member = archive.extractfile("debian/upstream/signing-key.asc")
            key = member.read() if member else None
    except (KeyError, tarfile.TarError):
        key = None
    if not key:
        return ("upstream signature not checked: the package ships no "
                "upstream signing key")
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, GNUPGHOME=home)
        subprocess.run(["gpg", "--batch", "--quiet", "--import"], input=key,
                       env=env, capture_output=True)
        proc = subprocess.run(["gpg", "--batch", "--status-fd", "1", "--verify",
                               str(signature), str(orig)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    valid = re.search(r"^\[GNUPG:\] VALIDSIG (\w+) (\S+)", proc.stdout, re.M)
    if not valid:
        raise Failure("upstream's signature of %s does not verify" % orig.name)
    if fingerprint and valid.group(1) != fingerprint:
        raise Failure("%s is signed by %s, not by the release manager's key %s"
                      % (orig.name, valid.group(1), fingerprint))
    expired = " (the key has expired since)" if "EXPKEYSIG" in proc.stdout else ""
    return "upstream signature valid: key %s, signed %s%s" % (
        valid.group(1), valid.group(2), expired)


def download(ws, line):
    source = line.debian
    if shutil.which("apt-get") is None:
        raise UsageError("Debian's source packages need apt-get (a Debian or "
                         "Ubuntu machine); elsewhere use `python3 -m tools base "
                         "download --base %s`" % line.name)
    if not Path(KEYRING).exists():
        raise UsageError("%s is missing: install the debian-archive-keyring "
                         "package" % KEYRING)
    root = ws.cache / "apt" / source.suite
    for sub in ("lists/partial", "archives/partial", "sources.list.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(
        "deb-src [signed-by=%s] %s %s main\n" % (KEYRING, source.mirror,
                                                source.suite))
    options = ["-o", "Dir::Etc::SourceList=%s" % (root / "sources.list"),
               "-o", "Dir::Etc::SourceParts=%s" % (root / "sources.list.d"),
               "-o", "Dir::State::Lists=%s" % (root / "lists"),
               "-o", "Dir::Cache::Archives=%s" % (root / "archives"),
               "-o", "APT::Sandbox::User=root", "-q"]
    apt(options + ["update"], what="apt-get update for %s" % source.suite)
    target = ws.downloads_dir() / "debian" / source.package
    target.mkdir(parents=True, exist_ok=True)
    apt(options + ["source", "--download-only", source.package], cwd=str(target),
        what="apt-get source %s" % source.package)
    dscs = sorted(target.glob("%s_%s-*.dsc" % (source.package,
                                               source.upstream_version)))
    if not dscs:
        found = sorted(p.name for p in target.glob("*.dsc"))
        raise Failure("the %s suite no longer has %s %s (found: %s)"
                      % (source.suite, source.package, source.upstream_version,
                         ", ".join(found) or "nothing"))
    return dscs[-1]


def import_source(ws, line):
    if line.debian is None:
        raise UsageError("the %s series names no Debian source package: use "
                         "`python3 -m tools base download` or `base import`"
                         % line.name)
    source = line.debian
    dsc = download(ws, line)
    sums = dsc_checksums(dsc.read_text())
    orig_name = "%s_%s.orig.tar.xz" % (source.package, source.upstream_version)
    orig = dsc.parent / orig_name
    debian_tarball = next((dsc.parent / n for n in sums
                           if n.endswith(".debian.tar.xz")), None)
    if orig_name not in sums or not orig.exists():
        raise Failure("%s does not list %s" % (dsc.name, orig_name))
    digest = basestore.sha256_file(orig)
    if digest != sums[orig_name]:
        raise Failure("%s does not match the sha256 in %s" % (orig_name, dsc.name))
    notes = ["sha256 matches %s" % dsc.name]
    pinned = line.downloads.get(source.upstream_version)
    if pinned:
        if digest != pinned.sha256:
            raise Failure("%s differs from python.org's %s (sha256 %s, pinned "
                          "%s)" % (orig_name, pinned.filename, digest, pinned.sha256))
        notes.append("identical to python.org's %s" % pinned.filename)
    signature = dsc.parent / (orig_name + ".asc")
    if signature.exists() and debian_tarball is not None:
        notes.append(verify_signature(orig, signature, debian_tarball,
                                      source.signing_key))
    else:
        notes.append("upstream signature not checked: no .asc in the package")
    return providers.from_tarball(
        ws, line, orig, origin="Debian %s %s (%s): %s" % (
            source.package, dsc.stem.split("_", 1)[1], source.suite,
            "; ".join(notes)))
