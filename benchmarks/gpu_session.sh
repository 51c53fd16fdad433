#!/usr/bin/env bash
# One GPU-machine session for several benchmarks, for the lent device (no registry there):
#   bash benchmarks/gpu_session.sh NAME=SECONDS:COMMAND [NAME=SECONDS:COMMAND ...]
# Wheels carried in .whl*/ folders (diffusers, av, ray, ...) go to /tmp/site; this checkout is laid out as
# the installed `cosmos_sim` package under /tmp/pkg (the package-dir mapping of pyproject.toml),
# so no build step runs there. Each command runs under its own time limit; all output goes to
# $OUT/session.log (the device returns at most 8 files: keep each benchmark's figures in one
# $OUT/NAME.json). One failing benchmark does not stop the others.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"

# .whl*/ : wheels may come in several carried folders (a warm machine keeps earlier ones).
if compgen -G ".whl*/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl*/*.whl || echo "wheel install failed" >&2
fi
rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r cosmos_sim /tmp/pkg/
for folder in bridges controls envs assets; do cp -r "$folder" "/tmp/pkg/cosmos_sim/$folder"; done
export PYTHONPATH=/tmp/pkg:/tmp/site:${PYTHONPATH:-}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 - <<'PY'
import importlib
for name in ("torch", "triton", "transformers", "diffusers", "av", "cv2", "ray", "pybullet",
             "torchvision", "cosmos_sim"):
    try:
        module = importlib.import_module(name)
        print(f"{name:14s} {getattr(module, '__version__', 'ok')}")
    except Exception as exc:  # noqa: BLE001 - a probe: report and go on
        print(f"{name:14s} missing ({type(exc).__name__}: {exc})")
PY
} 2>&1 | tee -a "$OUT/session.log"

for job in "$@"; do
  name=${job%%=*}
  rest=${job#*=}
  seconds=${rest%%:*}
  command=${rest#*:}
  echo "::: $name (limit ${seconds}s): $command" | tee -a "$OUT/session.log"
  start=$(date +%s)
  timeout "$seconds" bash -c "$command" >>"$OUT/session.log" 2>&1
  echo "::: $name exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/session.log"
done
