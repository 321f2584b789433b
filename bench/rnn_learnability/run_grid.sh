#!/bin/bash
P=${PYTHON:-python}
for seed in 0 1 2; do
 for c in lstm gru; do for i in default chrono fb1 fb2; do for T in 50 100 200 300; do
  $P rnn_temporal.py $c $i $T early $seed 400
 done; done; done
 $P rnn_temporal.py lstm default 50 late $seed 400
done
