#!/usr/bin/env bash
# GPU smoke check for a lent CUDA machine (torch, click, rich, pyyaml, pytest preinstalled there).
# Runs the CUDA-marked tests and diagnoses two samples with --device cuda; prints the device.
set -u
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'device', torch.cuda.get_device_name(0))"
python3 -m pytest -q -p no:cacheprovider tests/test_hooks.py -k "cuda or restores or hook" 2>&1 | tail -5
for m in resnet_bn deep_sigmoid nan_model; do
  python3 -m gradcheck_cli diagnose "sample_models/$m.py" --device cuda --format json > "/tmp/$m.json"
  echo "$m exit=$? $(python3 -c "import json,sys; d=json.load(open('/tmp/$m.json')); print(d['run']['device'], d['status'], [f['id']+':'+f['severity'] for f in d['findings']], d['run']['seconds'], 's')")"
done
