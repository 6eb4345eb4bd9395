#!/usr/bin/env bash
# Install Graft and start the app (README: "Start the app").
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt
exec python -m streamlit run app.py "$@"
