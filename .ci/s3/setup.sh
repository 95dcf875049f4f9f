#!/usr/bin/env bash
# Installs the S3-compatible test server (moto, from PyPI) into a virtualenv
# at target/moto-venv, once. Idempotent; `cargo xtask ci` runs it, and the
# S3 tests look for target/moto-venv/bin/python (or $REEF_MOTO_PYTHON).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
venv=target/moto-venv
if "$venv/bin/python" -c 'import moto, werkzeug, boto3' 2>/dev/null; then
    exit 0
fi
echo "installing moto[server]==5.2.5 into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
"$venv/bin/python" -c 'import moto, werkzeug, boto3; print("moto", moto.__version__)'
