"""Running git and other commands with errors the CLI can report."""

import os
import shutil
import subprocess

from .errors import Failure, UsageError

# Commits made by the tools carry a fixed identity, so that the same series
# applied twice gives the same commit ids; the user's configuration (hooks,
# signing, templates) stays out of the repositories the tools own.
NAME = "Zero-copy pickle workspace"
EMAIL = "workspace@zerocopy-pickle.invalid"
GIT_ENV = {"GIT_COMMITTER_NAME": NAME, "GIT_COMMITTER_EMAIL": EMAIL,
           "GIT_AUTHOR_NAME": NAME, "GIT_AUTHOR_EMAIL": EMAIL,
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def require_program(name, why):
    if shutil.which(name) is None:
        raise UsageError("%s is not installed; it is needed %s" % (name, why))


def run(args, cwd=None, env=None, check=True, input=None):
    """Run a command; on failure raise Failure with its stderr tail."""
    try:
        proc = subprocess.run(args, cwd=cwd, input=input, text=True,
                              env=dict(os.environ, **(env or {})),
                              capture_output=True)
    except FileNotFoundError:
        raise UsageError("%s is not installed" % args[0]) from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = detail[-1] if detail else "exit status %d" % proc.returncode
        raise Failure("%s failed: %s" % (" ".join(map(str, args[:3])), tail))
    return proc


def git(repo, *args, env=None, check=True, input=None, date=None):
    """Run git in REPO; DATE pins author and committer dates."""
    dates = ({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
             if date else {})
    return run(["git", "-C", str(repo), *args], check=check, input=input,
               env={**GIT_ENV, **dates, **(env or {})})


def git_bytes(repo, *args):
    """The output of git in REPO as bytes (blobs are not always text)."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                          env=dict(os.environ, **GIT_ENV))
    if proc.returncode != 0:
        tail = (proc.stderr.decode(errors="replace").strip().splitlines()
                or ["exit status %d" % proc.returncode])[-1]
        raise Failure("git %s failed: %s" % (" ".join(args[:2]), tail))
    return proc.stdout


def git_out(repo, *args, **kwargs):
    return git(repo, *args, **kwargs).stdout.strip()
