"""The bucket options (--bsl and how to reach the bucket and its repositories' passwords),
apart from the commands that use them: every subcommand's parser declares them, so building the
parser must not import the bucket reader (see :mod:`kbrowse.cli`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_options(p: argparse.ArgumentParser, top: bool) -> None:
    """Bucket options, accepted before or after the subcommand (see cliargs)."""
    def opt(*names: str, default: object = None, **kw: Any) -> None:
        kw["default"] = default if top else argparse.SUPPRESS
        p.add_argument(*names, **kw)

    opt("--bsl", metavar="BSL",
        help="a Velero backup storage location: s3:http://host:port/bucket/prefix, or a "
             "directory with the same layout (no cluster needed)")
    opt("--credentials-file", metavar="FILE",
        help="S3 credentials, Velero style ([default] aws_access_key_id/aws_secret_access_key); "
             "default: AWS_* variables, AWS_PROFILE, ~/.aws/credentials")
    opt("--cacert", metavar="FILE", help="CA bundle for an S3 endpoint with a private CA")
    opt("--insecure-skip-tls-verify", action="store_true", default=False,
        help="do not verify the S3 endpoint's certificate")
    opt("--repo-password-file", metavar="FILE",
        help="password of the volume repositories (default: $RESTIC_PASSWORD_FILE, "
             "$RESTIC_PASSWORD, else Velero's secret if a cluster is reachable, else "
             "Velero's default)")
    opt("-n", "--namespace", default="velero", metavar="NS",
        help="Velero's namespace, for its repository secret (default: velero)")
    opt("--kubeconfig", metavar="FILE", help="kubeconfig for the secret (default: $KUBECONFIG)")
    opt("--kubecontext", "--context", dest="kubecontext", metavar="CONTEXT",
        help="kubeconfig context (default: current); with no command, the app opens on that "
             "cluster's backups")
