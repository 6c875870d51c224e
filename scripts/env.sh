# Sourced by scripts/bench and scripts/test: make .venv with gradbench and its test extras
# installed (editable) on first use, reuse it after, reinstall when pyproject.toml changes.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "gradbench needs Python 3.11 or newer as $PY (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ] && [ ! -x .venv/Scripts/python.exe ]; then
    "$PY" -m venv .venv
fi
if [ -d .venv/Scripts ]; then  # Windows (Git Bash): the environment's commands are there
    . .venv/Scripts/activate
else
    . .venv/bin/activate
fi
stamp=.venv/.gradbench-installed
want=$(python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up .venv (once): gradbench and its test dependencies" >&2
    python -m pip install --quiet --upgrade pip
    # the distribution was called gradbench before gradbench-fd (the name on PyPI is
    # GradBench's): an old .venv holds it, importing as gradbench too
    if python -m pip show --quiet gradbench >/dev/null 2>&1; then
        python -m pip uninstall --quiet --yes gradbench
    fi
    python -m pip install --quiet -e ".[test]"
    echo "$want" > "$stamp"
fi
