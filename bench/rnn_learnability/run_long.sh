#!/bin/bash
P=${PYTHON:-python}
for cfg in "lstm default 50" "lstm fb1 50" "lstm default 100" "lstm fb1 100" "lstm fb2 200" "lstm fb1 200" "lstm fb2 300" "gru default 50" "gru fb2 100" "gru fb1 100"; do
  $P rnn_temporal.py $cfg early 0 3000
done
