#!/usr/bin/env bash
# Install the system packages the platform needs (Debian): a Java 17 runtime for Spark,
# Maven (resolves the pinned jars), PostgreSQL server binaries (embedded source + catalog),
# and uv (Python workspace tool). Safe to run repeatedly: a second run does nothing.
#
# uv, when not on PATH already, goes into a project-local virtual environment (.tools/uv-venv):
# Debian's python3 has no pip and refuses `pip install` into itself (PEP 668). Only the uv binary
# is linked into .tools/bin, which the Makefile puts first on PATH.
#
# --test also installs what only the tests need: Chromium and its WebDriver (a test opens the
# Data Docs in a headless browser with networking disabled) and Debian's docker-compose (a test
# resolves docker-compose.yml offline; no container engine runs on CI machines).
#
# LAKEHOUSE_SETUP_DRY_RUN=1 prints each installing command ("would run: ...") instead of running it.
set -euo pipefail

for_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) for_tests=1 ;;
    *) echo "install-system-deps.sh: unknown argument '$arg' (known: --test)" >&2; exit 2 ;;
  esac
done

tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"
uv_venv="$tools/uv-venv"
# a previous run's uv counts as installed even when the caller's PATH lacks .tools/bin
export PATH="$tools/bin:$PATH"

# Every command that changes the machine goes through here, so a dry run shows the whole plan.
run() {
  if [ "${LAKEHOUSE_SETUP_DRY_RUN:-}" = 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
command -v runuser >/dev/null || missing+=(util-linux)
if [ "$for_tests" = 1 ]; then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
fi
# uv needs `python3 -m venv`; Debian ships ensurepip (which venv uses for pip) only in python3-venv
if ! command -v uv >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  run $sudo_cmd apt-get update -qq
  # env, not a VAR=value prefix: sudo would drop the variable from the environment
  run $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! command -v uv >/dev/null; then
  echo "installing uv into $uv_venv (only uv itself is linked into $tools/bin)"
  # keep a venv left by an interrupted run; pip then only finishes the install
  [ -x "$uv_venv/bin/python" ] || run python3 -m venv "$uv_venv"
  run "$uv_venv/bin/python" -m pip install --quiet uv
  run mkdir -p "$tools/bin"
  # relative link: still valid when the clone is moved
  run ln -sfn ../uv-venv/bin/uv "$tools/bin/uv"
fi
