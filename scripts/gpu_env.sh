# Sourced by the GPU scripts: the packages the GPU image lacks, from the carried .whl/ (scripts/gpu_wheels.sh), and
# the repo on PYTHONPATH (nothing is pip-installed there). Sets PY to the interpreter that holds torch.
PY=$(command -v python3 || command -v python)
if [ -d .whl ] && ! "$PY" -c "import minari, mujoco, gymnasium" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
"$PY" -c "import torch, minari, mujoco, gymnasium; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)"
