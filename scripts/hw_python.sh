# Sourced by hw2_1.sh, hw2_2.sh and hw2_3.sh (with HERE set to the checkout): sets PY, the Python
# that runs them, so that `bash hw2_1.sh OUT` works from a plain shell, no environment activated:
# $PYTHON when set, else the checkout's .venv (what `make demo` and `make test` create), else
# python3. One that cannot find the project's packages stops here with one line saying what to do.
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x "$HERE/.venv/bin/python" ]; then
    PY="$HERE/.venv/bin/python"
else
    PY=python3
fi
if ! (cd / && "$PY" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("dlcv") and u.find_spec("torch")))') 2>/dev/null; then
    echo "error: $(basename "$0"): $PY cannot import this project (dlcv, torch): run \`make demo\` (or \`make venv\`) in $HERE to create its .venv, or activate the environment it is installed in, or set PYTHON" >&2
    exit 2
fi
