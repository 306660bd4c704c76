#!/usr/bin/env bash
# One-command check for a machine with a CUDA GPU (none was available while ntklab was built).
# Run from the repository root with ntklab installed (README's install line, then
# `pip install -e ".[test]"`). It prints, in order:
#   1. the CUDA tests: training, empirical NTK and Monte-Carlo kernels on the GPU, including
#      tests/test_training.py::test_no_host_synchronization_on_cuda (no host sync per SGD step);
#   2. the seed's batch-8 SGD speed on the GPU beside the plain PyTorch loop and the bare
#      products (SPEC §6 shapes; NN2 at width 10 000 is the one the README estimates);
#   3. two trials of the seed's NN1 and NN2 at the seed's width beside their NTKs at the same T
#      (`ntklab run seed --only ...`) in the default GPU layout (one worker per GPU, the two
#      trials' networks stacked: "networks of up to 8 trials stacked" in the first lines),
#      whose numbers must match a CPU run of the same trials to float32 round-off, and the
#      seconds per trial.
# Expected total: a few minutes on an H200-class GPU.
set -euo pipefail
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
python -m pytest -q -x tests/test_training.py tests/test_empirical.py tests/test_monte_carlo.py \
  tests/test_execution.py -k "not dask"
python benchmarks/bench_training.py --sgd --device cuda
out=${OUT:-/tmp}/gpu-check-run
rm -rf "$out"
ntklab run seed --only NN1,NN2,NTK-NN1-T,NTK-NN2-T --trials 2 --device cuda --out "$out"
ntklab report "$out" --no-figures | sed -n '/## Test RMSE/,/^Seed/p;/per trial/,/^nn_rmse/p'
