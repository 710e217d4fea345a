"""oneDNN's CPU kernels for TensorFlow on every x86 CPU, not only the newest.

TensorFlow (since 2.9) turns its oneDNN kernels on by default only on CPUs with
AVX512_VNNI, AVX512_BF16 or AMX; elsewhere, on an AVX2 CPU such as an AMD EPYC of the
Zen 3 generation, its convolutions, matmuls and batch norms run on Eigen. On such a host
(2 cores) oneDNN took the image tower's training pass from 114.7 to 73.3 ms, and the
training of dual_encoder, show_and_tell and vqa from 0.71, 0.74 and 0.77x PyTorch to
1.01, 0.91 and 0.96x (the same benchmark run once each way). PyTorch uses oneDNN there.

`TF_ENABLE_ONEDNN_OPTS` is read once, when TensorFlow loads its kernels, so this must
run before TensorFlow is imported; a value the user set (`0` to turn them off) stays.
The environment also reaches the processes started from here.
"""

import os

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Asks for TensorFlow's oneDNN kernels unless the environment already says."""
    os.environ.setdefault(VARIABLE, "1")


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs its oneDNN kernels (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
