#!/usr/bin/env bash
# Capture `gradcheck diagnose` as a real terminal shows it: each model under models/ at 80 and
# 200 columns, with colour (a TTY) and with NO_COLOR, inside a detached tmux pane of that size.
# Writes NAME-WIDTH-color.txt (ANSI escapes kept: capture-pane -e) and NAME-WIDTH-plain.txt.
# Wrapped lines are joined (capture-pane -J), so a row that wrapped shows as a line wider than
# the pane and test_terminal.py fails on it. Run from anywhere; needs tmux.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
gradcheck="${GRADCHECK:-$root/.venv/bin/gradcheck}"
session="capture"
# A server of its own, kept alive by an idle session between captures.
tmux() { command tmux -L "gradcheck-screens-$$" "$@"; }
tmux new-session -d -s keep -x 80 -y 10 "sleep 100000"
trap 'tmux kill-server 2>/dev/null || true' EXIT
for model in "$here"/models/*.py; do
    name="$(basename "$model" .py)"
    for width in 80 200; do
        for mode in color plain; do
            env_set="env -u COLUMNS -u NO_COLOR"
            [ "$mode" = plain ] && env_set="$env_set NO_COLOR=1"
            flags=(-p -J -S - -E -)
            [ "$mode" = color ] && flags+=(-e)
            tmux new-session -d -s "$session" -x "$width" -y 50 -c "$root" \
                "$env_set OMP_NUM_THREADS=1 $gradcheck diagnose tests/screens/models/$name.py -q; tmux wait-for -S $session; sleep 30"
            tmux wait-for "$session"
            # The pane's history and screen, without the blank rows below the output.
            tmux capture-pane "${flags[@]}" -t "$session" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' \
                > "$here/$name-$width-$mode.txt"
            tmux kill-session -t "$session"
            echo "wrote tests/screens/$name-$width-$mode.txt"
        done
    done
done
